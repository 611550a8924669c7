"""The Encoder: an exported artifact folder in, L2-normalised float32 embeddings out. No torch."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .batching import plan_batches
from .errors import RosbertaError
from .hardware import physical_cores
from .inputs import as_text_list
from .manifest import Manifest, ModelFacts
from .pooling import l2_normalize, pool
from .prompts import apply_prompt
from .session import Session, default_streams, open_session, resolve_providers
from .tokenize import TextTokenizer
from .variants import Selection, choose

__all__ = ["Encoder", "Encoded", "prepare_texts"]


def prepare_texts(texts: str | Sequence[str], *, task: str | None, prompts: Mapping[str, str]) -> list[str]:
    """:meth:`Encoder.prepare` for a prompt table (a manifest's ``model.prompts``), without a loaded model."""
    return apply_prompt(as_text_list(texts), task, prompts)


def _count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1 (or None for the default), got {value!r}")
    return int(value)


# Texts tokenised at a time: bounds the memory of tokenizer objects for very long input lists while
# keeping enough texts together for length sorting to pay off.
_CHUNK = 4096


@dataclass(frozen=True)
class Encoded:
    """Embeddings plus what happened to each input on the way."""

    embeddings: np.ndarray  # float32 (n, dim)
    token_counts: np.ndarray  # int64 (n,): tokens of each text (prefix and specials included) before truncation
    truncated: np.ndarray  # bool (n,): True where the text was cut to the model's max length


class Encoder:
    """Sentence embeddings from an exported rosberta-onnx folder.

    Build one with :meth:`Encoder.load`. Thread-safe for concurrent ``encode`` calls (ONNX Runtime
    sessions are), so one instance can serve a whole process.
    """

    def __init__(
        self, folder: Path, manifest: Manifest, selection: Selection, session: Session, tokenizer: TextTokenizer
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.selection = selection  # what was asked, what runs, why (and what autotune measured)
        self.variant = selection.variant
        self._session = session
        self._tokenizer = tokenizer

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        variant: str = "auto",
        providers: list[str] | None = None,
        threads: int | None = None,
        spinning: bool = False,
        streams: int | None = None,
        verify: bool = True,
        allow_cpu_fp16: bool = False,
        autotune: bool | None = None,
    ) -> Encoder:
        """Load an artifact folder written by ``rosberta-onnx export``.

        ``variant``: ``"auto"`` (fp16 on a CUDA device, else an int8 variant that passed its quality gate,
        else fp32), or ``"fp32"`` / ``"fp16"`` / ``"int8"`` / ``"int8-openvino"`` (the same int8 weights run
        by OpenVINO: needs ``pip install 'rosberta-onnx[openvino]'``). ``threads`` defaults to the physical cores.
        ``streams`` (OpenVINO variants only; onnxruntime ignores it): a batch of two or more texts is split
        into this many parts run at once, each on its share of the threads; one query still gets them all.
        Default: 2 when ``threads`` >= 2 (2-22% more batch throughput on 2 cores), else 1; 1 turns it off.
        ``verify`` checks each loaded file against the manifest's sha256 (a corrupt file is an error,
        not a silently wrong answer); it reads the files once, so it costs a little load time.
        ``autotune`` (default: on unless ``ROSBERTA_AUTOTUNE=0``): before ``auto`` settles on int8, time
        fp32 and every gated int8 variant whose engine is installed once on this machine and take the
        fastest (never an int8 slower than fp32); the verdict is cached next to the artifact. Without it,
        ``auto`` takes onnxruntime's int8 before OpenVINO's. Why a variant was chosen is in :attr:`selection`.
        """
        folder = Path(path)
        manifest = Manifest.read(folder)
        provs = resolve_providers(providers)
        threads = _count("threads", threads) or physical_cores()
        streams = _count("streams", streams) or default_streams(threads)
        verified: set[str] = set()

        def open_variant(name: str) -> Session:  # files are checked before any engine reads them (auto times several)
            rec = manifest.variant(name)
            if verify and name not in verified:
                manifest.verify_files(folder, rec.files)
                verified.add(name)
            return open_session(
                folder / rec.file, rec, providers=provs, threads=threads, spinning=spinning, streams=streams
            )

        selection, session = choose(
            manifest,
            variant,
            folder=folder,
            providers=provs,
            allow_cpu_fp16=allow_cpu_fp16,
            autotune=autotune,
            threads=threads,
            streams=streams,
            open_session=open_variant,
        )
        if verify:
            manifest.verify_files(folder, {manifest.tokenizer_file: manifest.tokenizer_sha256})
        facts = manifest.model
        tokenizer = TextTokenizer(
            folder / manifest.tokenizer_file, max_length=facts.max_length, pad_id=facts.pad_token_id
        )
        return cls(folder, manifest, selection, session or open_variant(selection.variant), tokenizer)

    # -- facts ----------------------------------------------------------------------------------
    @property
    def facts(self) -> ModelFacts:
        return self.manifest.model

    @property
    def dim(self) -> int:
        return self.facts.dim

    @property
    def max_length(self) -> int:
        return self.facts.max_length

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.facts.prompts)

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    @property
    def streams(self) -> int:
        """Parts a batch is split into and run at once (OpenVINO variants; 1 on onnxruntime)."""
        return self._session.streams

    def __repr__(self) -> str:
        return f"Encoder({str(self.folder)!r}, variant={self.variant!r}, dim={self.dim}, providers={self.providers})"

    # -- tokenisation ---------------------------------------------------------------------------
    def prepare(self, texts: str | Sequence[str], *, task: str | None = None) -> list[str]:
        """The texts as the model will see them: checked (a non-str is an error naming its index), lone surrogates
        replaced, and the task's prefix added where a text has none (:class:`PromptWarning` for those that had one).
        Prepared texts go to the other methods with ``task=None``."""
        return prepare_texts(texts, task=task, prompts=self.facts.prompts)

    def tokenize(
        self, texts: str | Sequence[str], *, task: str | None = None, truncate: bool = True
    ) -> list[list[int]]:
        """Token ids per text as the model sees them (prefix and special tokens included)."""
        return self._tokenizer.tokenize(self.prepare(texts, task=task), truncate=truncate).ids

    def count_tokens(self, texts: str | Sequence[str], *, task: str | None = None) -> np.ndarray:
        """Tokens per text before truncation (prefix and special tokens included), int64 (n,)."""
        return self._tokenizer.tokenize(self.prepare(texts, task=task), truncate=True).token_counts

    # -- encoding -------------------------------------------------------------------------------
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        task: str | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        normalize: bool | None = None,
        truncate: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed ``texts``; returns float32 ``(len(texts), dim)`` in input order.

        ``texts``: a list of str, or one bare str (treated as a list of one). ``task``: a name from
        :attr:`tasks` (its prefix is added unless a text already starts with a known prefix) or
        ``None`` to embed texts exactly as given. ``normalize``: defaults to the model's (L2 for
        RoSBERTa). ``truncate=False`` raises on a text longer than :attr:`max_length` tokens.
        Results don't depend on ``batch_size``/``max_batch_tokens`` or on a text's batch neighbours.
        """
        return self.encode_detailed(
            texts,
            task=task,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            normalize=normalize,
            truncate=truncate,
            progress=progress,
        ).embeddings

    def encode_queries(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray:
        """``encode(texts, task="search_query")``."""
        return self.encode(texts, task="search_query", **kwargs)

    def encode_documents(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray:
        """``encode(texts, task="search_document")``."""
        return self.encode(texts, task="search_document", **kwargs)

    def encode_detailed(
        self,
        texts: str | Sequence[str],
        *,
        task: str | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        normalize: bool | None = None,
        truncate: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Encoded:
        """Like :meth:`encode`, plus each text's token count and whether it was truncated."""
        items = self.prepare(texts, task=task)
        norm = self.facts.normalize if normalize is None else bool(normalize)
        n = len(items)
        out = np.empty((n, self.dim), dtype=np.float32)
        counts = np.empty(n, dtype=np.int64)
        truncated = np.empty(n, dtype=bool)
        # Check lengths of all texts first, so truncate=False fails before any compute is spent.
        if not truncate:
            for start in range(0, n, _CHUNK):
                self._tokenizer.tokenize(items[start : start + _CHUNK], truncate=False)
        for start in range(0, n, _CHUNK):
            tok = self._tokenizer.tokenize(items[start : start + _CHUNK], truncate=True)
            counts[start : start + len(tok.ids)] = tok.token_counts
            truncated[start : start + len(tok.ids)] = tok.truncated
            for batch in plan_batches(tok.lengths, batch_size=batch_size, max_batch_tokens=max_batch_tokens):
                vecs = self._run([tok.ids[i] for i in batch], norm)
                out[[start + i for i in batch]] = vecs
                if progress is not None:
                    progress(len(batch))
        return Encoded(embeddings=out, token_counts=counts, truncated=truncated)

    def _run(self, rows: list[list[int]], norm: bool) -> np.ndarray:
        ids, mask = self._tokenizer.pad(rows)
        feeds = {"input_ids": ids, "attention_mask": mask}
        feeds = {k: v for k, v in feeds.items() if k in self.facts.input_names}
        hidden = self._session.run([self.facts.output_name], feeds)[0]
        vecs = pool(hidden, mask, self.facts.pooling)
        if norm:
            vecs = l2_normalize(vecs)
        if not np.isfinite(vecs).all():
            bad = int(np.flatnonzero(~np.isfinite(vecs).all(axis=1))[0])
            raise RosbertaError(
                f"the {self.variant} model produced a non-finite embedding (row {bad} of a batch of {len(rows)}); "
                f"this variant overflows on this input. Use variant='fp32' for it, and please report the text."
            )
        return vecs
