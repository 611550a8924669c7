"""``rosberta-onnx``: a thin command line over the library.

    rosberta-onnx synth DIR [--size full|tiny] [--seed N]           offline stand-in checkpoint (export extra)
    rosberta-onnx export [MODEL] -o DIR [--variants LIST]            checkpoint -> ONNX artifact (export extra)
    rosberta-onnx encode DIR [-i FILE|-] [-o FILE] [--task T]        embed one text per line (or JSONL)
    rosberta-onnx info DIR                                           the manifest's facts and parity figures
    rosberta-onnx demo [DIR]                                         synth -> export -> encode -> parity table
    rosberta-onnx serve DIR [--port 8080] [--api-key KEY]           OpenAI/TEI-compatible HTTP server (serve extra)
    rosberta-onnx embed-corpus DIR --input PATH --output PATH        Parquet/JSONL shards -> Parquet on Ray (distributed extra)
    rosberta-onnx bench DIR [--reference MODEL] [--quick] [--out D]  speed/quality/memory vs torch and peers (bench extra)

Errors print one line (``error: ...``) and exit with status 2 (bad usage or input) or 1 (failed check).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

from .errors import InputFormatError, MissingDependencyError, RosbertaError
from .interrupt import end_like_ctrl_c_on_sigterm
from .manifest import VARIANTS
from .report import gate_line, parity_table

__all__ = ["main"]

DEFAULT_MODEL = "ai-forever/ru-en-RoSBERTa"


def _export_side() -> None:
    """Fail early, with the extra to install, if the torch side is missing (checked without importing it)."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "onnx", "rosberta_export") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"this command needs the export extra ({', '.join(missing)} not installed): pip install 'rosberta-onnx[export]'"
        )


