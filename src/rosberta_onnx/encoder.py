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
from .chunking import ChunkPlan, Chunks, char_span, check_window, long_mode, mean_of_chunks, windows
from .errors import InputTooLongError, InputTypeError, RosbertaError
from .hardware import physical_cores
from .inputs import as_text_list
from .manifest import Manifest, ModelFacts
from .pooling import l2_normalize, pool
from .prompts import apply_prompt, apply_prompt_spans
from .reference import read_reference
from .session import DEFAULT_STREAMS, Session, open_session, resolve_providers
from .tokenize import TextTokenizer
from .trust import VariantCheck, check_variant
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

        ``variant``: ``"auto"`` (fp16 on a CUDA device, else a quantised variant that passed its quality gate,
        else fp32), or ``"fp32"`` / ``"fp16"`` / ``"int8"`` / ``"int8-openvino"`` (the same int8 weights run
        by OpenVINO: needs ``pip install 'rosberta-onnx[openvino]'``) / ``"int4"`` (4-bit weights: the smallest
        file, for disk- and memory-bound devices; named explicitly, it runs whatever its gate said).
        ``threads`` defaults to the physical cores.
        ``streams`` (OpenVINO variants only; onnxruntime ignores it): a batch of two or more texts is split
        into this many parts run at once, each on its share of the threads; one query still gets them all.
        Default 1, the lean choice: a second stream compiles the model again (~320-380 MB more at full size once
        both kinds of call have run) for 1-22% more batch throughput on 2 cores (at most 7% on Zen 3 and Zen 4)
        and nothing for a single query. ``rosberta-onnx serve`` asks for 2, as concurrent clients make batches.
        ``verify`` checks each loaded file against the manifest's sha256 (a corrupt file is an error,
        not a silently wrong answer); it reads the files once, so it costs a little load time.
        ``autotune`` (default: on unless ``ROSBERTA_AUTOTUNE=0``): before ``auto`` settles on a quantised
        variant, re-measure on this CPU each candidate whose gate was measured on another instruction set (against
        the artifact's reference set: seconds, once per machine), then time fp32 and the candidates left once and
        take the fastest (never one slower than fp32); both verdicts are cached next to the artifact. Without it,
        ``auto`` measures nothing: it takes the first candidate by the rules and leaves out those gated on another
        ISA. Why a variant was chosen is in :attr:`selection`.
        """
        folder = Path(path)
        manifest = Manifest.read(folder)
        provs = resolve_providers(providers)
        threads = _count("threads", threads) or physical_cores()
        streams = _count("streams", streams) or DEFAULT_STREAMS
        facts = manifest.model
        if verify:
            manifest.verify_files(folder, {manifest.tokenizer_file: manifest.tokenizer_sha256})
        tokenizer = TextTokenizer(
            folder / manifest.tokenizer_file, max_length=facts.max_length, pad_id=facts.pad_token_id
        )
        opened: dict[str, Session] = {}

        def open_variant(name: str) -> Session:  # files are checked before any engine reads them (auto opens several)
            if name not in opened:
                rec = manifest.variant(name)
                if verify:
                    manifest.verify_files(folder, rec.files)
                opened[name] = open_session(
                    folder / rec.file, rec, providers=provs, threads=threads, spinning=spinning, streams=streams
                )
            return opened[name]

        def release(name: str) -> None:  # auto lets go of what it timed and did not choose
            opened.pop(name, None)

        def check(name: str) -> VariantCheck:  # auto re-measures a variant gated on another ISA
            enc = cls(folder, manifest, Selection(name, name, "checked"), open_variant(name), tokenizer)
            return check_variant(
                manifest, name, lambda t, task: enc.encode(t, task=task), read_reference(folder, manifest)
            )

        selection = choose(
            manifest,
            variant,
            folder=folder,
            providers=provs,
            allow_cpu_fp16=allow_cpu_fp16,
            autotune=autotune,
            threads=threads,
            streams=streams,
            open_session=open_variant,
            release=release,
            check=check,
        )
        return cls(folder, manifest, selection, open_variant(selection.variant), tokenizer)

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
        long: str = "truncate",
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
        RoSBERTa). ``long``: what a text longer than :attr:`max_length` tokens gets: ``"truncate"`` (cut to it,
        keeping the closing special token), ``"error"`` (:class:`InputTooLongError` naming the first, before any
        compute; ``truncate=False`` says the same) or ``"chunk"`` (one vector from overlapping windows over the
        whole text: the L2-normalised, token-weighted mean of :meth:`encode_chunks`' vectors; a text that fits
        gets exactly its ``"truncate"`` vector). Results don't depend on ``batch_size``/``max_batch_tokens`` or
        on a text's batch neighbours.
        """
        return self.encode_detailed(
            texts,
            task=task,
            long=long,
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
        long: str = "truncate",
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        normalize: bool | None = None,
        truncate: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Encoded:
        """Like :meth:`encode`, plus each text's token count and whether it was truncated (never, with
        ``long="chunk"``)."""
        mode = long_mode(long, truncate)
        items, starts, added = self._prepare_spans(texts, task)
        norm = self.facts.normalize if normalize is None else bool(normalize)
        n = len(items)
        out = np.empty((n, self.dim), dtype=np.float32)
        counts = np.empty(n, dtype=np.int64)
        truncated = np.empty(n, dtype=bool)
        # Check lengths of all texts first, so an over-long text fails before any compute is spent.
        if mode == "error":
            for start in range(0, n, _CHUNK):
                self._tokenizer.tokenize(items[start : start + _CHUNK], truncate=False)
        for start in range(0, n, _CHUNK):
            part = slice(start, start + _CHUNK)
            tok = self._tokenizer.tokenize(items[part], truncate=True)
            counts[part], truncated[part] = tok.token_counts, tok.truncated
            fit = [i for i in range(len(tok.ids)) if mode != "chunk" or not tok.truncated[i]]
            lengths = [tok.lengths[i] for i in fit]
            for batch in plan_batches(lengths, batch_size=batch_size, max_batch_tokens=max_batch_tokens):
                rows = [fit[j] for j in batch]
                out[[start + i for i in rows]] = self._run([tok.ids[i] for i in rows], norm)
                if progress is not None:
                    progress(len(rows))
            over = [start + i for i in range(len(tok.ids)) if mode == "chunk" and tok.truncated[i]]
            if over:
                chunks = self._chunks(
                    [items[i] for i in over],
                    [starts[i] for i in over],
                    [added[i] for i in over],
                    window=None,
                    overlap=None,
                    batch_size=batch_size,
                    max_batch_tokens=max_batch_tokens,
                    norm=norm,
                )
                for i, ch in zip(over, chunks):
                    out[i] = mean_of_chunks(ch, norm)
                    truncated[i] = False
                if progress is not None:
                    progress(len(over))
        return Encoded(embeddings=out, token_counts=counts, truncated=truncated)

    def encode_chunks(
        self,
        texts: str | Sequence[str],
        *,
        task: str | None = None,
        window: int | None = None,
        overlap: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        normalize: bool | None = None,
    ) -> list[Chunks]:
        """Each text as overlapping windows of its own tokens, one vector per window, with where each window is.

        ``window``: tokens of the text per window, at most what :attr:`max_length` leaves beside the special tokens
        and the task prefix (the default: that). ``overlap``: about how many tokens consecutive windows share
        (default ``window // 8``): each window starts at the word start nearest that point, so a chunk's text
        (``char_spans``) tokenises to the ids its vector came from; the last window ends at the text's end and is as
        full as a word start allows (:mod:`rosberta_onnx.chunking`). The task prefix is added to every window.
        Windows of all texts are batched together. Returns one :class:`Chunks` per text, in input order; a text
        that fits is one window, whose vector is its :meth:`encode` vector.
        """
        items, starts, added = self._prepare_spans(texts, task)
        norm = self.facts.normalize if normalize is None else bool(normalize)
        return self._chunks(
            items,
            starts,
            added,
            window=window,
            overlap=overlap,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            norm=norm,
        )

    def plan(
        self,
        texts: str | Sequence[str],
        *,
        task: str | None = None,
        long: str = "chunk",
        direction: str = "right",
        window: int | None = None,
        overlap: int | None = None,
    ) -> list[ChunkPlan]:
        """The token ids the model would run for each text, with their spans and counts, without running them (one
        tokenisation; a server plans many requests' rows and merges them into batches for :meth:`encode_ids`).

        ``long="chunk"``: the windows of :meth:`encode_chunks`. ``"truncate"``: one row per text, cut to
        :attr:`max_length` keeping the task prefix and the special tokens; ``direction="left"`` keeps the end of
        the text instead of its start. ``"error"``: :class:`InputTooLongError` for the first text that is over."""
        mode = long_mode(long)
        if direction not in ("right", "left"):
            raise ValueError(f"direction={direction!r} is not 'right' (keep the start) or 'left' (keep the end)")
        items, starts, added = self._prepare_spans(texts, task)
        if mode == "chunk":
            return self._plan(items, starts, added, window, overlap)
        plans = self._plan(items, starts, added, None, 0)
        for i, p in enumerate(plans):
            if len(p.rows) > 1:
                if mode == "error":
                    raise InputTooLongError(
                        f"texts[{i}] has {p.total} tokens, more than this model's max length of {self.max_length}. "
                        f"Pass long='truncate' to cut it, or long='chunk' to embed it in windows."
                    )
                keep = -1 if direction == "left" else 0
                plans[i] = ChunkPlan(
                    rows=[p.rows[keep]],
                    token_spans=[p.token_spans[keep]],
                    char_spans=[p.char_spans[keep]],
                    tokens=p.tokens,
                    total=p.total,
                )
        return plans

    def encode_ids(
        self,
        rows: Sequence[Sequence[int]],
        *,
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        normalize: bool | None = None,
    ) -> np.ndarray:
        """Embed texts already tokenised as the model sees them (specials and prefix included, e.g. from
        :meth:`tokenize` or :meth:`chunk_ids`): float32 ``(len(rows), dim)`` in input order."""
        limit = self.max_length
        checked: list[list[int]] = []
        for i, r in enumerate(rows):
            if (
                isinstance(r, (str, bytes))
                or not isinstance(r, Sequence)
                or not all(isinstance(t, numbers.Integral) for t in r)
            ):
                raise InputTypeError(f"rows[{i}] is not a sequence of token ids (ints); tokenize texts with tokenize()")
            if not 1 <= len(r) <= limit:
                raise InputTooLongError(
                    f"rows[{i}] has {len(r)} ids; each row needs 1 to {limit} (this model's max "
                    f"length, special tokens included)"
                )
            checked.append([int(t) for t in r])
        norm = self.facts.normalize if normalize is None else bool(normalize)
        out = np.empty((len(checked), self.dim), dtype=np.float32)
        for batch in plan_batches([len(r) for r in checked], batch_size=batch_size, max_batch_tokens=max_batch_tokens):
            out[batch] = self._run([checked[i] for i in batch], norm)
        return out

    def _prepare_spans(self, texts: str | Sequence[str], task: str | None) -> tuple[list[str], list[int], list[int]]:
        """The prepared texts, where each one's own words start, and how many characters were added in front."""
        clean = as_text_list(texts)
        items, starts = apply_prompt_spans(clean, task, self.facts.prompts)
        return items, starts, [len(p) - len(t) for p, t in zip(items, clean)]

    def _plan(
        self, items: list[str], starts: list[int], added: list[int], window: int | None, overlap: int | None
    ) -> list[ChunkPlan]:
        plans = []
        for start in range(0, len(items), _CHUNK):
            part = slice(start, start + _CHUNK)
            for split in self._tokenizer.split(items[part], starts[part], added[part]):
                room = self.max_length - len(split.head) - len(split.tail)
                w = room if window is None else window
                ov = w // 8 if overlap is None else overlap
                check_window(w, ov, room)
                spans = windows(len(split.content), w, ov, split.starts)
                plans.append(
                    ChunkPlan(
                        rows=[split.head + split.content[a:b] + split.tail for a, b in spans],
                        token_spans=spans,
                        char_spans=[char_span(split.spans, a, b) for a, b in spans],
                        tokens=len(split.content),
                        total=len(split.head) + len(split.content) + len(split.tail),
                    )
                )
        return plans

    def _chunks(
        self,
        items: list[str],
        starts: list[int],
        added: list[int],
        *,
        window: int | None,
        overlap: int | None,
        batch_size: int,
        max_batch_tokens: int,
        norm: bool,
    ) -> list[Chunks]:
        plans = self._plan(items, starts, added, window, overlap)
        vecs = self.encode_ids(
            [r for p in plans for r in p.rows], batch_size=batch_size, max_batch_tokens=max_batch_tokens, normalize=norm
        )
        out, at = [], 0
        for p in plans:
            out.append(
                Chunks(
                    vectors=vecs[at : at + len(p.rows)],
                    token_spans=p.token_spans,
                    char_spans=p.char_spans,
                    tokens=p.tokens,
                )
            )
            at += len(p.rows)
        return out

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
