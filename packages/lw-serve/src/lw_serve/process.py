"""`lw-serve` as a child process on a free loopback port, for whoever measures it (lw-bench serve,
ops/serve/load_sigterm.py): started, ready (`/readyz` answers 200) and stopped, SIGTERM first (the server
drains what is in flight), SIGKILL after a grace period.

A child started here stops with its parent whatever ends the parent, SIGKILL included: it is told the
parent's pid ($LW_SERVE_PARENT_PID) and, on Linux, asks the kernel for SIGTERM when that parent dies
(`exit_with_parent`, called by `lw-serve` at start)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from lw_core import LwError

PARENT_ENV = "LW_SERVE_PARENT_PID"
GRACE_SECONDS = 10.0
"""How long a server has to exit after SIGTERM before it is killed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exit_with_parent() -> None:
    """In a server started by `ServerProcess`: SIGTERM when the parent dies (Linux), and exit now if it
    already has (it died before this line ran)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(parent):
        sys.exit("lw-serve: the process that started this server is gone")


def _last_line(path: Path | None) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path else []
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


class ServerProcess:
    """`python -m lw_serve.cli [ROLE] RUN --port P --device DEVICE ARGS` on 127.0.0.1; its stdout and stderr
    go to `log` (None: this process's). Use `start()`, or as a context manager (stopped when it ends)."""

    def __init__(self, run: str | Path, role: str = "pipeline", *, device: str = "cpu", args: Sequence[str] = (),
                 log: str | Path | None = None, env: dict[str, str] | None = None):
        self.role, self.port = role, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log) if log else None
        command = [sys.executable, "-m", "lw_serve.cli", *([] if role == "pipeline" else [role]), str(run),
                   "--port", str(self.port), "--device", device, *args]
        self.name = " ".join([role, *args])
        out = self.log.open("ab") if self.log else None
        try:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if out else None,
                                            env={**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())})
        finally:
            if out:
                out.close()

    def wait_ready(self, timeout: float) -> None:
        """Until `/readyz` answers 200; LwError (with the server's last line) if it exits or takes longer."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                said = _last_line(self.log)
                raise LwError(f"lw-serve {self.name} exited with code {code} before it was ready"
                              + (f": {said}" if said else ""))
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise LwError(f"lw-serve {self.name} was not ready after {timeout:g} s"
                              + (f" (its log: {self.log})" if self.log else ""))
            time.sleep(0.2)

    def stop(self, grace: float = GRACE_SECONDS) -> int:
        """SIGTERM, then SIGKILL after `grace` seconds (or at once if this wait is interrupted); its exit code."""
        if self.process.poll() is None:
            try:
                self.process.terminate()
                self.process.wait(timeout=grace)
            except BaseException as err:  # past the grace period, or interrupted while waiting: no orphan either way
                self.process.kill()
                self.process.wait()
                if not isinstance(err, subprocess.TimeoutExpired):
                    raise
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(run: str | Path, role: str = "pipeline", *, ready_timeout: float = 600.0, **options) -> ServerProcess:
    """A started server, ready for requests (stopped again if it does not get there)."""
    server = ServerProcess(run, role, **options)
    try:
        server.wait_ready(ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server
