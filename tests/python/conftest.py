"""Shared fixtures for the interoperability tests.

These tests drive the real `remit` binary, named by REMIT_BIN (scripts/test
sets it to the debug build). A missing or broken REMIT_BIN fails every test
loudly: an interop suite that silently skips proves nothing.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest


def _remit_bin() -> Path:
    value = os.environ.get("REMIT_BIN")
    if not value:
        pytest.fail(
            "REMIT_BIN is not set: build the CLI (cargo build -p remit) and point "
            "REMIT_BIN at target/debug/remit, or run scripts/test",
            pytrace=False,
        )
    path = Path(value)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"REMIT_BIN={value} is not an executable file", pytrace=False)
    return path


class Remit:
    """Runs `remit` subcommands in a scratch directory."""

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.workdir = workdir

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.binary), *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == expect, (
            f"remit {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc

    def keygen(self, name: str) -> dict:
        """Generates a private JWK file `name`; returns the printed public JWK."""
        out = self.run("keys", "generate", "--out", name)
        public = json.loads(out.stdout)
        assert "d" not in public, "keys generate printed private material"
        return public

    def jwks(self, *files: str) -> dict:
        return json.loads(self.run("keys", "jwks", *files).stdout)

    def path(self, name: str) -> Path:
        return self.workdir / name


@pytest.fixture
def remit(tmp_path: Path) -> Remit:
    return Remit(_remit_bin(), tmp_path)
