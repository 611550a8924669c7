"""Start infinity-emb (``infinity_emb v2``, its optimum/onnxruntime engine on the CPU) on loopback and wait until it
answers: the serving peer of ``rosberta-onnx serve`` in the load benchmarks.

infinity-emb pins its own world (optimum, transformers 4.x, torch), so it runs from its own environment (a Python
given by the caller, e.g. ``.venv-infinity/bin/python`` made by ``pip install 'infinity-emb[server,optimum]'``).

What a user has to do to serve an ONNX file with it, as found with infinity-emb 0.0.78 and optimum 2.1:

- the engine picks, on the CPU, the ``*.onnx`` whose name holds ``quantize`` (else ``model.onnx``), and hands its
  path to optimum, which matches file *names* only: a file under ``onnx/`` or a model id given as an absolute path
  is "not found". So the file lies at the top of the model folder and the server runs *in* that folder with
  ``--model-id .``;
- its graph optimisation step fails on optimum 2.1 (``OptimizationConfig`` lost an argument) and it falls back to
  the file as given, which is logged; an already-fused file loses nothing by it;
- it writes optimised files under ``$HF_HOME`` keyed by the model id (``.`` for every model), so each server gets a
  fresh ``HF_HOME`` of its own;
- it truncates texts at ``config.max_position_embeddings`` tokens, which for RoBERTa (ru-en-RoSBERTa included) is
  514: two more than the model takes, as its positions start after the padding index. Its start-up warm-up then
  fails in the position-embedding Gather (``idx=514 must be within [-514,513]``) and the server exits. The folder it
  gets carries a copy of ``config.json`` with ``max_position_embeddings`` set to the model's real maximum (the
  manifest's ``max_length``), which only moves infinity's truncation.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["InfinityServer", "infinity_folder"]

# the checkpoint's files infinity's engine reads besides the ONNX graph (config, tokenizer, pooling settings)
_CHECKPOINT_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "sentencepiece.bpe.model",
)


def infinity_folder(checkpoint: Path, onnx_file: Path, data_files: list[Path], into: Path, *, max_length: int) -> Path:
    """A model folder infinity's optimum engine serves: the checkpoint's config (``max_position_embeddings``
    lowered to ``max_length`` where it is larger, see above) and tokenizer files, and ``onnx_file`` as
    ``model_quantized.onnx`` at its top with its external data files beside it under their own names (the graph
    refers to them by name). Files other than the config are linked, not copied."""
    into.mkdir(parents=True, exist_ok=True)
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    if config.get("max_position_embeddings", 0) > max_length:
        config["max_position_embeddings"] = max_length
    (into / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in _CHECKPOINT_FILES:
        if (checkpoint / name).is_file():
            os.symlink((checkpoint / name).resolve(), into / name)
    _link(onnx_file, into / "model_quantized.onnx")
    for f in data_files:
        _link(f, into / f.name)
    return into


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        os.symlink(src.resolve(), dst)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class InfinityServer:
    """``with InfinityServer(python, folder, pooling="cls") as srv: httpx.post(srv.url + "/v1/embeddings", ...)``.

    Serves ``folder`` (see :func:`infinity_folder`) as model ``rosberta`` on 127.0.0.1 at a free port, engine optimum,
    device cpu, with infinity's default batch size (32) unless ``batch_size`` is given. On exit: SIGTERM, then
    SIGKILL if it lingers."""

    def __init__(
        self,
        python: str,
        folder: Path,
        *,
        pooling: str,
        batch_size: int = 32,
        start_timeout: float = 600.0,
    ) -> None:
        # absolute (the server runs in ``folder``), not resolved: a venv's python is a link that must stay one
        self.python, self.folder, self.pooling = os.path.abspath(python), folder, pooling
        self.batch_size, self.start_timeout = batch_size, start_timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="infinity-")
        self._log = Path(self._dir.name) / "log.txt"

    @property
    def flags(self) -> list[str]:
        return [
            "--engine",
            "optimum",
            "--device",
            "cpu",
            "--pooling-method",
            self.pooling,
            "--batch-size",
            str(self.batch_size),
            "--served-model-name",
            "rosberta",
            "--url-prefix",
            "/v1",
            "--no-bettertransformer",
        ]

    def __enter__(self) -> InfinityServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        port = _free_port()
        env = {
            **os.environ,
            "HF_HOME": str(Path(self._dir.name) / "hf"),
            "HF_HUB_OFFLINE": "1",
            "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            "DO_NOT_TRACK": "1",
        }
        cmd = [self.python, "-m", "infinity_emb.cli", "v2", "--model-id", ".", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), *self.flags]
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"infinity_emb exited with status {self.proc.returncode}:\n{self.logs()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"infinity_emb was not ready within {self.start_timeout} s:\n{self.logs()[-3000:]}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._dir.cleanup()

    def logs(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""
