"""Request bodies in, typed requests out; anything wrong becomes an :class:`ApiError` naming the field.

Parsing is strict about types (a number where a list of strings belongs is a 422 naming ``input[3]``)
and lenient about extra fields: OpenAI clients send ``user`` and other keys this server has no use
for, and rejecting them would break those clients.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rosberta_onnx import RosbertaError

__all__ = [
    "ApiError",
    "EmbedRequest",
    "TokenizeRequest",
    "ChunksRequest",
    "SimilarityRequest",
    "DecodeRequest",
    "parse_json",
    "parse_openai",
    "parse_tei_embed",
    "parse_tei_tokenize",
    "parse_embed_chunks",
    "parse_tei_similarity",
    "parse_tei_decode",
    "is_similarity",
]


class ApiError(RosbertaError):
    """An error answered to the client: HTTP status, a message, and the request field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        kind: str = "invalid_request_error",
        tei_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.kind = kind  # OpenAI's error "type"
        self.tei_type = tei_type  # TEI's "error_type"; None: derived from the status
        self.headers = headers or {}


@dataclass(frozen=True)
class EmbedRequest:
    texts: list[str]
    task: str | None
    normalize: bool | None  # None: the model's default
    truncate: bool | None  # None: the server's --long default; True: cut to the max length; False: 413 if over
    direction: str  # which end truncation keeps: "right" keeps the start, "left" the end (the prefix stays)
    encoding_format: str  # "float" | "base64" (OpenAI) or "float" (TEI)
    model: str | None
    dimensions: int | None
    input_was_str: bool


@dataclass(frozen=True)
class ChunksRequest:
    texts: list[str]
    task: str | None
    normalize: bool | None
    window: int | None  # tokens of the text per window (None: all that fit)
    overlap: int | None  # tokens consecutive windows share (None: window // 8)


@dataclass(frozen=True)
class TokenizeRequest:
    texts: list[str]
    task: str | None
    add_special_tokens: bool
    truncate: bool


@dataclass(frozen=True)
class SimilarityRequest:
    source: str
    sentences: list[str]
    task: str | None
    truncate: bool | None
    direction: str


@dataclass(frozen=True)
class DecodeRequest:
    ids: list[list[int]]
    skip_special_tokens: bool
    was_flat: bool  # one sequence sent as a flat list: answer one string


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"the request body is not UTF-8 ({exc.reason} at byte {exc.start})", field="body") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="body"
        ) from None
    if not isinstance(obj, dict):
        raise ApiError(422, f"the request body must be a JSON object, got {_kind(obj)}", field="body")
    return obj


