"""A stdio upstream dies with the `remit serve` that started it, even when
that is killed with SIGKILL (issue 22, item 12): the official filesystem
server, started through `sh` that leaves a child behind as `npm exec`
leaves node, must leave no process once the gateway is gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from gateway_helpers import RemitServer, node_server, remit_bin


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def test_killing_remit_serve_with_sigkill_leaves_no_upstream_behind(tmp_path):
    server = RemitServer(remit_bin(), tmp_path)
    marker = f"{50000 + os.getpid() % 10000}.3"
    fs = node_server("mcp-server-filesystem")
    try:
        server.run(
            "server", "add", "--id", "fs", "--clearance", "internal",
            "--url", f"stdio:sh -c 'sleep {marker} & exec {fs} {tmp_path}'",
        )
        server.run("server", "bless", "fs", "--risk", "low")  # spawns the upstream
        assert processes_with(marker), "the upstream's child is not running"
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        deadline = time.time() + 5
        while processes_with(marker) and time.time() < deadline:
            time.sleep(0.1)
        left = processes_with(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"orphaned upstream processes: {left}"
    finally:
        server.stop()
