"""The export side's commands for ``rosberta-onnx`` (entry-point group ``rosberta_onnx.commands``):

    rosberta-onnx synth DIR [--size full|tiny] [--seed N]                 offline stand-in checkpoint (random weights)
    rosberta-onnx export [MODEL] -o DIR [--variants LIST] [--overwrite]   checkpoint -> ONNX artifact, with parity
    rosberta-onnx demo [DIR] [--fp32-only]                                 fp32's vectors + parity first, then all, gated
    rosberta-onnx interop DIR [--source CKPT] [--transformers-js]         (re)write the files other tools read

Importing this module costs nothing: torch and the exporter load when a command runs, and a missing one is an
error naming the ``export`` extra.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rosberta_onnx import MissingDependencyError
from rosberta_onnx.manifest import VARIANTS

from .defaults import DEFAULT_MODEL

__all__ = ["synth_command", "export_command", "demo_command", "interop_command"]


def _need_export_side() -> None:
    """Fail early, with the extra to install, if the torch side is missing (checked without importing it)."""
    missing = [m for m in ("torch", "transformers", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"this command needs the export extra ({', '.join(missing)} not installed): pip install 'rosberta-onnx[export]'"
        )


def _variants(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _print_quality(manifest) -> None:
    from rosberta_onnx.report import gate_lines, parity_table

    print(parity_table(manifest))
    print(*gate_lines(manifest), sep="\n")


def _synth(a) -> int:
    _need_export_side()
    from .synth import synth

    synth(a.dir, size=a.size, seed=a.seed, overwrite=a.overwrite)
    return 0


def _export(a) -> int:
    _need_export_side()
    from rosberta_onnx.interrupt import end_like_ctrl_c_on_sigterm

    from .pipeline import export

    end_like_ctrl_c_on_sigterm()  # a killed export removes its partial folder, as Ctrl-C does
    result = export(
        a.model,
        a.output,
        variants=_variants(a.variants) if a.variants else None,
        overwrite=a.overwrite,
        parity_texts=a.parity_texts,
        int8_recipe=a.int8_recipe,
        gate_pairs=a.gate_pairs,
        calibration_sentences=a.calibration_sentences,
    )
    _print_quality(result.manifest)
    if a.stages_json:
        from rosberta_onnx.atomic import write_json_atomic

        write_json_atomic(a.stages_json, [c.as_dict() for c in result.stages])
    for v, fails in result.parity_failures.items():
        for f in fails:
            print(f"parity failure [{v}] {f}", file=sys.stderr)
    return 0 if result.ok else 1


def _demo(a) -> int:
    """The README's main job: synth the full-size stand-in; export fp32 and print its first vectors and parity (a few
    minutes); then export every variant, gated, and print the whole table and what ``auto`` picks here."""
    _need_export_side()
    import time

    from rosberta_onnx.interrupt import end_like_ctrl_c_on_sigterm

    from .pipeline import export
    from .synth import synth

    end_like_ctrl_c_on_sigterm()
    t0 = time.perf_counter()
    root = Path(a.dir)
    ckpt, art = root / f"standin-{a.size}", root / f"standin-{a.size}-onnx"
    if not (ckpt / "config.json").is_file():
        synth(ckpt, size=a.size, overwrite=True)
    print("STAND-IN model (random weights: its vectors are meaningless, the pipeline is real)", flush=True)
    # First vectors: fp32 alone (trace, fusions, parity against PyTorch), a usable artifact in minutes.
    first = export(str(ckpt), art, variants=("fp32",), overwrite=True, parity_texts=a.parity_texts)
    _demo_vectors(art, "fp32", t0)
    print(f"\nparity against PyTorch ({art}):")
    _print_quality(first.manifest)
    if a.fp32_only or not first.ok:
        return 0 if first.ok else 1
    print("\nnow every variant, each through its quality gate; the fp32 artifact stays usable meanwhile", flush=True)
    result = export(str(ckpt), art, overwrite=True, parity_texts=a.parity_texts)
    _demo_vectors(art, "auto", t0)
    print(f"\nparity against PyTorch and the quality gates ({art}):")
    _print_quality(result.manifest)
    return 0 if result.ok else 1


def _demo_vectors(art: Path, variant: str, t0: float) -> None:
    import time

    from rosberta_onnx import Encoder

    enc = Encoder.load(art, variant=variant)
    texts = [
        "Сколько программистов нужно, чтобы вкрутить лампочку?",
        "How many programmers does it take to change a light bulb?",
    ]
    q = enc.encode(texts, task="search_query")
    print(
        f"\n[{time.perf_counter() - t0:.0f} s] encoded {len(texts)} RU/EN queries with variant {enc.variant!r} "
        f"[{enc.selection}]: shape {q.shape}, norms {[round(float(x), 4) for x in (q**2).sum(1) ** 0.5]}, "
        f"first values {[round(float(x), 4) for x in q[0, :4]]}",
        flush=True,
    )


def _interop(a) -> int:
    import json

    from .interop import write_interop

    config = None
    if a.source:
        path = Path(a.source) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"--source {a.source!r} has no config.json; pass the checkpoint folder the artifact came from"
            )
        config = json.loads(path.read_text(encoding="utf-8"))
    m = write_interop(a.dir, source_config=config, transformers_js=a.transformers_js)
    print(f"{a.dir}: wrote {', '.join(m.interop)} (listed with sha256 in manifest.json)")
    return 0


def interop_command(sub) -> None:
    i = sub.add_parser(
        "interop",
        help="(re)write config.json, tokenizer_config.json and sentence-transformers' files from the manifest, "
        "without re-exporting (no torch needed)",
    )
    i.add_argument("dir", help="an exported artifact folder")
    i.add_argument("--source", help="the checkpoint folder, for its own config.json (default: from the manifest)")
    i.add_argument(
        "--transformers-js",
        action="store_true",
        help="also the onnx/ layout transformers.js reads (fp32 and int8; weights hard-linked, not copied)",
    )
    i.set_defaults(func=_interop)


def synth_command(sub) -> None:
    s = sub.add_parser("synth", help="write an offline stand-in checkpoint (random weights)")
    s.add_argument("dir")
    s.add_argument("--size", choices=["full", "tiny"], default="full")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_synth)


def export_command(sub) -> None:
    e = sub.add_parser("export", help="export a checkpoint to an ONNX artifact folder, with parity figures")
    e.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"hub id or local folder (default {DEFAULT_MODEL})")
    e.add_argument("-o", "--output", required=True)
    e.add_argument(
        "--variants",
        default=None,
        help=f"comma list of {','.join(VARIANTS)} (default: all; int8-openvino only where openvino is installed)",
    )
    e.add_argument("--overwrite", action="store_true")
    e.add_argument(
        "--parity-texts", type=int, default=64, help="real RU/EN sentences in the parity set (plus edge cases)"
    )
    e.add_argument(
        "--int8-recipe",
        default="rowwise-sq",
        help="rowwise-sq (default), rowwise-sq-rtn, ort-per-channel or ort-per-tensor",
    )
    e.add_argument(
        "--gate-pairs",
        type=int,
        default=None,
        help="STS dev pairs per language for the quality gate's retrieval/Spearman figures (default 1500 = all; "
        "200 on a random-weight stand-in, where they are recorded, not judged)",
    )
    e.add_argument(
        "--calibration-sentences",
        type=int,
        default=None,
        help="RU/EN STS train sentences to calibrate the row-wise int8 weights on (default: the recipe's, "
        "1024); fewer is faster to build, and the gate measures what it costs",
    )
    e.add_argument(
        "--stages-json",
        default=None,
        metavar="FILE",
        help="also write each stage's wall time and peak resident memory (the table the log ends with) as JSON",
    )
    e.set_defaults(func=_export)


def demo_command(sub) -> None:
    d = sub.add_parser(
        "demo", help="synth the stand-in; export fp32 and print its vectors and parity; then every variant, gated"
    )
    d.add_argument("dir", nargs="?", default="models")
    d.add_argument("--size", choices=["full", "tiny"], default="full")
    d.add_argument("--parity-texts", type=int, default=48)
    d.add_argument("--fp32-only", action="store_true", help="stop after fp32's first vectors and parity")
    d.set_defaults(func=_demo)
