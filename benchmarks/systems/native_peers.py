"""The native CPU/edge peers: CTranslate2 (int8 encoders) and llama.cpp (GGUF f16, q8_0, Q4_K_M), each on its own
conversion of the reference checkpoint (:mod:`.peer_files`), with the same thread count as every other system.

Tokens: CTranslate2 has no tokenizer; it is given the ids of the artifact's tokenizer.json, unpadded (it takes
ragged batches), as its docs show with a Hugging Face tokenizer. llama.cpp tokenises with the vocabulary inside the
GGUF file, as its users do; ``prepare`` checks its ids equal ours on the check texts and notes it if not. Pooling
(CLS or mean) is the checkpoint's: in numpy for CTranslate2, llama.cpp's own pooling for GGUF.
"""

from __future__ import annotations

import time

import numpy as np

from ..harness.base import Skip, System, pool_normalize, sorted_batches
from .peer_files import checked, ct2_model, gguf_model

__all__ = ["SYSTEMS"]

BATCH = 32  # texts per batch where the peer leaves batching to its caller (CTranslate2), as sentence-transformers
# llama-cpp-python's defaults, n_ctx = n_batch = n_ubatch = 512 (the model's max length, so any text fits): embed()
# packs whole texts into decodes of <= 512 tokens. Larger ubatches are slower, not faster: a decode's attention spans
# the whole ubatch (masked per text), so 4096 tokens cost 64x the attention of 512 (2.5x slower on 32x64 tokens).
LLAMA_BATCH_TOKENS = 512