def _variants(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _cmd_synth(a) -> int:
    _export_side()
    from rosberta_export.synth import synth

    synth(a.dir, size=a.size, seed=a.seed, overwrite=a.overwrite)
    return 0


def _cmd_export(a) -> int:
    _export_side()
    end_like_ctrl_c_on_sigterm()  # a killed export removes its partial folder, as Ctrl-C does
    from rosberta_export.pipeline import export

    result = export(a.model, a.output, variants=_variants(a.variants) if a.variants else None, overwrite=a.overwrite,
                    parity_texts=a.parity_texts, int8_recipe=a.int8_recipe, gate_pairs=a.gate_pairs,
                    calibration_sentences=a.calibration_sentences)
    print(parity_table(result.manifest))
    _print_gates(result.manifest)
    if not result.ok:
        for v, fails in result.parity_failures.items():
            for f in fails:
                print(f"parity failure [{v}] {f}", file=sys.stderr)
        return 1
    return 0


def _read_texts(path: str, fmt: str | None) -> list[str]:
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
            raise InputFormatError(f"{path}:{n}: not valid JSON ({exc.msg}); each line must be an object with a 'text' field")
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputFormatError(f"{path}:{n}: expected an object with a string 'text' field")
        out.append(obj["text"])
    return out


def _cmd_encode(a) -> int:
    from .encoder import Encoder

    texts = _read_texts(a.input, a.input_format)
    enc = Encoder.load(a.dir, variant=a.variant, threads=a.threads)
    done = [0]
    show = sys.stderr.isatty() or len(texts) >= 1000

    def progress(k: int) -> None:
        done[0] += k
        if show:
            print(f"\r[encode] {done[0]}/{len(texts)} texts", end="", file=sys.stderr, flush=True)

    res = enc.encode_detailed(texts, task=a.task, batch_size=a.batch_size, progress=progress)
    if show:
        print(file=sys.stderr)
    fmt = a.format or ("jsonl" if (a.output or "").endswith(".jsonl") else "npy")
    if fmt == "npy":
        if not a.output or a.output == "-":
            buf = io.BytesIO()
            import numpy as np

            np.save(buf, res.embeddings)
            sys.stdout.buffer.write(buf.getvalue())
        else:
            _atomic_write(Path(a.output), lambda f: __import__("numpy").save(f, res.embeddings))
    else:
        def write_jsonl(f):
            for i, vec in enumerate(res.embeddings):
                f.write((json.dumps({"index": i, "tokens": int(res.token_counts[i]), "truncated": bool(res.truncated[i]),
                                     "embedding": [round(float(x), 7) for x in vec]}) + "\n").encode())
        if not a.output or a.output == "-":
            write_jsonl(sys.stdout.buffer)
        else:
            _atomic_write(Path(a.output), write_jsonl)
    n_trunc = int(res.truncated.sum())
    print(f"[encode] {len(texts)} texts -> {res.embeddings.shape} float32 with {enc.variant}"
          + (f"; {n_trunc} truncated to {enc.max_length} tokens" if n_trunc else ""), file=sys.stderr)
    return 0


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _cmd_info(a) -> int:
    from .manifest import Manifest

    m = Manifest.read(a.dir)
    src = m.source
    print(f"source: {src.get('model')} @ {src.get('revision')}" + ("  [STAND-IN: random weights]" if src.get("stand_in") else ""))
    f = m.model
    print(f"model: {f.architecture}, {f.num_layers} layers, dim {f.dim}, max length {f.max_length}, pooling {f.pooling}, "
          f"normalize {f.normalize}, tasks {list(f.prompts)}")
    print(parity_table(m))
    _print_gates(m)
    for name, rec in m.variants.items():
        if rec.engine != "onnxruntime":
            print(f"{name}: runs on {rec.engine} with {dict(rec.engine_options)} "
                  f"(pip install 'rosberta-onnx[{rec.engine}]')")
    return 0


def _print_gates(manifest) -> None:
    for name, rec in manifest.variants.items():
        if rec.gate:
            print(gate_line(name, rec.gate, rec.parity))


def _cmd_demo(a) -> int:
    """The README's main job: synth the full-size stand-in, export all variants, encode, print parity."""
    _export_side()
    end_like_ctrl_c_on_sigterm()  # a killed export removes its partial folder, as Ctrl-C does
    from rosberta_export.pipeline import export
    from rosberta_export.synth import synth

    from .encoder import Encoder

    root = Path(a.dir)
    ckpt, art = root / f"standin-{a.size}", root / f"standin-{a.size}-onnx"
    if not (ckpt / "config.json").is_file():
        synth(ckpt, size=a.size, overwrite=True)
    # The stand-in's random weights make the int8 gate's retrieval figures meaningless: a small sample suffices.
    result = export(str(ckpt), art, overwrite=True, parity_texts=a.parity_texts, gate_pairs=200)
    enc = Encoder.load(art)
    texts = ["Сколько программистов нужно, чтобы вкрутить лампочку?", "How many programmers does it take to change a light bulb?"]
    q = enc.encode(texts, task="search_query")
    print("\nSTAND-IN model (random weights: the vectors below are meaningless, the pipeline is real)")
    print(f"encoded {len(texts)} RU/EN queries with variant {enc.variant!r} [{enc.selection}]: shape {q.shape}, "
          f"norms {[round(float(x), 4) for x in (q ** 2).sum(1) ** 0.5]}")
    print(f"\nparity against PyTorch ({art}):")
    print(parity_table(result.manifest))
    _print_gates(result.manifest)
    return 0 if result.ok else 1


def _cmd_serve(a) -> int:
    from .errors import require

    require("starlette", extra="serve", purpose="rosberta-onnx serve")
    require("uvicorn", extra="serve", purpose="rosberta-onnx serve")
    from rosberta_serve import ServeConfig, serve

    names = ("variant", "model_name", "host", "port", "api_key", "max_batch_tokens", "max_batch_size", "max_wait_ms",
             "run_batch_tokens", "workers", "threads", "spinning", "streams", "max_inputs", "max_body_bytes", "max_queue",
             "shutdown_timeout_s", "access_log", "log_level")
    options = {k: getattr(a, k) for k in names if getattr(a, k) is not None}  # unset: ServeConfig's default
    options.setdefault("api_key", ServeConfig.api_key_from_env())
    config = ServeConfig(model_dir=Path(a.dir), batching=not a.no_batching, **options)
    try:
        serve(config)
    except KeyboardInterrupt:
        print("server stopped", file=sys.stderr)
    return 0


def _cmd_embed_corpus(a) -> int:
    from .errors import require

    require("ray", extra="distributed", purpose="embed-corpus (batch embedding on Ray)")
    require("pyarrow", extra="distributed", purpose="embed-corpus (Parquet shards)")
    from rosberta_ray import embed_corpus

    def progress(p) -> None:
        print(f"[embed-corpus] {p.shards_done}/{p.shards_todo} shards, {p.rows} rows, {p.tokens} tokens, "
              f"{p.rows / max(p.seconds, 1e-9):.1f} rows/s", file=sys.stderr, flush=True)

    summary = embed_corpus(a.dir, a.input, a.output, text_column=a.text_column, id_column=a.id_column, task=a.task,
                           variant=a.variant, actors=a.actors, threads_per_actor=a.threads_per_actor,
                           batch_size=a.batch_size, ray_address=a.ray_address, progress=progress)
    print(f"[embed-corpus] {summary.format()}", file=sys.stderr)
    return 1 if summary.failed else 0


def _cmd_bench(a) -> int:
    from .errors import require

    require("matplotlib", extra="bench", purpose="rosberta-onnx bench (charts)")
    try:
        from benchmarks.__main__ import run
    except ModuleNotFoundError as exc:
        # benchmarks/ sits beside src/ in a source checkout and is not part of the wheel.
        root = Path(__file__).resolve().parents[2]
        if exc.name != "benchmarks" or not (root / "benchmarks" / "__init__.py").is_file():
            raise MissingDependencyError(
                f"rosberta-onnx bench runs from a source checkout, where benchmarks/ lives ({exc}): clone the "
                f"repository, pip install -e '.[bench,export]', and run it from there"
            ) from exc
        sys.path.insert(0, str(root))
        from benchmarks.__main__ import run
    return run(a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rosberta-onnx", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="write an offline stand-in checkpoint (random weights)")
    s.add_argument("dir")
    s.add_argument("--size", choices=["full", "tiny"], default="full")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_cmd_synth)

    e = sub.add_parser("export", help="export a checkpoint to an ONNX artifact folder, with parity figures")
    e.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"hub id or local folder (default {DEFAULT_MODEL})")
    e.add_argument("-o", "--output", required=True)
    e.add_argument("--variants", default=None,
                   help=f"comma list of {','.join(VARIANTS)} (default: all; int8-openvino only where openvino is installed)")
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--parity-texts", type=int, default=64, help="real RU/EN sentences in the parity set (plus edge cases)")
    e.add_argument("--int8-recipe", default="rowwise-sq", choices=["rowwise-sq", "rowwise-sq-rtn", "ort-per-channel", "ort-per-tensor"])
    e.add_argument("--gate-pairs", type=int, default=1500,
                   help="STS dev pairs per language for the int8 gate's retrieval/Spearman figures (1500 = all)")
    e.add_argument("--calibration-sentences", type=int, default=None,
                   help="RU/EN STS train sentences to calibrate the row-wise int8 weights on (default: the recipe's, "
                        "1024); fewer is faster to build, and the gate measures what it costs")
    e.set_defaults(func=_cmd_export)

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
    n.set_defaults(func=_cmd_encode)

    i = sub.add_parser("info", help="show an artifact's manifest")
    i.add_argument("dir")
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("demo", help="synth the stand-in, export all variants, encode, print parity")
    d.add_argument("dir", nargs="?", default="models")
    d.add_argument("--size", choices=["full", "tiny"], default="full")
    d.add_argument("--parity-texts", type=int, default=48)
    d.set_defaults(func=_cmd_demo)

    v = sub.add_parser("serve", help="HTTP embedding server: OpenAI /v1/embeddings, TEI /embed, dynamic batching")
    v.add_argument("dir")
    v.add_argument("--variant", choices=("auto",) + VARIANTS, default=None, help="default auto")
    v.add_argument("--model-name", default=None, help="model id in responses (default: from the manifest)")
    v.add_argument("--host", default=None, help="default 127.0.0.1 (loopback only)")
    v.add_argument("--port", type=int, default=None, help="default 8080; 0 picks a free port")
    v.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: env ROSBERTA_API_KEY; none: no auth)")
    v.add_argument("--max-batch-tokens", type=int, default=None, help="padded tokens per merged batch (default 8192)")
    v.add_argument("--max-batch-size", type=int, default=None, help="texts per merged batch (default 64)")
    v.add_argument("--max-wait-ms", type=float, default=None,
                   help="longest a request waits for others to merge with, only while more are arriving (default 5)")
    v.add_argument("--run-batch-tokens", type=int, default=None,
                   help="padded tokens per ONNX Runtime call within a batch (default 256: best on small CPUs)")
    v.add_argument("--no-batching", action="store_true", help="run every request as its own encoder call")
    v.add_argument("--workers", type=int, default=None, help="encoder calls run at once in this process (default 1)")
    v.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per call (default: physical cores)")
    v.add_argument("--spinning", action="store_true", default=None,
                   help="keep ONNX Runtime's idle threads spinning: lower latency under steady traffic, CPU busy while idle")
    v.add_argument("--streams", type=int, default=None,
                   help="OpenVINO variants: split each run of 2+ texts across this many streams "
                        "(default: 2 on 2+ threads; 1: off)")
    v.add_argument("--max-inputs", type=int, default=None, help="texts per request (default 2048)")
    v.add_argument("--max-body-bytes", type=int, default=None, help="request body limit (default 16 MiB)")
    v.add_argument("--max-queue", type=int, default=None, help="texts queued before 503 (default 8192)")
    v.add_argument("--shutdown-timeout", dest="shutdown_timeout_s", type=float, default=None,
                   help="seconds in-flight requests get to finish on SIGTERM (default 30)")
    v.add_argument("--access-log", action="store_true", default=None)
    v.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    v.set_defaults(func=_cmd_serve)

    c = sub.add_parser("embed-corpus", help="embed Parquet/JSONL shards into Parquet shards on Ray (restartable)")
    c.add_argument("dir", help="artifact folder (readable at the same path on every node)")
    c.add_argument("--input", required=True, help="a .parquet/.jsonl file or a folder of them")
    c.add_argument("--output", required=True, help="folder for part-*.parquet, _errors.jsonl, _summary.json")
    c.add_argument("--text-column", default="text")
    c.add_argument("--id-column", default="id")
    c.add_argument("--task", default="search_document", help="task prefix (default search_document)")
    c.add_argument("--variant", default="auto", choices=("auto",) + VARIANTS)
    c.add_argument("--ray-address", default=None,
                   help="auto: join a running cluster; local: start a local instance; default: join one if found, else local")
    c.add_argument("--actors", type=int, default=None, help="actors (one model each); default: cluster CPUs / threads")
    c.add_argument("--threads-per-actor", type=int, default=1)
    c.add_argument("--batch-size", type=int, default=32)
    c.set_defaults(func=_cmd_embed_corpus)

    b = sub.add_parser("bench", help="benchmark against torch fp32/bf16, sentence-transformers, OpenVINO, plain ORT")
    b.add_argument("dir", help="an exported artifact folder")
    b.add_argument("--reference", default=None, help="the checkpoint folder DIR was exported from (default: manifest source)")
    b.add_argument("--quick", action="store_true", help="few rounds, small corpus: a smoke test on the tiny stand-in")
    b.add_argument("--out", default="benchmarks/results", help="results root (default benchmarks/results)")
    b.add_argument("--name", default=None, help="results sub-folder (default: DIR's name + -quick/-full)")
    b.add_argument("--threads", type=int, default=None, help="threads for every system (default: physical cores)")
    b.add_argument("--rounds", type=int, default=None, help="override every workload's rounds")
    b.add_argument("--corpus-size", type=int, default=None)
    b.add_argument("--systems", type=_variants, default=None, help="comma list (default: all)")
    b.add_argument("--workloads", type=_variants, default=None, help="comma list of names or kinds (default: all)")
    b.add_argument("--no-memory", action="store_true", help="skip the per-system peak-memory processes")
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ImportError, FileExistsError, FileNotFoundError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # bad input, usage or a missing extra
        return 2
    except (RosbertaError, RuntimeError) as exc:  # a failed check, e.g. non-finite output
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
