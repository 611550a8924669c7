"""Vectors the Python runtime computes, for the JS package's parity tests (run in the same CI run).

    python js/test/make_fixtures.py ARTIFACT [ARTIFACT ...] --out DIR

For each artifact folder: ``DIR/<name>/fixtures.json`` with the texts (RU/EN STS sentences and edge cases:
empty, whitespace, emoji/ZWJ, NUL, a lone surrogate, exactly max length, max + 1, and a 10 MB text given as a
recipe), and per variant (fp32, int8) and task (none, and ``search_query`` where the model has prompts) the
token ids, token counts, truncation flags and vectors (float32, base64) of ``rosberta_onnx.Encoder`` (and int4
where the artifact has it); the variant names the Python runtime knows; plus
``cli-input.txt`` (with invalid UTF-8) and what the Python CLI writes for it (``cli-python.jsonl``).
Needs only the runtime (no torch).
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

from rosberta_export.corpus import edge_cases, parity_texts
from rosberta_export.parity import exact_length_text
from rosberta_onnx import Encoder, PromptWarning, verify
from rosberta_onnx.hardware import cpu_isa, int8_native
from rosberta_onnx.manifest import GATED_VARIANTS, VARIANTS

BIG = {"unit": "Большой текст, big text. ", "times": 420_000, "length": 10_000_000}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "browser" / "texts.json"  # what the browser page embeds


def cases(enc: Encoder) -> list[tuple[str, str]]:
    exact = exact_length_text(lambda t: enc.count_tokens([t])[0], enc.max_length)
    out = [(f"sts[{i}]", t) for i, t in enumerate(parity_texts(24))]
    out += list(edge_cases(enc.max_length).items())
    out += [("exactly_max_length", exact), ("max_plus_one", exact + " a"), ("lone_surrogate", "a \ud800 b \udfff"),
            ("whitespace_runs", "  много   пробелов \t\t и\n\n\nстрок  "), ("nul_only", "\x00")]
    return out


def facts(m) -> dict:
    """What the Python runtime reads from the manifest, in the JS runtime's names (``info --json``)."""
    f = m.model
    return {"model": {"architecture": f.architecture, "dim": f.dim, "numLayers": f.num_layers, "padTokenId": f.pad_token_id,
                      "maxLength": f.max_length, "pooling": f.pooling, "normalize": f.normalize, "prompts": dict(f.prompts),
                      "inputNames": list(f.input_names), "outputName": f.output_name},
            "tokenizerFile": m.tokenizer_file,
            "variants": {name: {"file": v.file, "files": dict(v.files), "engine": v.engine, "gatePassed": v.gate_passed,
                                "sizeBytes": v.size_bytes} for name, v in m.variants.items()}}


def runs(enc: Encoder, texts: list[str]) -> list[dict]:
    out = []
    for task in [None] + (["search_query"] if enc.tasks else []):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PromptWarning)  # the prefix_* cases carry one already
            res = enc.encode_detailed(texts, task=task, batch_size=7)
            ids = enc.tokenize(texts, task=task)
        out.append({"variant": enc.variant, "task": task, "ids": ids, "token_counts": res.token_counts.tolist(),
                    "truncated": res.truncated.tolist(),
                    "vectors": base64.b64encode(res.embeddings.astype("<f4").tobytes()).decode()})
    return out


# Long texts whose windows, cut by token count alone, would start inside words (long words, RU and EN), one without
# spaces, one that fits
CHUNK_TEXTS = [
    " ".join(["Достопримечательностями города восхищаются туристы, человеконенавистничество осуждают все."] * 30),
    " ".join(["The ukulele player counterrevolutionaries admired; electroencephalography stayed incomprehensible."] * 30),
    "漢字かな交じり文を読む" * 120,
    "short text",
]


