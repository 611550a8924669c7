"""The native peers' own model files, converted from the reference checkpoint the way each peer's docs say, once,
into a cache beside the user's other model caches.

- CTranslate2: ``ctranslate2.converters.TransformersConverter`` (float32 to check the conversion, int8 to run).
- llama.cpp: its ``convert_hf_to_gguf.py`` (f16 and q8_0), then ``llama_model_quantize`` (Q4_K_M from f16). The
  converter ships in llama-cpp-python's source distribution, not its wheel: it is fetched once with
  ``pip download --no-binary`` for the installed version and unpacked into the cache.

Three departures, each only where the checkpoint needs it, and recorded in each conversion's ``workarounds``:

- transformers 5 no longer sets ``position_embedding_type`` on a RoBERTa/BERT config; CTranslate2's loaders assert
  it is ``"absolute"`` (the only kind these models have), so it is set.
- a vocabulary smaller than the embedding matrix (the stand-ins' tokenizer has 42766 of 50265 rows) is padded
  with unused placeholder tokens for CTranslate2, whose spec wants one token per row. llama.cpp's converter pads
  by itself.
- llama.cpp's converter names a BPE pre-tokenizer by a hash of its output on a test text and refuses one it does
  not know. A byte-level BPE tokenizer it does not know (the stand-ins') is mapped to ``roberta-bpe``, the name it
  gives the RoBERTa tokenizers it knows.

Every conversion is checked against torch before any row is timed (:func:`checked`): a silent conversion error
shows as a skipped system with its cosine, never as a fast row.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from ..harness.base import Context, Skip, has_module

__all__ = ["cache_dir", "ct2_model", "gguf_model", "checked", "PARITY_MIN"]

# cosine min against torch fp32 that a full-precision conversion must reach to count as faithful
PARITY_MIN = {"float32": 0.9999, "f16": 0.999}


def cache_dir(ctx: Context) -> Path:
    """``$ROSBERTA_PEERS_CACHE`` (default ``~/.cache/rosberta-onnx/peers``)/<checkpoint name>-<fingerprint>: the
    fingerprint covers the checkpoint's weight files (name, size, mtime), so a changed checkpoint converts again."""
    ref = ctx.need_reference()
    root = _root()
    h = hashlib.sha256(str(ref.resolve()).encode())
    for f in sorted(ref.glob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    out = root / f"{ref.name}-{h.hexdigest()[:12]}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _root() -> Path:
    root = Path(os.environ.get("ROSBERTA_PEERS_CACHE") or Path.home() / ".cache" / "rosberta-onnx" / "peers")
    root.mkdir(parents=True, exist_ok=True)
    return root


_held = 0  # how deep this process is inside a serialised call (a Q4_K_M conversion asks for the f16 one)


def _one_at_a_time(fn):
    """``fn`` run by one process per cache at a time (peak-memory children may start side by side)."""

    @functools.wraps(fn)
    def serialised(*args, **kwargs):
        global _held
        if _held:
            return fn(*args, **kwargs)
        import fcntl

        with open(_root() / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _held = 1
            try:
                return fn(*args, **kwargs)
            finally:
                _held = 0

    return serialised


def _done(folder: Path) -> dict | None:
    meta = folder / "conversion.json"
    return json.loads(meta.read_text()) if meta.is_file() else None


def _finish(tmp: Path, folder: Path, meta: dict) -> dict:
    """Write the record, then move the whole folder into place (a half-converted folder is never used)."""
    (tmp / "conversion.json").write_text(json.dumps(meta, indent=1))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return meta


# -- CTranslate2 ------------------------------------------------------------------------------------------------
@_one_at_a_time
def ct2_model(ctx: Context, quantization: str) -> tuple[Path, dict]:
    """The CTranslate2 conversion of the reference with ``quantization`` (``float32``, ``int8``): (folder, record)."""
    if not has_module("ctranslate2"):
        raise Skip("ctranslate2 is not installed (pip install 'rosberta-onnx[peers]')")
    folder = cache_dir(ctx) / f"ct2-{quantization}"
    meta = _done(folder)
    if meta is not None:
        return folder, meta
    from ctranslate2.converters import TransformersConverter

    notes: list[str] = []

    class _PaddedVocab:  # the tokenizer, with placeholder tokens for the embedding rows it has no token for
        def __init__(self, tok, rows: int) -> None:
            self._tok, self._rows = tok, rows

        def get_vocab(self) -> dict[str, int]:
            vocab = dict(self._tok.get_vocab())
            taken = set(vocab.values())
            missing = [i for i in range(self._rows) if i not in taken]
            if missing:
                notes.append(f"vocabulary of {len(vocab)} padded with {len(missing)} placeholders to {self._rows} rows")
            vocab.update({f"<ct2-unused-{i}>": i for i in missing})
            return vocab

        def __getattr__(self, name):
            return getattr(self._tok, name)

    class _Converter(TransformersConverter):
        def load_model(self, model_class, path, **kwargs):
            model = super().load_model(model_class, path, **kwargs)
            if getattr(model.config, "position_embedding_type", None) is None:
                model.config.position_embedding_type = "absolute"
                notes.append("config.position_embedding_type set to 'absolute' (transformers 5 leaves it unset)")
            self._rows = model.get_input_embeddings().weight.shape[0]
            return model

        def load_tokenizer(self, tokenizer_class, path, **kwargs):
            return _PaddedVocab(super().load_tokenizer(tokenizer_class, path, **kwargs), self._rows)

    ctx.log(f"converting {ctx.reference} with CTranslate2 ({quantization})")
    tmp = Path(tempfile.mkdtemp(prefix=f".ct2-{quantization}-", dir=folder.parent))
    t0 = time.perf_counter()
    _Converter(str(ctx.reference)).convert(str(tmp / "model"), quantization=quantization, force=True)
    return folder, _finish(
        tmp,
        folder,
        {
            "tool": f"ctranslate2 {metadata.version('ctranslate2')} TransformersConverter",
            "quantization": quantization,
            "seconds": round(time.perf_counter() - t0, 1),
            "bytes": sum(f.stat().st_size for f in (tmp / "model").iterdir()),
            "workarounds": notes,
        },
    )


# -- llama.cpp --------------------------------------------------------------------------------------------------
_LENIENT_CONVERT = """
import json, runpy, sys
llama_dir, tokenizer_json = sys.argv[1], sys.argv[2]
sys.path.insert(0, llama_dir)
from conversion import base
known = base.TextModel.get_vocab_base_pre
def lenient(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        pre = json.load(open(tokenizer_json, encoding="utf-8")).get("pre_tokenizer") or {}
        if pre.get("type") != "ByteLevel":
            raise
        print("WORKAROUND: byte-level BPE pre-tokenizer with an unknown hash mapped to roberta-bpe", flush=True)
        return "roberta-bpe"
base.TextModel.get_vocab_base_pre = lenient
sys.argv = [llama_dir + "/convert_hf_to_gguf.py", *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _llama_converter() -> Path:
    """llama.cpp's converter from the installed llama-cpp-python's source distribution (fetched once)."""
    version = metadata.version("llama-cpp-python")
    root = _root()
    home = root / f"llama.cpp-{version}"
    if (home / "convert_hf_to_gguf.py").is_file():
        return home
    with tempfile.TemporaryDirectory() as d:
        spec = f"llama-cpp-python=={version}"
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", spec, "-d", d],
            capture_output=True,
            text=True,
        )
        sdists = list(Path(d).glob("*.tar.gz"))
        if r.returncode != 0 or not sdists:
            raise Skip(f"could not fetch llama.cpp's converter ({spec} source): {r.stderr.strip()[-300:]}")
        tmp = Path(tempfile.mkdtemp(prefix=".llama.cpp-", dir=root))
        keep = ("convert_hf_to_gguf.py", "gguf-py/", "conversion/")
        with tarfile.open(sdists[0]) as tar:
            for m in tar.getmembers():
                rel = m.name.split("/vendor/llama.cpp/", 1)[-1] if "/vendor/llama.cpp/" in m.name else None
                if rel and rel.startswith(keep) and (m.isfile() or m.isdir()):
                    m.name = rel
                    tar.extract(m, tmp, filter="data")
        tmp.rename(home)
    return home


def _tensor_types(path: Path) -> dict[str, int]:
    """How many tensors of each type the GGUF file holds: llama.cpp quietly stores a tensor whose rows do not fit
    a K-quant's 256-wide blocks in another type (MiniLM's 384-wide matrices become q5_0 under Q4_K_M)."""
    if not has_module("gguf"):
        return {}
    from collections import Counter

    from gguf import GGUFReader

    return dict(Counter(t.tensor_type.name for t in GGUFReader(str(path)).tensors))


@_one_at_a_time
def gguf_model(ctx: Context, kind: str) -> tuple[Path, dict]:
    """The GGUF file of the reference as ``kind`` (``f16``, ``q8_0``: the converter's outtypes; ``q4_k_m``:
    ``llama_model_quantize`` from the f16 file): (file, record)."""
    if not has_module("llama_cpp"):
        raise Skip("llama-cpp-python is not installed (pip install 'rosberta-onnx[peers]')")
    folder = cache_dir(ctx) / f"gguf-{kind}"
    meta = _done(folder)
    if meta is not None:
        return folder / "model.gguf", meta
    tmp = Path(tempfile.mkdtemp(prefix=f".gguf-{kind}-", dir=folder.parent))
    t0 = time.perf_counter()
    if kind == "q4_k_m":
        import llama_cpp

        f16, f16_meta = gguf_model(ctx, "f16")
        ctx.log("quantising the f16 GGUF to Q4_K_M (llama_model_quantize)")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        params.nthread = ctx.threads
        rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp / "model.gguf").encode(), params)
        if rc != 0:
            raise Skip(f"llama_model_quantize to Q4_K_M failed (status {rc})")
        tool = f"llama-cpp-python {metadata.version('llama-cpp-python')} llama_model_quantize from f16"
        workarounds = list(f16_meta["workarounds"])
    else:
        home, ref = _llama_converter(), ctx.need_reference()
        ctx.log(f"converting {ref} to GGUF {kind} (llama.cpp's convert_hf_to_gguf.py)")
        r = subprocess.run(
            [sys.executable, "-c", _LENIENT_CONVERT, str(home), str(ref / "tokenizer.json"), str(ref)]
            + ["--outfile", str(tmp / "model.gguf"), "--outtype", kind],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise Skip(f"llama.cpp's converter failed on {ref}: {r.stderr.strip()[-400:]}")
        tool = f"llama.cpp convert_hf_to_gguf.py (llama-cpp-python {metadata.version('llama-cpp-python')})"
        workarounds = [ln.removeprefix("WORKAROUND: ") for ln in r.stdout.splitlines() if ln.startswith("WORKAROUND")]
    return folder / "model.gguf", _finish(
        tmp,
        folder,
        {
            "tool": tool,
            "kind": kind,
            "tensor_types": _tensor_types(tmp / "model.gguf"),
            "seconds": round(time.perf_counter() - t0, 1),
            "bytes": (tmp / "model.gguf").stat().st_size,
            "workarounds": workarounds,
        },
    )


# -- the conversion check ---------------------------------------------------------------------------------------
def _check_texts() -> list[str]:
    from rosberta_export.corpus import parity_texts

    return parity_texts(16)


@_one_at_a_time
def checked(ctx: Context, folder: Path, label: str, precision: str, embed) -> dict:
    """Cosine of ``embed``'s vectors (a full-precision conversion) against torch fp32 on 16 RU/EN texts, computed
    once per conversion and kept in its record. Raises :class:`Skip` naming the figure when it is below
    :data:`PARITY_MIN` -- a conversion error, not a row to time."""
    meta_file = folder / "conversion.json"
    meta = json.loads(meta_file.read_text())
    if "parity" not in meta:
        from .peers import _reference

        ctx.need_torch()
        texts = _check_texts()
        ref, _ = _reference(ctx)
        want = ref.embed(texts, batch_size=16)
        got = np.asarray(embed(texts), dtype=np.float32)
        cos = (want * got).sum(1)
        meta["parity"] = {"texts": len(texts), "cos_min": float(cos.min()), "cos_mean": float(cos.mean())}
        meta_file.write_text(json.dumps(meta, indent=1))
    p = meta["parity"]
    if not p["cos_min"] >= PARITY_MIN[precision]:
        raise Skip(
            f"{label}'s own {precision} conversion disagrees with torch fp32 (cosine min {p['cos_min']:.6f} < "
            f"{PARITY_MIN[precision]} on {p['texts']} texts): a conversion error, so its quantised rows are not timed"
        )
    return p