def _unpadded_tokenizer(ctx):
    """The artifact's tokenizer.json, truncating at the model's max length and never padding (MiniLM's pads to 128:
    CTranslate2 would read the pads as tokens, and llama.cpp's ids have none)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ctx.artifact / ctx.manifest.tokenizer_file))
    tok.enable_truncation(max_length=ctx.facts.max_length)
    tok.no_padding()
    return tok


class _Ct2(System):
    compute_type = ""
    corpus_batching = f"sorted by length, {BATCH} per batch, unpadded (CTranslate2 takes ragged batches)"

    def build(self) -> None:
        self.prepare()  # converts and checks once; later calls find both in the cache

    def prepare(self) -> None:
        import ctranslate2

        self._ct2 = ctranslate2
        fp32, _ = ct2_model(self.ctx, "float32")
        self._parity = checked(
            self.ctx, fp32, "CTranslate2", "float32", lambda texts: self._embed(self._open(fp32, "float32"), texts)
        )
        self._dir, self._meta = ct2_model(self.ctx, self.compute_type)

    def _open(self, folder, compute_type: str):
        return self._ct2.Encoder(
            str(folder / "model"), device="cpu", compute_type=compute_type, intra_threads=self.ctx.threads
        )

    def _embed(self, encoder, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "_tok"):
            self._tok = _unpadded_tokenizer(self.ctx)
        ids = [e.ids for e in self._tok.encode_batch(texts)]
        hidden = np.asarray(encoder.forward_batch(ids).last_hidden_state)
        lengths = np.array([len(i) for i in ids])
        mask = (np.arange(hidden.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
        return pool_normalize(hidden, mask, pooling=self.ctx.facts.pooling)

    def load(self) -> None:
        t0 = time.perf_counter()
        self._enc = self._open(self._dir, self.compute_type)
        self._tok = _unpadded_tokenizer(self.ctx)
        self.load_s = time.perf_counter() - t0
        self.config = {
            "model": f"CTranslate2 conversion, {self._meta['quantization']}",
            "compute_type": self.compute_type,
            "intra_threads": self.ctx.threads,
            "file_mb": round(self._meta["bytes"] / 1e6, 1),
            "cpu_compute_types": sorted(self._ct2.get_supported_compute_types("cpu")),
        }
        self.notes.append(
            f"{self._meta['tool']}; its float32 conversion against torch fp32: cosine min {self._parity['cos_min']:.6f}"
            f" on {self._parity['texts']} texts; ids from the artifact's tokenizer.json, "
            f"{self.ctx.facts.pooling} pooling and L2 in numpy"
        )
        self.notes += [f"conversion: {w}" for w in self._meta["workarounds"]]

    def encode(self, texts, *, own_batching):
        texts = list(texts)
        if not own_batching:
            return self._embed(self._enc, texts)
        out = np.empty((len(texts), self.ctx.facts.dim), np.float32)
        lengths = [len(e.ids) for e in self._tok.encode_batch(texts)]
        for batch in sorted_batches(lengths, BATCH):
            out[batch] = self._embed(self._enc, [texts[i] for i in batch])
        return out


class Ct2Int8(_Ct2):
    name, label, compute_type = "ct2-int8", "CTranslate2 int8", "int8"


class _Llama(System):
    kind = ""
    corpus_batching = (
        f"llama-cpp-python's embed(): texts in input order, packed into decodes of up to {LLAMA_BATCH_TOKENS} tokens"
    )

    def build(self) -> None:
        self.prepare()  # converts and checks once; later calls find both in the cache

    def prepare(self) -> None:
        import llama_cpp

        self._llama = llama_cpp
        f16, _ = gguf_model(self.ctx, "f16")
        self._parity = checked(self.ctx, f16.parent, "llama.cpp", "f16", lambda texts: self._check_f16(f16, texts))
        self._file, self._meta = gguf_model(self.ctx, self.kind)

    def _check_f16(self, f16, texts: list[str]) -> np.ndarray:
        m = self._open(f16)
        tok = _unpadded_tokenizer(self.ctx)
        differ = sum(tok.encode(t).ids != m.tokenize(t.encode("utf-8"), add_bos=True) for t in texts)
        if differ:
            raise Skip(f"llama.cpp's tokenizer gives other ids than tokenizer.json on {differ} of {len(texts)} texts")
        return np.asarray(m.embed(texts, normalize=True), dtype=np.float32)

    def _open(self, path):
        pooling = {"cls": self._llama.LLAMA_POOLING_TYPE_CLS, "mean": self._llama.LLAMA_POOLING_TYPE_MEAN}
        if self.ctx.facts.pooling not in pooling:
            raise Skip(f"llama.cpp has no {self.ctx.facts.pooling!r} pooling")
        return self._llama.Llama(
            str(path),
            embedding=True,
            n_ctx=LLAMA_BATCH_TOKENS,
            n_batch=LLAMA_BATCH_TOKENS,
            n_ubatch=LLAMA_BATCH_TOKENS,
            n_threads=self.ctx.threads,
            n_threads_batch=self.ctx.threads,
            pooling_type=pooling[self.ctx.facts.pooling],
            verbose=False,
        )

    def load(self) -> None:
        t0 = time.perf_counter()
        self._m = self._open(self._file)
        self.load_s = time.perf_counter() - t0
        self.config = {
            "model": f"GGUF {self.kind}",
            "n_threads": self.ctx.threads,
            "n_ctx=n_batch=n_ubatch": LLAMA_BATCH_TOKENS,
            "pooling": self.ctx.facts.pooling,
            "file_mb": round(self._meta["bytes"] / 1e6, 1),
            "tensor_types": self._meta.get("tensor_types", {}),
        }
        self.notes.append(
            f"{self._meta['tool']}; its f16 conversion against torch fp32: cosine min {self._parity['cos_min']:.6f} "
            f"on {self._parity['texts']} texts (same token ids as tokenizer.json); tokenised by llama.cpp"
        )
        self.notes += [f"conversion: {w}" for w in self._meta["workarounds"]]

    def encode(self, texts, *, own_batching):
        return np.asarray(self._m.embed(list(texts), normalize=True), dtype=np.float32)


class LlamaF16(_Llama):
    name, label, kind = "llama-f16", "llama.cpp GGUF f16", "f16"


class LlamaQ8(_Llama):
    name, label, kind = "llama-q8_0", "llama.cpp GGUF q8_0", "q8_0"


class LlamaQ4KM(_Llama):
    name, label, kind = "llama-q4_k_m", "llama.cpp GGUF Q4_K_M", "q4_k_m"


SYSTEMS = (Ct2Int8, LlamaF16, LlamaQ8, LlamaQ4KM)
