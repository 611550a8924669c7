"""``rosberta-onnx``: a thin command line over the library.

    rosberta-onnx encode DIR [-i FILE|-] [-o FILE] [--task T] [--long chunk] [--chunks]   one text per line (or JSONL)
    rosberta-onnx info DIR                                           the manifest's facts, parity and gate figures
    rosberta-onnx verify DIR [--variant V ...] [--sts N] [--json F]  re-measure variants on this CPU (exit 1: fails)

Other commands come from the packages built on the runtime, which register them under the entry-point group
``rosberta_onnx.commands`` (``synth``/``export``/``demo`` from the export side, ``serve``, ``embed-corpus``), each
defining its own flags; the runtime names none of them. Errors print one line (``error: ...``); the exit status
comes from :data:`EXIT_STATUS`.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

from .atomic import atomic_file
from .chunking import LONG_MODES
from .errors import InputFormatError, RosbertaError
from .manifest import VARIANTS, Manifest
from .report import gate_lines, parity_table

__all__ = ["main", "build_parser", "EXIT_STATUS", "COMMANDS_GROUP"]

COMMANDS_GROUP = "rosberta_onnx.commands"

# error class -> exit status, first match wins
EXIT_STATUS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    (KeyboardInterrupt, 130),  # Ctrl-C, or SIGTERM where a command turns it into one: nothing half-written is left
    (
        (ValueError, TypeError, ImportError, FileExistsError, FileNotFoundError, PermissionError),
        2,
    ),  # input, usage, extra
    ((RosbertaError, RuntimeError, OSError), 1),  # a failed check: a non-finite output, a load that failed
)


def read_texts(path: str, fmt: str | None) -> list[str]:
    """Texts from a file (or ``-``: stdin): one per line, or JSONL objects with a ``text`` field."""
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    # Invalid UTF-8 becomes U+FFFD instead of a crash; the count is reported so nothing is silent.
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if bad:
        print(f"warning: {bad} invalid UTF-8 sequence(s) in {path} were replaced with U+FFFD", file=sys.stderr)
    lines = text.splitlines()
    jsonl = fmt == "jsonl" or (fmt is None and path.endswith(".jsonl"))
    if not jsonl:
        return lines
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(
                f"{path}:{n}: not valid JSON ({exc.msg}); each line must be an object with a 'text' field"
            ) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputFormatError(f"{path}:{n}: expected an object with a string 'text' field")
        out.append(obj["text"])
    return out


def _cmd_encode(a: argparse.Namespace) -> int:
    import numpy as np

    from .encoder import Encoder

    if a.chunks and a.format == "npy":
        raise ValueError(
            "--chunks writes one JSON line per chunk (a text has as many chunks as it needs); drop --format npy"
        )
    if (a.window is not None or a.overlap is not None) and not a.chunks:
        raise ValueError("--window and --overlap shape the windows of --chunks; add --chunks")
    texts = read_texts(a.input, a.input_format)
    enc = Encoder.load(a.dir, variant=a.variant, threads=a.threads)
    done = [0]
    show = sys.stderr.isatty() or len(texts) >= 1000

    def progress(k: int) -> None:
        done[0] += k
        if show:
            print(f"\r[encode] {done[0]}/{len(texts)} texts", end="", file=sys.stderr, flush=True)

    def vector(vec: np.ndarray) -> list[float]:
        return [round(float(x), 7) for x in vec]

    if a.chunks:
        plans = enc.plan(texts, task=a.task, window=a.window, overlap=a.overlap)
        vecs = enc.encode_ids([r for p in plans for r in p.rows], batch_size=a.batch_size)

        def write(f: IO[bytes]) -> None:
            at = 0
            for i, p in enumerate(plans):
                for j, (row, (start, end)) in enumerate(zip(p.rows, p.char_spans)):
                    f.write(
                        (
                            json.dumps(
                                {
                                    "index": i,
                                    "chunk": j,
                                    "start": start,
                                    "end": end,
                                    "tokens": len(row),
                                    "embedding": vector(vecs[at]),
                                }
                            )
                            + "\n"
                        ).encode()
                    )
                    at += 1

        summary = f"{len(texts)} texts -> {len(vecs)} chunks of {enc.dim} float32 with {enc.variant}"
    else:
        res = enc.encode_detailed(texts, task=a.task, long=a.long, batch_size=a.batch_size, progress=progress)
        if show:
            print(file=sys.stderr)
        fmt = a.format or ("jsonl" if (a.output or "").endswith(".jsonl") else "npy")

        def write(f: IO[bytes]) -> None:
            if fmt == "npy":
                buf = io.BytesIO()
                np.save(buf, res.embeddings)
                f.write(buf.getvalue())
                return
            for i, vec in enumerate(res.embeddings):
                f.write(
                    (
                        json.dumps(
                            {
                                "index": i,
                                "tokens": int(res.token_counts[i]),
                                "truncated": bool(res.truncated[i]),
                                "embedding": vector(vec),
                            }
                        )
                        + "\n"
                    ).encode()
                )

        n_trunc = int(res.truncated.sum())
        summary = f"{len(texts)} texts -> {res.embeddings.shape} float32 with {enc.variant}" + (
            f"; {n_trunc} truncated to {enc.max_length} tokens" if n_trunc else ""
        )
    if not a.output or a.output == "-":
        write(sys.stdout.buffer)
    else:
        with atomic_file(a.output, "wb") as f:
            write(f)
    print(f"[encode] {summary}", file=sys.stderr)
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    m = Manifest.read(a.dir)
    src = m.source
    print(
        f"source: {src.get('model')} @ {src.get('revision')}"
        + ("  [STAND-IN: random weights]" if src.get("stand_in") else "")
    )
    f = m.model
    print(
        f"model: {f.architecture}, {f.num_layers} layers, dim {f.dim}, max length {f.max_length}, pooling {f.pooling}, "
        f"normalize {f.normalize}, tasks {list(f.prompts)}"
    )
    print(parity_table(m))
    print(*gate_lines(m), sep="\n")
    for name, rec in m.variants.items():
        if rec.engine != "onnxruntime":
            print(
                f"{name}: runs on {rec.engine} with {dict(rec.engine_options)} (pip install 'rosberta-onnx[{rec.engine}]')"
            )
    return 0


def _cmd_verify(a: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .verify import verify

    report = verify(a.dir, variants=a.variant, sts_pairs=a.sts, threads=a.threads)
    print(report)
    if a.json:
        checks = [
            {
                "variant": c.variant,
                "passed": c.passed,
                "gated_on": report.export_isa.get(c.variant, ""),
                "cosines": c.cosines,
                "sts": c.sts,
                "thresholds": c.thresholds,
                "judged": list(c.judged),
                "failures": list(c.failures),
                "recorded_misses": list(c.recorded_misses),
                "error": c.error,
            }
            for c in report.checks
        ]
        facts = {"cpu": report.cpu, "isa": report.isa, "machine": report.machine, "reference": report.reference}
        write_json_atomic(a.json, {**facts, "passed": report.passed, "checks": checks})
    return 0 if report.passed else 1


def _register_runtime_commands(sub: Any) -> None:
    n = sub.add_parser("encode", help="embed texts (one per line, or JSONL with a 'text' field)")
    n.add_argument("dir")
    n.add_argument("-i", "--input", default="-", help="file, or - for stdin (default)")
    n.add_argument("--input-format", choices=["lines", "jsonl"], default=None, help="default: by extension")
    n.add_argument("-o", "--output", default=None, help="file (default: stdout)")
    n.add_argument("--format", choices=["npy", "jsonl"], default=None, help="default: by extension, else npy")
    n.add_argument("--variant", default="auto", choices=("auto",) + VARIANTS)
    n.add_argument("--task", default=None, help="task prefix to add (e.g. search_query); default none")
    n.add_argument("--batch-size", type=int, default=32)
    n.add_argument("--threads", type=int, default=None)
    n.add_argument(
        "--long",
        choices=LONG_MODES,
        default="truncate",
        help="a text over the max length: truncate it (default), error, or chunk it into windows and "
        "write one vector per text (their token-weighted mean)",
    )
    n.add_argument(
        "--chunks",
        action="store_true",
        help="one JSON line per window instead: index, chunk, start, end (characters), tokens, embedding",
    )
    n.add_argument("--window", type=int, default=None, help="with --chunks: text tokens per window (default: all fit)")
    n.add_argument("--overlap", type=int, default=None, help="with --chunks: tokens windows share (default window/8)")
    n.set_defaults(func=_cmd_encode)

    i = sub.add_parser("info", help="show an artifact's manifest, parity and gate figures")
    i.add_argument("dir")
    i.set_defaults(func=_cmd_info)

    v = sub.add_parser(
        "verify",
        help="re-measure variants on this CPU against the reference set the artifact ships (exit 1 if one fails)",
    )
    v.add_argument("dir")
    v.add_argument(
        "--variant",
        action="append",
        choices=VARIANTS + ("all",),
        help="a variant to check (repeatable; 'all': every one). Default: fp32 and each quantised variant that "
        "passed its gate",
    )
    v.add_argument(
        "--sts",
        type=int,
        default=0,
        metavar="N",
        help="also the retrieval and STS figures on N shipped STS pairs per language against fp32 here (recorded "
        "beside the verdict: a sample, so not judged)",
    )
    v.add_argument("--threads", type=int, default=None)
    v.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    v.set_defaults(func=_cmd_verify)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rosberta-onnx", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    _register_runtime_commands(sub)
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        ep.load()(sub)  # a command module imports only argparse at load; its extra is checked when it runs
    return p


def exit_status(exc: BaseException) -> int:
    return next((code for kinds, code in EXIT_STATUS if isinstance(exc, kinds)), 1)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
        return exit_status(KeyboardInterrupt())
    except Exception as exc:
        if exit_status(exc) == 1 and not isinstance(exc, (RosbertaError, RuntimeError, OSError)):
            raise  # a bug, not a condition a user can act on: keep its traceback
        print(f"error: {exc}", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
