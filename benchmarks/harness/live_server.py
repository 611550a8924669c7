"""Start ``rosberta-onnx serve`` in a child process and wait until it is ready: for tests and benchmarks.

The server runs exactly as a user runs it (the real CLI, the real socket), on loopback, on a free
port it reports itself. Logs go to files, not pipes, so a chatty server can never block on a full pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["LiveServer"]


class LiveServer:
    """``with LiveServer(model_dir, "--variant", "fp32") as srv: httpx.get(srv.url + "/health")``.

    Extra CLI flags are passed through; ``env`` adds environment variables (e.g. ``ROSBERTA_API_KEY``).
    On exit the server gets SIGTERM (graceful shutdown) and, if it lingers, SIGKILL.
    """

    def __init__(
        self, model_dir: str | os.PathLike, *flags: str, env: dict[str, str] | None = None, start_timeout: float = 60.0
    ) -> None:
        self.model_dir, self.flags, self.start_timeout = str(model_dir), list(flags), start_timeout
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="rosberta-serve-")
        self._out = Path(self._dir.name) / "stdout.txt"
        self._err = Path(self._dir.name) / "stderr.txt"
        self.returncode: int | None = None
        self._final_logs: str | None = None

    def __enter__(self) -> LiveServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "rosberta_onnx.cli",
            "serve",
            self.model_dir,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *self.flags,
        ]
        with open(self._out, "wb") as out, open(self._err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env)
        deadline = time.monotonic() + self.start_timeout
        while not self.url:
            self._check_alive("before it reported its port")
            for line in self._out.read_text(errors="replace").splitlines():
                if line.startswith("rosberta-serve: listening on "):
                    self.url = line.rsplit(" ", 1)[1].strip()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not report its port within {self.start_timeout} s:\n{self.logs()}")
            time.sleep(0.05)
        while not self._ready():
            self._check_alive("before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server was not ready within {self.start_timeout} s:\n{self.logs()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            raise RuntimeError(f"the server exited with status {self.proc.returncode} {when}:\n{self.logs()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown) without waiting."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit status. Keeps the logs."""
        if self.proc is not None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.returncode = self.proc.returncode
        if self._final_logs is None:
            self._final_logs = self.logs()
            self._dir.cleanup()
        return self.returncode

    def logs(self) -> str:
        """The server's stderr so far (uvicorn's and the server's own log lines)."""
        if self._final_logs is not None:
            return self._final_logs
        return self._err.read_text(errors="replace") if self._err.exists() else ""
