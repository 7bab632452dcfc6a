"""Agent-written code trying to leave its remit, run by `remit run`.

Each attempt prints one JSON line: {"attempt": NAME, "ok": bool, "detail": ...}.
`ok` says whether the attempt *succeeded*; the test decides which ones must.
Arguments: a JSON object with the paths and ports to try.
"""
import json
import os
import socket
import subprocess
import sys

cfg = json.loads(sys.argv[1])


def report(name, fn):
    try:
        detail = fn()
        print(json.dumps({"attempt": name, "ok": True, "detail": str(detail)[:200]}), flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure is the answer
        print(json.dumps({"attempt": name, "ok": False, "detail": f"{type(e).__name__}: {e}"[:300],
                          "errno": getattr(e, "errno", None)}), flush=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path):
    with open(path, "w") as f:
        f.write("x")


def connect_direct():
    s = socket.create_connection(("127.0.0.1", cfg["listener_port"]), timeout=3)
    s.sendall(b"ping")
    return s.recv(16)


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", cfg["listener_port"]))
    return "sent"


def unix_socket():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(cfg["unix_socket"])
    return "connected"


def via_proxy(host, port):
    proxy = os.environ["HTTPS_PROXY"].removeprefix("http://")
    phost, pport = proxy.rsplit(":", 1)
    s = socket.create_connection((phost, int(pport)), timeout=5)
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise PermissionError(f"proxy answered {status.decode()}")
    s.sendall(b"ping")
    reply = s.recv(16)
    s.close()
    return reply


def fork_many():
    pids = []
    try:
        for _ in range(1000):
            pid = os.fork()
            if pid == 0:
                import time
                time.sleep(2)
                os._exit(0)
            pids.append(pid)
    except OSError as e:
        for pid in pids:
            os.waitpid(pid, 0)
        raise OSError(e.errno, f"{e.strerror} after {len(pids)} forks") from None
    for pid in pids:
        os.waitpid(pid, 0)
    return f"{len(pids)} forks"


def parent_environ():
    return read(f"/proc/{os.getppid()}/environ")


def own_environ_secret():
    value = os.environ.get("REMIT_TEST_SECRET")
    if value is None:
        raise KeyError("REMIT_TEST_SECRET is not in the environment")
    return value


def run_shell():
    return subprocess.run(["/bin/sh", "-c", "echo escaped"], capture_output=True, check=True).stdout


def ptrace_parent():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_ATTACH = 16
    if libc.ptrace(PTRACE_ATTACH, os.getppid(), 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return "attached"


def kill_parent():
    os.kill(os.getppid(), 0)
    return "signal delivered"


report("read_granted", lambda: read(cfg["granted_file"]))
report("read_outside", lambda: read(cfg["secret_file"]))
report("read_ssh_key", lambda: read(cfg["ssh_key"]))
report("read_symlink_out", lambda: read(cfg["symlink"]))
report("read_dot_dot", lambda: read(cfg["dot_dot"]))
report("write_granted_read_only", lambda: write(cfg["granted_dir"] + "/new.txt"))
report("write_scratch", lambda: write(os.environ["TMPDIR"] + "/scratch.txt"))
report("connect_direct", connect_direct)
report("udp_socket", udp)
report("unix_socket", unix_socket)
report("proxy_granted", lambda: via_proxy("127.0.0.1", cfg["listener_port"]))
report("proxy_not_granted", lambda: via_proxy("127.0.0.2", cfg["listener_port"]))
report("fork_thousand", fork_many)
report("parent_environ", parent_environ)
report("own_environ_secret", own_environ_secret)
report("run_shell", run_shell)
report("ptrace_parent", ptrace_parent)
report("signal_parent", kill_parent)