def _kind(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _texts(obj: dict[str, Any], name: str, *, max_inputs: int) -> tuple[list[str], bool]:
    if name not in obj:
        raise ApiError(422, f"missing required field {name!r}: a string or a list of strings", field=name)
    value = obj[name]
    if isinstance(value, str):
        return [value], True
    if not isinstance(value, list):
        raise ApiError(422, f"{name!r} must be a string or a list of strings, got {_kind(value)}", field=name)
    if not value:
        raise ApiError(422, f"{name!r} is an empty list; send at least one string", field=name)
    if len(value) > max_inputs:
        raise ApiError(
            413,
            f"{name!r} has {len(value)} items, more than this server's limit of {max_inputs} per "
            f"request; split it into several requests",
            field=name,
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            hint = (
                " (token-id arrays are not supported: send text; e.g. LangChain's OpenAIEmbeddings needs "
                "check_embedding_ctx_length=False)"
                if isinstance(item, (int, list))
                else ""
            )
            raise ApiError(422, f"{name}[{i}] must be a string, got {_kind(item)}{hint}", field=f"{name}[{i}]")
    return list(value), False


def _opt(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
    value = obj.get(name)
    if value is None:
        return default
    # bool is a subclass of int: `"dimensions": true` must not pass as 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(422, f"{name!r} must be {what}, got {_kind(value)}", field=name)
    return value


def _dimensions(obj: dict[str, Any], dim: int) -> int | None:
    value = _opt(obj, "dimensions", int, None, "an integer")
    if value is not None and value != dim:
        raise ApiError(
            422,
            f"'dimensions' is {value}, but this model only returns {dim}-dimensional vectors "
            f"(it was not trained to be truncated); omit the field or send {dim}",
            field="dimensions",
        )
    return value


def parse_openai(obj: dict[str, Any], *, max_inputs: int, dim: int) -> EmbedRequest:
    """``POST /v1/embeddings``: input, model, encoding_format, dimensions; extensions: task, truncate."""
    texts, was_str = _texts(obj, "input", max_inputs=max_inputs)
    fmt = _opt(obj, "encoding_format", str, "float", "'float' or 'base64'")
    if fmt not in ("float", "base64"):
        raise ApiError(422, f"'encoding_format' must be 'float' or 'base64', got {fmt!r}", field="encoding_format")
    return EmbedRequest(
        texts=texts,
        task=_opt(obj, "task", str, None, "a task name string or null"),
        normalize=None,
        truncate=_opt(obj, "truncate", bool, None, "a boolean"),
        direction="right",
        encoding_format=fmt,
        model=_opt(obj, "model", str, None, "a string"),
        dimensions=_dimensions(obj, dim),
        input_was_str=was_str,
    )


def _direction(obj: dict[str, Any]) -> str:
    direction = _opt(obj, "truncation_direction", str, "Right", "'Right' or 'Left'")
    if direction.lower() not in ("right", "left"):
        raise ApiError(
            422,
            f"'truncation_direction' must be 'Right' (keep the start of a text cut to the max length) or 'Left' "
            f"(keep its end; the task prefix stays either way), got {direction!r}",
            field="truncation_direction",
        )
    return direction.lower()


def parse_tei_embed(obj: dict[str, Any], *, max_inputs: int, dim: int) -> EmbedRequest:
    """``POST /embed`` (text-embeddings-inference): inputs, normalize, truncate, truncation_direction, prompt_name."""
    texts, was_str = _texts(obj, "inputs", max_inputs=max_inputs)
    direction = _direction(obj)
    _dimensions(obj, dim)
    return EmbedRequest(
        texts=texts,
        task=_opt(obj, "prompt_name", str, None, "a prompt name string or null"),
        normalize=_opt(obj, "normalize", bool, True, "a boolean"),
        truncate=_opt(obj, "truncate", bool, None, "a boolean"),
        direction=direction,
        encoding_format="float",
        model=None,
        dimensions=None,
        input_was_str=was_str,
    )


def parse_tei_tokenize(obj: dict[str, Any], *, max_inputs: int) -> TokenizeRequest:
    """``POST /tokenize``: inputs, add_special_tokens, prompt_name; extension: truncate (default false)."""
    texts, _ = _texts(obj, "inputs", max_inputs=max_inputs)
    return TokenizeRequest(
        texts=texts,
        task=_opt(obj, "prompt_name", str, None, "a prompt name string or null"),
        add_special_tokens=_opt(obj, "add_special_tokens", bool, True, "a boolean"),
        truncate=_opt(obj, "truncate", bool, False, "a boolean"),
    )


def parse_embed_chunks(obj: dict[str, Any], *, max_inputs: int) -> ChunksRequest:
    """``POST /embed_chunks``: inputs, prompt_name, normalize (TEI's names), window, overlap."""
    texts, _ = _texts(obj, "inputs", max_inputs=max_inputs)
    return ChunksRequest(
        texts=texts,
        task=_opt(obj, "prompt_name", str, None, "a prompt name string or null"),
        normalize=_opt(obj, "normalize", bool, True, "a boolean"),
        window=_opt(obj, "window", int, None, "a whole number of tokens"),
        overlap=_opt(obj, "overlap", int, None, "a whole number of tokens"),
    )


def is_similarity(obj: dict[str, Any]) -> bool:
    """TEI's ``POST /`` serves both: a ``{"source_sentence", "sentences"}`` object in ``inputs`` asks for similarity."""
    return isinstance(obj.get("inputs"), dict)


def parse_tei_similarity(obj: dict[str, Any], *, max_inputs: int) -> SimilarityRequest:
    """``POST /similarity``: ``{"inputs": {"source_sentence", "sentences"}, "parameters": {"prompt_name",
    "truncate", "truncation_direction"}}`` (what ``huggingface_hub``'s ``sentence_similarity`` sends)."""
    inputs = obj.get("inputs")
    if not isinstance(inputs, dict):
        raise ApiError(
            422,
            f"'inputs' must be an object with 'source_sentence' (a string) and 'sentences' (a list of strings), "
            f"got {_kind(inputs)}",
            field="inputs",
        )
    source = inputs.get("source_sentence")
    if not isinstance(source, str):
        raise ApiError(
            422, f"'inputs.source_sentence' must be a string, got {_kind(source)}", field="inputs.source_sentence"
        )
    named = {"inputs.sentences": inputs["sentences"]} if "sentences" in inputs else {}
    sentences, _ = _texts(named, "inputs.sentences", max_inputs=max(1, max_inputs - 1))
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise ApiError(422, f"'parameters' must be an object or null, got {_kind(params)}", field="parameters")
    return SimilarityRequest(
        source=source,
        sentences=sentences,
        task=_opt(params, "prompt_name", str, None, "a prompt name string or null"),
        truncate=_opt(params, "truncate", bool, None, "a boolean"),
        direction=_direction(params),
    )


def parse_tei_decode(obj: dict[str, Any], *, vocab_size: int, max_inputs: int) -> DecodeRequest:
    """``POST /decode``: ``ids`` (a list of token ids, or a list of such lists), ``skip_special_tokens``."""
    ids = obj.get("ids")
    if not isinstance(ids, list) or not ids:
        raise ApiError(
            422, f"'ids' must be a non-empty list of token ids or of such lists, got {_kind(ids)}", field="ids"
        )
    flat = not isinstance(ids[0], list)
    rows = [ids] if flat else ids
    if len(rows) > max_inputs:
        raise ApiError(
            413, f"'ids' has {len(rows)} sequences, more than this server's limit of {max_inputs}", field="ids"
        )
    for i, row in enumerate(rows):
        where = "ids" if flat else f"ids[{i}]"
        if not isinstance(row, list):
            raise ApiError(422, f"{where} must be a list of token ids, got {_kind(row)}", field=where)
        for j, t in enumerate(row):
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < vocab_size:
                raise ApiError(
                    422,
                    f"{where}[{j}] must be a token id from 0 to {vocab_size - 1} (this model's vocabulary), got {t!r}",
                    field=f"{where}[{j}]",
                )
    return DecodeRequest(
        ids=rows,
        skip_special_tokens=_opt(obj, "skip_special_tokens", bool, True, "a boolean"),
        was_flat=flat,
    )
