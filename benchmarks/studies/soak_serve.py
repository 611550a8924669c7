"""Soak test of ``rosberta-onnx serve`` over keep-alive: transport errors, p50/p99 latency and throughput.

    python -m benchmarks.studies.soak_serve ARTIFACT [--clients 64] [--requests 20000] [--keep-alive 75]
        [--idle-every 0] [--out benchmarks/results/soak]

``--clients`` closed-loop clients share one ``httpx.AsyncClient`` pool (one keep-alive connection each, the pool's
default idle expiry of 5 s) against a real server on 127.0.0.1, until ``--requests`` have been answered. The
requests mix every route a client calls, some malformed on purpose, and each answer is checked against the status
its kind must get:

    embed (TEI /embed), openai (/v1/embeddings), compat (TEI "/"), similarity, tokenize, decode: 200
    malformed JSON, a number where text belongs: 422 · an unknown route: 404 · a body over the limit: 413

A *transport error* is any request that got no HTTP answer (``httpx.TransportError``: ReadError,
RemoteProtocolError, ConnectError ...); the goal is zero. ``--idle-every N`` makes each client pause after every N
requests for about the server's keep-alive (jittered around it), which is when a server that closes idle
connections races a client reusing one: with ``--keep-alive 5`` (uvicorn's default, the same as httpx's pool
expiry) that race is what this study reproduces; with the server's default it does not happen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from ..harness.results import save

__all__ = ["main", "MIX"]

# (kind, share of requests, expected status)
MIX = (
    ("embed", 0.35, 200),
    ("openai", 0.2, 200),
    ("compat", 0.1, 200),
    ("similarity", 0.1, 200),
    ("tokenize", 0.08, 200),
    ("decode", 0.05, 200),
    ("bad_json", 0.05, 422),
    ("bad_field", 0.04, 422),
    ("not_found", 0.02, 404),
    ("too_big", 0.01, 413),
)
TEXTS = (
    "Сколько стоит билет до Казани?",
    "How much is a ticket to Kazan?",
    "погода завтра",
    "A man is playing a guitar on the street while people walk by.",
    "Мужчина играет на гитаре на улице.",
)
MAX_BODY = 64 * 1024  # the server runs with this body limit, so "too_big" costs little to send


def _request(kind: str, rng: random.Random, task: str | None) -> tuple[str, bytes]:
    """``task``: the prompt the embed requests name (None where the model has no prompt table)."""
    text = rng.choice(TEXTS)
    body: object
    if kind == "embed":
        return "/embed", json.dumps({"inputs": [text, rng.choice(TEXTS)], "prompt_name": task}).encode()
    if kind == "openai":
        return "/v1/embeddings", json.dumps({"input": text, "encoding_format": "base64"}).encode()
    if kind == "compat":
        return "/", json.dumps({"inputs": text}).encode()
    if kind == "similarity":
        body = {"inputs": {"source_sentence": text, "sentences": list(TEXTS[:3])}}
        return "/similarity", json.dumps(body).encode()
    if kind == "tokenize":
        return "/tokenize", json.dumps({"inputs": text}).encode()
    if kind == "decode":
        return "/decode", json.dumps({"ids": [0, 713, 16, 10, 1296, 2]}).encode()
    if kind == "bad_json":
        return "/embed", b'{"inputs": ["unterminated'
    if kind == "bad_field":
        return "/v1/embeddings", json.dumps({"input": [text, 7]}).encode()
    if kind == "not_found":
        return "/embedz", json.dumps({"inputs": text}).encode()
    if kind == "too_big":
        return "/embed", json.dumps({"inputs": ["x" * (MAX_BODY + 100)]}).encode()
    raise ValueError(kind)


async def _soak(url: str, a, task: str | None) -> dict:
    import httpx

    kinds = [k for k, _, _ in MIX]
    weights = [w for _, w, _ in MIX]
    expected = {k: s for k, _, s in MIX}
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    statuses: Counter = Counter()
    wrong: Counter = Counter()
    transport: Counter = Counter()
    examples: list[str] = []
    left = a.requests
    limits = httpx.Limits(max_connections=a.clients, max_keepalive_connections=a.clients)
    t0 = time.perf_counter()

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal left
        rng = random.Random(i)
        done = 0
        while left > 0:
            left -= 1
            kind = rng.choices(kinds, weights)[0]
            route, body = _request(kind, rng, task)
            start = time.perf_counter()
            try:
                r = await http.post(route, content=body, headers={"content-type": "application/json"})
            except httpx.TransportError as exc:
                transport[type(exc).__name__] += 1
                if len(examples) < 5:
                    examples.append(f"{kind} {route}: {type(exc).__name__}: {exc!r}"[:300])
                continue
            lat[kind].append(time.perf_counter() - start)
            statuses[r.status_code] += 1
            if r.status_code != expected[kind]:
                wrong[f"{kind}: {r.status_code}"] += 1
            done += 1
            if a.idle_every and done % a.idle_every == 0:
                await asyncio.sleep(a.idle_s + rng.uniform(-a.idle_jitter, a.idle_jitter))

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        await asyncio.gather(*(client(i, http) for i in range(a.clients)))
    wall = time.perf_counter() - t0
    every = sorted(x for v in lat.values() for x in v)
    answered = len(every)

    def pct(xs: list[float], q: float) -> float | None:
        return round(1e3 * xs[min(len(xs) - 1, int(q * len(xs)))], 2) if xs else None

    return {
        "answered": answered,
        "transport_errors": sum(transport.values()),
        "transport_by_type": dict(transport),
        "transport_examples": examples,
        "wrong_status": dict(wrong),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": round(wall, 2),
        "requests_per_s": round(answered / wall, 1),
        "p50_ms": pct(every, 0.5),
        "p99_ms": pct(every, 0.99),
        "per_kind": {
            k: {"n": len(v), "p50_ms": pct(sorted(v), 0.5), "p99_ms": pct(sorted(v), 0.99)} for k, v in lat.items()
        },
    }


def table(res: dict) -> str:
    rows = [
        "| server keep-alive s | clients | idle pauses | answered | transport errors | wrong status | req/s | "
        "p50 ms | p99 ms |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in res["runs"]:
        s, c = run["soak"], run["config"]
        idle = f"every {c['idle_every']} req, ~{c['idle_s']} s" if c["idle_every"] else "none"
        rows.append(
            f"| {c['keep_alive']:g} | {c['clients']} | {idle} | {s['answered']} | {s['transport_errors']} "
            f"{dict(s['transport_by_type']) or ''} | {sum(s['wrong_status'].values())} | {s['requests_per_s']} | "
            f"{s['p50_ms']} | {s['p99_ms']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from ..harness.live_server import LiveServer
    from ..harness.machine import cpu_facts
    from ..harness.runner import as_run

    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.soak_serve", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--variant", default="fp32")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--keep-alive", type=int, action="append", help="server keep-alive seconds (repeatable)")
    p.add_argument("--idle-every", type=int, default=0, help="each client pauses after every N requests (0: never)")
    p.add_argument("--idle-s", type=float, default=None, help="pause length (default: the server's keep-alive)")
    p.add_argument("--idle-jitter", type=float, default=0.05)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/soak"))
    p.add_argument("--page", type=Path, help="also write the table into this page's section (docs/serving.md)")
    p.add_argument("--section", default="soak", help="the page's section name (<!-- NAME:start -->)")
    a = p.parse_args(argv)
    log = lambda msg: print(f"[soak] {msg}", file=sys.stderr, flush=True)
    runs = []
    for keep in a.keep_alive or [None]:
        flags = ["--variant", a.variant, "--max-body-bytes", str(MAX_BODY), "--max-wait-ms", "2"]
        flags += ["--keep-alive", str(keep)] if keep is not None else []
        with LiveServer(a.artifact, *flags) as srv:
            info = json.loads(urllib.request.urlopen(srv.url + "/info", timeout=10).read())
            keep_s = keep if keep is not None else 75
            cfg = {
                "keep_alive": keep_s,
                "clients": a.clients,
                "requests": a.requests,
                "idle_every": a.idle_every,
                "idle_s": a.idle_s if a.idle_s is not None else keep_s,
                "idle_jitter": a.idle_jitter,
            }
            run_args = argparse.Namespace(**{**vars(a), "idle_s": cfg["idle_s"]})
            log(f"server keep-alive {keep_s} s, {a.clients} clients, {a.requests} requests, idle {a.idle_every}")
            task = "search_query" if "search_query" in (info.get("prompts") or {}) else None
            soak = asyncio.run(_soak(srv.url, run_args, task))
            log(json.dumps({k: soak[k] for k in ("answered", "transport_errors", "requests_per_s", "p50_ms")}))
            alive = srv.alive()
        runs.append({"config": cfg, "soak": soak, "server_alive_after": alive, "model": info.get("model_id")})
    res = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "variant": a.variant,
        "mix": [{"kind": k, "share": w, "expect": s} for k, w, s in MIX],
        "runs": runs,
        "reproduce": "python -m benchmarks.studies.soak_serve " + as_run(argv),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    save(a.out / "soak.json", res)
    md = (
        f"Soak of `rosberta-onnx serve` (`{a.artifact}`, {a.variant}) on {res['machine']['description']}; clients "
        f"and server on one machine over 127.0.0.1, one httpx pool (idle expiry 5 s); request mix: "
        + ", ".join(f"{k} {w:.0%}" for k, w, _ in MIX)
        + f". Reproduce: `{res['reproduce']}`\n\n"
        + table(res)
        + "\n"
    )
    save(a.out / "soak.md", md)
    if a.page:
        from ..harness.pages import publish_section

        publish_section(a.page, a.section, md, "python -m benchmarks.studies.soak_serve")
    print(md)
    return 0 if all(r["soak"]["transport_errors"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
