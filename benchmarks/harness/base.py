"""What every benchmarked system looks like, and the context the systems share.

A system is one way a user could embed text with this model: ``load()`` it, then ``encode(texts)`` to
L2-normalised float32 ``(n, dim)``, tokenisation and pooling included (users pay for them). A system
that cannot run here raises :class:`Skip` with the reason; it is reported as skipped, never faked.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rosberta_onnx.manifest import Manifest

__all__ = ["Skip", "Context", "System", "has_module", "RawTokenizer", "pool_normalize", "sorted_batches", "log_stderr"]


class Skip(Exception):
    """This system can't run in this environment; the message says why (and how to enable it)."""


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


class Context:
    """What the systems share: the artifact, the reference checkpoint, threads, the plain export."""

    def __init__(
        self,
        artifact: str | Path,
        *,
        reference: str | Path | None,
        threads: int,
        plain_onnx: str | Path | None = None,
        log=lambda msg: None,
    ) -> None:
        self.artifact = Path(artifact)
        self.manifest = Manifest.read(self.artifact)
        self.facts = self.manifest.model
        self.threads = threads
        self.log = log
        self.reference, self.reference_reason = self._find_reference(reference)
        self._plain = Path(plain_onnx) if plain_onnx else None
        self._plain_error: str | None = None
        self._tmp: Path | None = None
        self.plain_export_s: float | None = None
        self.shared: dict = {}

    def _find_reference(self, given) -> tuple[Path | None, str]:
        if given:
            path = Path(given)
            if not (path / "config.json").is_file():
                raise ValueError(
                    f"--reference {str(path)!r} is not a Hugging Face checkpoint folder (no config.json); "
                    f"pass the folder the artifact was exported from"
                )
            return path, f"--reference {path}"
        src = self.manifest.source.get("model")
        # the manifest names a local checkpoint by its folder's name: look beside the artifact too
        for path in (Path(str(src)), self.artifact.parent / Path(str(src)).name) if src else ():
            if path.is_dir() and (path / "config.json").is_file():
                return path, f"manifest source.model {src} ({path})"
        return None, (
            f"no reference checkpoint: pass --reference MODEL (the manifest's source.model {src!r} is not a "
            f"local folder here, nor beside the artifact)"
        )

    def need_reference(self) -> Path:
        if self.reference is None:
            raise Skip(self.reference_reason)
        return self.reference

    def need_torch(self) -> None:
        if not (has_module("torch") and has_module("transformers")):
            raise Skip("torch/transformers are not installed (pip install 'rosberta-onnx[export]')")
        import transformers

        # Load reports (the unused pooler) and per-load progress bars would drown the benchmark's log.
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

    @property
    def plain_path(self) -> Path | None:
        """The plain export if it was built (or given), else None; builds nothing."""
        return self._plain

    def plain_onnx(self) -> Path:
        """The un-optimised torch.onnx export of the reference (no fusions), built once per run."""
        if self._plain is not None:
            return self._plain
        if self._plain_error:
            raise Skip(self._plain_error)
        try:
            ref = self.need_reference()
            self.need_torch()
        except Skip as exc:
            self._plain_error = f"the plain export is built from the reference checkpoint: {exc}"
            raise Skip(self._plain_error) from None
        from rosberta_export.convert import export_fp32
        from rosberta_export.source import resolve_source

        self._tmp = Path(tempfile.mkdtemp(prefix="rosberta-bench-plain-"))
        self.log(f"building the un-optimised ONNX export of {ref} (torch.onnx, no fusions)")
        t0 = time.perf_counter()
        self._plain = export_fp32(resolve_source(str(ref)), self._tmp / "model.onnx", weights_apart=False)
        self.plain_export_s = time.perf_counter() - t0
        return self._plain

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class System:
    """One benchmarked system. Subclasses set the class attributes and implement load/encode."""

    name = ""
    label = ""
    group = "peer"  # "reference" | "peer" | "ours"
    corpus_batching = ""  # how its own batching works, in words (for the corpus workload)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.notes: list[str] = []  # non-default configurations and why, fallbacks taken
        self.config: dict = {}  # settings it ran with
        self.load_s: float | None = None

    def build(self) -> None:
        """One-time offline work that :meth:`prepare` would otherwise do (a peer's conversion of the checkpoint,
        cached on disk), run once before the peak-memory processes so none of them carries it. May raise
        :class:`Skip`."""

    def prepare(self) -> None:
        """Import libraries (untimed) and raise :class:`Skip` if the system can't run here."""

    def load(self) -> None:
        raise NotImplementedError

    def encode(self, texts: list[str], *, own_batching: bool) -> np.ndarray:
        """Normalised embeddings. ``own_batching=False``: all texts in one batch (fixed-shape workloads).

        A system that runs in a process of its own sets ``own_time_s`` to the call's time measured there, and the
        runner takes it instead of its own clock (the pipe between the processes is no system's cost)."""
        raise NotImplementedError

    own_time_s: float | None = None
    worker_pid: int | None = None  # the process that holds the model, when it is not this one (memory figures)

    def close(self) -> None:
        """Stop what :meth:`load` started (worker processes)."""

    def info(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "group": self.group,
            "notes": list(self.notes),
            "config": dict(self.config),
            "corpus_batching": self.corpus_batching,
        }


# -- helpers for the systems that run a bare ONNX/OpenVINO graph ------------------------------------
class RawTokenizer:
    """``tokenizers`` from the artifact's tokenizer.json with explicit padding and truncation (fastembed's way)."""

    def __init__(self, ctx: Context) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(ctx.artifact / ctx.manifest.tokenizer_file))
        pad_id = ctx.facts.pad_token_id
        tok.enable_truncation(max_length=ctx.facts.max_length)
        tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id) or "<pad>")
        self._tok = tok

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encs = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return ids, mask

    def lengths(self, texts: list[str]) -> list[int]:
        return [sum(e.attention_mask) for e in self._tok.encode_batch(texts)]


def pool_normalize(hidden: np.ndarray, mask: np.ndarray, *, pooling: str) -> np.ndarray:
    if pooling == "cls":
        v = hidden[:, 0]
    else:
        m = mask[..., None].astype(np.float32)
        v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)
    v = v.astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def sorted_batches(lengths: list[int], size: int) -> list[list[int]]:
    """sentence-transformers' batching: sort by length (longest first), cut into ``size`` rows."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


def log_stderr(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
