"""The HTTP routes: OpenAI's ``/v1/embeddings``, TEI's ``/embed``, ``/tokenize`` and ``/info``, plus
``/health``, ``/ready``, ``/metrics`` and ``/v1/models``.

Every route answers JSON, errors included, in the shape its clients parse: OpenAI routes
``{"error": {"message", "type", "param", "code"}}``, the others TEI's ``{"error", "error_type"}``
plus ``"field"``. ``param``/``field`` name the request field at fault (``input[3]``). An exception
nobody expected becomes a 500 for that request only: the server keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rosberta_onnx import __version__

from .config import ServeConfig
from .state import ServerState
from .validation import (
    ApiError,
    is_similarity,
    parse_embed_chunks,
    parse_json,
    parse_openai,
    parse_tei_decode,
    parse_tei_embed,
    parse_tei_similarity,
    parse_tei_tokenize,
)

__all__ = ["create_app"]

log = logging.getLogger("rosberta_serve")

# A client that sends more than the limit gets its 413 only if it finishes sending first (otherwise
# it sees a reset connection), so an oversized body is read and dropped, up to this much more.
_DRAIN_BYTES = 64 * 1024 * 1024
_TEI_TYPES = {
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "Validation",
    422: "Validation",
    503: "Unhealthy",
    500: "Backend",
}

# JSON work above these sizes (body bytes in, floats out: ~1 ms each) moves to a thread, so one big
# request can't stall every other connection on the event loop.
_INLINE_BYTES = 256 * 1024
_INLINE_FLOATS = 64 * 1024

Handler = Callable[[Request], Awaitable[Response]]


async def _off_loop_if_big(render: Callable[[], Response], floats: int) -> Response:
    return await asyncio.to_thread(render) if floats > _INLINE_FLOATS else render()


def create_app(config: ServeConfig, *, on_fatal: Callable[[BaseException], None] | None = None) -> Starlette:
    """The Starlette app; the model starts loading in the background when the server starts.

    ``on_fatal`` is called with the exception if loading fails (the CLI uses it to stop the server
    with an error instead of staying up unready).
    """
    state = ServerState(config, on_fatal=on_fatal)

    def endpoint(route: str, family: str, fn: Handler, *, auth: bool = True) -> Handler:
        async def handler(request: Request) -> Response:
            start = time.perf_counter()
            state.in_flight += 1
            try:
                if auth:
                    state.check_auth(request.headers.get("authorization"))
                response = await fn(request)
            except ApiError as exc:
                response = _error(family, exc)
                if exc.status == 401 and request.method == "POST":
                    # The body was never read; a connection with unread bytes can't carry the next request.
                    response.headers["connection"] = "close"
            except Exception as exc:
                log.exception("unexpected error on %s", route)
                response = _error(
                    family, ApiError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")
                )
            finally:
                state.in_flight -= 1
            state.m_requests.inc(route=route, status=str(response.status_code))
            state.m_latency.observe(time.perf_counter() - start, route=route)
            return response

        return handler

    async def body_of(request: Request) -> dict:
        limit = config.max_body_bytes
        declared = request.headers.get("content-length", "")
        chunks, size = [], 0
        too_big = declared.isdigit() and int(declared) > limit
        if not too_big:
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        too_big = True
                        break
                    chunks.append(chunk)
            except ClientDisconnect:
                raise ApiError(400, "the client disconnected before sending the whole body", field="body") from None
        if too_big:
            drained = 0
            with contextlib.suppress(Exception):
                async for chunk in request.stream():
                    drained += len(chunk)
                    if drained > _DRAIN_BYTES:
                        break
            raise ApiError(
                413,
                f"the request body is larger than this server's limit of {limit} bytes; "
                f"send fewer or shorter inputs per request",
                field="body",
                headers={"connection": "close"} if drained > _DRAIN_BYTES else None,
            )
        body = b"".join(chunks)
        if len(body) > _INLINE_BYTES:
            return await asyncio.to_thread(parse_json, body)
        return parse_json(body)

    async def openai_embeddings(request: Request) -> Response:
        with state.arrival() as arrival:
            req = parse_openai(await body_of(request), max_inputs=config.max_inputs, dim=state.facts.dim)
            res = await state.embed(
                req.texts,
                task=req.task,
                task_field="task",
                text_field="input",
                normalize=req.normalize,
                truncate=req.truncate,
                arrival=arrival,
            )
        used = int(res.seen.sum())

        def render() -> Response:
            if req.encoding_format == "base64":
                vectors = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in res.embeddings]
            else:
                vectors = res.embeddings.tolist()
            return JSONResponse(
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                    "model": state.model_name,
                    "usage": {"prompt_tokens": used, "total_tokens": used},
                }
            )

        return await _off_loop_if_big(render, res.embeddings.size)

    async def tei_embed(request: Request) -> Response:
        return await embed_body(await body_of(request))

    async def embed_body(body: dict) -> Response:
        with state.arrival() as arrival:
            req = parse_tei_embed(body, max_inputs=config.max_inputs, dim=state.facts.dim)
            res = await state.embed(
                req.texts,
                task=req.task,
                task_field="prompt_name",
                text_field="inputs",
                normalize=req.normalize,
                truncate=req.truncate,
                direction=req.direction,
                arrival=arrival,
            )
        return await _off_loop_if_big(lambda: JSONResponse(res.embeddings.tolist()), res.embeddings.size)

    async def tei_similarity(request: Request) -> Response:
        return await similarity_body(await body_of(request))

    async def similarity_body(body: dict) -> Response:
        """Cosine of the source sentence with each sentence (vectors L2-normalised whatever the model's default)."""
        with state.arrival() as arrival:
            req = parse_tei_similarity(body, max_inputs=config.max_inputs)
            res = await state.embed(
                [req.source, *req.sentences],
                task=req.task,
                task_field="parameters.prompt_name",
                text_field="inputs",
                normalize=True,
                truncate=req.truncate,
                direction=req.direction,
                arrival=arrival,
                item_names=["inputs.source_sentence", *(f"inputs.sentences[{i}]" for i in range(len(req.sentences)))],
            )
        return JSONResponse((res.embeddings[1:] @ res.embeddings[0]).tolist())

    async def tei_compat(request: Request) -> Response:
        """TEI's ``POST /``: an embedding server answers embeddings, or similarities for a similarity-shaped body."""
        body = await body_of(request)
        return await (similarity_body(body) if is_similarity(body) else embed_body(body))

    async def tei_decode(request: Request) -> Response:
        req = parse_tei_decode(await body_of(request), vocab_size=state.facts.vocab_size, max_inputs=config.max_inputs)
        texts = await asyncio.to_thread(state.tokens.decode, req.ids, skip_special_tokens=req.skip_special_tokens)
        return JSONResponse(texts[0] if req.was_flat else texts)

    async def tei_embed_all(request: Request) -> Response:
        await body_of(request)  # read, so the connection can carry the next request
        raise ApiError(
            501,
            "per-token vectors (/embed_all) are not served: the runtime returns pooled sentence vectors, and a "
            "CLS-pooled artifact's graphs compute only the first token in the last layer; use /embed",
            tei_type="Backend",
        )

    async def embed_chunks(request: Request) -> Response:
        with state.arrival() as arrival:
            req = parse_embed_chunks(await body_of(request), max_inputs=config.max_inputs)
            got = await state.embed_chunks(
                req.texts,
                task=req.task,
                normalize=req.normalize,
                window=req.window,
                overlap=req.overlap,
                arrival=arrival,
            )

        def render() -> Response:
            return JSONResponse(
                [
                    {
                        "tokens": plan.total,
                        "chunks": [
                            {
                                "start": c0,
                                "end": c1,
                                "token_start": t0,
                                "token_end": t1,
                                "tokens": len(row),
                                "embedding": vec.tolist(),
                            }
                            for row, (c0, c1), (t0, t1), vec in zip(plan.rows, plan.char_spans, plan.token_spans, vecs)
                        ],
                    }
                    for plan, vecs in got
                ]
            )

        return await _off_loop_if_big(render, sum(v.size for _, v in got))

    async def tei_tokenize(request: Request) -> Response:
        req = parse_tei_tokenize(await body_of(request), max_inputs=config.max_inputs)
        prepared = state.prepare(req.texts, req.task, task_field="prompt_name")
        rows = await asyncio.to_thread(
            state.tokens.details, prepared, add_special_tokens=req.add_special_tokens, truncate=req.truncate
        )
        return JSONResponse(rows)

    async def info(request: Request) -> Response:
        f, enc = state.facts, state.encoder
        return JSONResponse(
            {
                "model_id": state.model_name,
                "model_sha": state.manifest.source.get("revision"),
                "model_dtype": state.variant,
                "model_type": {"embedding": {"pooling": f.pooling}},
                "max_input_length": f.max_length,
                "max_batch_tokens": config.max_batch_tokens,
                "run_batch_tokens": config.run_batch_tokens,
                "max_batch_requests": config.max_batch_size,
                "max_client_batch_size": config.max_inputs,
                "auto_truncate": config.long != "error",
                "max_concurrent_requests": config.max_queue,
                "version": __version__,
                "dim": f.dim,
                "normalize": f.normalize,
                "prompts": dict(f.prompts),
                "stand_in": bool(state.manifest.source.get("stand_in")),
                "providers": enc.providers if enc else None,
                "streams": enc.streams if enc else None,
                "dynamic_batching": config.batching,
                "long": config.long,
                "max_chunks": config.max_chunks,
                "max_chunk_chars": config.max_chunk_chars,
                "spinning": config.spinning,
                "max_wait_ms": config.max_wait_ms,
                "status": state.status,
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": state.model_name, "object": "model", "created": 0, "owned_by": "rosberta-onnx"}],
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        body = {"status": state.status} | ({"error": state.error} if state.error else {})
        return JSONResponse(body, status_code=200 if state.status == "ready" else 503)

    async def metrics(request: Request) -> Response:
        return Response(state.registry.render(), media_type=state.registry.CONTENT_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # the handler is registered for HTTPException only
        family = "openai" if request.url.path.startswith("/v1/") else "tei"
        state.m_requests.inc(route="other", status=str(exc.status_code))
        return _error(
            family,
            ApiError(
                exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", headers=dict(exc.headers or {})
            ),
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        loading = asyncio.create_task(state.load(), name="rosberta-load")
        try:
            yield
        finally:
            if not loading.done():
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
            await state.close()

    routes = [
        Route("/v1/embeddings", endpoint("/v1/embeddings", "openai", openai_embeddings), methods=["POST"]),
        Route("/embeddings", endpoint("/embeddings", "openai", openai_embeddings), methods=["POST"]),
        Route("/v1/models", endpoint("/v1/models", "openai", models), methods=["GET"]),
        Route("/", endpoint("/", "tei", tei_compat), methods=["POST"]),
        Route("/embed", endpoint("/embed", "tei", tei_embed), methods=["POST"]),
        Route("/similarity", endpoint("/similarity", "tei", tei_similarity), methods=["POST"]),
        Route("/decode", endpoint("/decode", "tei", tei_decode), methods=["POST"]),
        Route("/embed_all", endpoint("/embed_all", "tei", tei_embed_all), methods=["POST"]),
        Route("/embed_chunks", endpoint("/embed_chunks", "tei", embed_chunks), methods=["POST"]),
        Route("/tokenize", endpoint("/tokenize", "tei", tei_tokenize), methods=["POST"]),
        Route("/info", endpoint("/info", "tei", info), methods=["GET"]),
        Route("/metrics", endpoint("/metrics", "tei", metrics), methods=["GET"]),
        Route("/health", endpoint("/health", "tei", health, auth=False), methods=["GET"]),
        Route("/ready", endpoint("/ready", "tei", ready, auth=False), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.state.rosberta = state
    return app


def _error(family: str, exc: ApiError) -> JSONResponse:
    body: dict[str, object]
    if family == "openai":
        body = {"error": {"message": exc.message, "type": exc.kind, "param": exc.field, "code": exc.status}}
    else:
        kind = exc.tei_type or _TEI_TYPES.get(exc.status, "Validation" if exc.status < 500 else "Backend")
        body = {"error": exc.message, "error_type": kind, "field": exc.field}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)