def chunk_runs(enc: Encoder) -> list[dict]:
    """Python's windows and chunk vectors of CHUNK_TEXTS (fp32), for a small and the default window, with and without
    the document prefix: what the JS ``planChunks``/``encodeChunks`` must reproduce."""
    out = []
    for task in [None] + (["search_document"] if enc.tasks else []):
        for window, overlap in ((48, 8), (None, None)):
            plans = enc.plan(CHUNK_TEXTS, task=task, window=window, overlap=overlap)
            chunks = enc.encode_chunks(CHUNK_TEXTS, task=task, window=window, overlap=overlap)
            out.append({"task": task, "window": window, "overlap": overlap, "texts": CHUNK_TEXTS,
                        "plans": [{"rows": p.rows, "token_spans": p.token_spans, "tokens": p.tokens, "total": p.total}
                                  for p in plans],
                        "vectors": [base64.b64encode(np.ascontiguousarray(c.vectors, "<f4").tobytes()).decode()
                                    for c in chunks]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)
    for art in a.artifacts:
        dest = a.out / art.name
        dest.mkdir(parents=True, exist_ok=True)
        enc = Encoder.load(art, variant="fp32")
        named = cases(enc)
        texts = [t for _, t in named]
        big = (BIG["unit"] * BIG["times"])[: BIG["length"]]
        fixture = {"artifact": str(art.resolve()), "names": [n for n, _ in named], "texts": texts, "big": BIG,
                   "max_length": enc.max_length, "facts": facts(enc.manifest), "runs": [], "big_runs": [], "example": {},
                   "constants": {"variants": list(VARIANTS), "gatedVariants": list(GATED_VARIANTS)}}
        example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        # WASM's int8 kernels are exact on every CPU; onnxruntime's native U8xS8 ones saturate on x86 without VNNI,
        # where int8-avx2 computes the exact function of the same weights: what WASM int8 is compared with there
        exact = "int8-avx2" if not int8_native(cpu_isa()) and "int8-avx2" in enc.manifest.variants else "int8"
        fixture["wasm_reference"] = {"int8": exact}
        for variant in dict.fromkeys(("fp32", "int8", exact, "int4")):
            if variant not in enc.manifest.variants:
                continue
            v = Encoder.load(art, variant=variant)
            fixture["runs"] += runs(v, texts)
            r = v.encode_detailed([big, "short"])
            fixture["big_runs"].append({"variant": variant, "token_counts": r.token_counts.tolist(),
                                        "truncated": r.truncated.tolist(),
                                        "vectors": base64.b64encode(r.embeddings.astype("<f4").tobytes()).decode()})
            q_task, d_task = ("search_query", "search_document") if enc.tasks else (None, None)
            fixture["example"][variant] = {
                "query": v.encode([example["query"]], task=q_task)[0].tolist(),
                "documents": v.encode(example["documents"], task=d_task).tolist()}
        fixture["chunks"] = chunk_runs(enc)
        report = verify(art, variants=["all"], remember_verdicts=False)  # what the JS verify must reproduce
        fixture["verify"] = {c.variant: {**c.summary(), "max_abs": c.cosines.get("max_abs")} for c in report.checks}
        (dest / "fixtures.json").write_text(json.dumps(fixture))  # ensure_ascii: lone surrogates survive as \\ud800
        # the CLI's input: a few lines with an invalid UTF-8 sequence (a surrogate's bytes) and a CRLF
        lines = [t.encode("utf-8", "surrogatepass") for t in texts[:6]] + [b"bad \xed\xa0\x80 bytes", b"crlf\r"]
        (dest / "cli-input.txt").write_bytes(b"\n".join(lines) + b"\n")
        for variant in (v for v in ("fp32", "int8") if v in enc.manifest.variants):
            cmd = [sys.executable, "-m", "rosberta_onnx.cli", "encode", str(art), "-i", str(dest / "cli-input.txt"),
                   "-o", str(dest / f"cli-python-{variant}.jsonl"), "--variant", variant]
            subprocess.run(cmd + ["--task", "search_query"] * bool(enc.tasks), check=True)
        print(f"{dest}: {len(texts)} texts, {len(fixture['runs'])} runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
