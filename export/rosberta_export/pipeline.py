"""The export pipeline: checkpoint -> artifact folder (ONNX variants + tokenizer + manifest), with parity.

    resolve the source -> its tokenizer -> the raw fp32 graph (torch.onnx) -> disk check
      -> fp32 + fp16 (fusions, child processes) -> int8 + int8-openvino (calibrate, plan, write)
      -> records -> parity against PyTorch and the quality gate of each quantised variant -> manifest -> rename into place

Everything is built in a hidden temporary sibling of the output folder and renamed into place only once every file
and the manifest are written, so a failed or interrupted export leaves no folder that loads as valid (and, with
``overwrite``, the previous artifact stays intact until the very end).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rosberta_onnx.manifest import GATED_VARIANTS, Manifest

from .convert import data_file, export_fp32
from .diskspace import NotEnoughSpace, check_space, peak_bytes, quantized_fractions
from .errors import ExportError
from .fp_variants import build_fp_variants
from .gate import GATE_PAIRS, MIN_GATE_PAIRS, default_gate_pairs
from .int4 import INT4_SETTINGS
from .interop import write_interop
from .measure import measure
from .memory import NotEnoughMemory, check_memory, needed_bytes, weight_bytes
from .openvino_int8 import openvino_options
from .options import check_output, resolve_options
from .quantize import DEFAULT_INT8_RECIPE
from .quantized_variants import build_quantized_variants
from .records import FILES, model_facts, provisional_manifest, variant_records
from .source import resolve_source
from .stages import Progress, StageCost, stage_table

__all__ = ["ExportError", "ExportResult", "export", "FILES"]


class ExportResult:
    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        parity_failures: dict[str, list[str]],
        stages: list[StageCost] | None = None,
    ) -> None:
        self.folder, self.manifest, self.parity_failures = folder, manifest, parity_failures
        self.stages = stages or []  # wall time and peak memory of each stage of this export

    @property
    def ok(self) -> bool:
        return not any(self.parity_failures.get(v) for v in ("fp32", "fp16"))


def _log(msg: str) -> None:
    print(f"[export] {msg}", file=sys.stderr, flush=True)


def export(
    model: str,
    out: str | os.PathLike,
    *,
    variants: tuple[str, ...] | None = None,
    overwrite: bool = False,
    parity_texts: int = 64,
    int8_recipe: str = DEFAULT_INT8_RECIPE,
    gate_pairs: int | None = None,
    calibration_sentences: int | None = None,
    log: Callable[[str], None] = _log,
) -> ExportResult:
    """Export ``model`` (hub id or local folder) into the artifact folder ``out``.

    ``variants``: default all of :data:`rosberta_onnx.manifest.VARIANTS` this environment can build
    (``int8-openvino`` needs ``openvino``, to gate it; without it that variant is left out, with a note in the log).
    ``parity_texts``: real RU/EN sentences in the parity set (edge cases are always added).
    ``int8_recipe``: see :data:`rosberta_export.quantize.INT8_RECIPES`. ``gate_pairs``: STS dev pairs per
    language for the quality gate's retrieval and Spearman figures (default: 1500, the whole dev split; 200 on a
    random-weight stand-in, where those figures are recorded, not judged).
    ``calibration_sentences``: RU/EN STS train sentences the row-wise int8 weights are calibrated on (default:
    the recipe's, 1024 for ``rowwise-sq``); fewer builds faster (calibration is ~4 of the full-size model's
    ~11 minutes) at some cost in quality, which the gate then measures. Recorded in the variants' recipe.
    """
    opts = resolve_options(variants, int8_recipe, calibration_sentences, log)
    if gate_pairs is not None and not MIN_GATE_PAIRS <= gate_pairs <= GATE_PAIRS:
        raise ExportError(
            f"gate_pairs={gate_pairs}: the gate ranks 10 documents per query and there are {GATE_PAIRS} STS dev pairs "
            f"per language; choose {MIN_GATE_PAIRS}..{GATE_PAIRS} (--gate-pairs), or leave it out for the default"
        )
    out = Path(out)
    check_output(out, overwrite)
    step = Progress(log)
    step.stage("resolve the source, write the tokenizer", f"resolving {model}")
    src = resolve_source(model)
    facts = model_facts(src)
    try:
        check_memory(needed_bytes(weight_bytes(src.folder)), f"exporting {src.folder.name}")
    except NotEnoughMemory as exc:
        raise ExportError(str(exc)) from None
    if src.stand_in:
        log(
            f"NOTE: {src.folder} is a STAND-IN with random weights ({src.stand_in.get('size')}): same compute as the "
            f"real model, meaningless embeddings"
        )
    if gate_pairs is None:
        gate_pairs = default_gate_pairs(bool(src.stand_in))
        if src.stand_in:
            log(f"  the gate's retrieval and STS figures (recorded only, on random weights) use {gate_pairs} pairs")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        work = tmp / ".work"
        work.mkdir()
        from transformers import AutoTokenizer

        # The fast tokenizer's own file; padding/truncation blocks in it are ignored by the runtime.
        AutoTokenizer.from_pretrained(str(src.folder)).backend_tokenizer.save(str(tmp / "tokenizer.json"))

        step.stage(
            "torch -> ONNX (load the checkpoint, trace)",
            f"exporting the fp32 graph ({facts.num_layers} layers, hidden {facts.hidden_size}) with torch.onnx",
        )
        raw = export_fp32(src, work / "raw.onnx")
        raw_bytes = sum(f.stat().st_size for f in (raw, data_file(raw)) if f.exists())
        q = quantized_fractions(
            raw_bytes,
            vocab_size=facts.vocab_size,
            max_positions=facts.max_position_embeddings,
            hidden_size=facts.hidden_size,
            int4_block=INT4_SETTINGS.block,
        )
        check_space(
            out.parent, peak_bytes(raw_bytes, opts.variants, fractions=q), f"exporting {', '.join(opts.variants)}"
        )

        provisional = provisional_manifest(src, facts, tmp / "tokenizer.json")
        props = provisional.metadata_props()
        written: dict[str, list[Path]] = {}
        fused_counts: dict[str, int] = {}
        rewrites: dict[str, dict[str, int]] = {}
        if "fp32" in opts.variants or "fp16" in opts.variants:
            which = " and ".join(v for v in ("fp32", "fp16") if v in opts.variants)
            step.stage(
                f"fusions, {which} (child processes)",
                f"fusing transformer ops with onnxruntime's optimizer, writing {which} (child processes)",
            )
            fp, fused_counts, fused_rewrites, child_peak = build_fp_variants(
                raw, work, tmp, opts.variants, facts, props
            )
            step.child_peak(child_peak)
            written.update(fp)
            rewrites.update({v: fused_rewrites for v in fp})  # fp16 is converted from the rewritten fp32 graph
            log(f"  fused ops: {fused_counts}")
        if any(v in opts.variants for v in GATED_VARIANTS):
            quantised, quantised_rewrites = build_quantized_variants(raw, work, tmp, opts, facts, props, step)
            written.update(quantised)
            rewrites.update(quantised_rewrites)
        records = variant_records(
            written,
            opts,
            fused_counts=fused_counts,
            rewrites=rewrites,
            ov_options=openvino_options() if "int8-openvino" in written else {},
        )
        shutil.rmtree(work)
        Manifest(**{**provisional.__dict__, "variants": records}).write(tmp)

        plain = [v for v in ("fp32", "fp16") if v in records]
        step.stage(
            "PyTorch reference vectors" + (f"; parity of {', '.join(plain)}" if plain else ""),
            "measuring parity against the PyTorch reference",
        )
        records, fails, reference = measure(
            src, tmp, records, parity_texts, step, int8_recipe=opts.int8_recipe, gate_pairs=gate_pairs
        )
        Manifest(**{**provisional.__dict__, "variants": records, "reference": reference}).write(tmp)
        step.stage("interop files, move into place")
        manifest = write_interop(tmp, source_config=src.config)  # what fastembed, sentence-transformers ... read
        _move_into_place(tmp, out)
        step(f"wrote {out}")
        costs = step.finish()
        log("what each stage cost:\n" + stage_table(costs))
        return ExportResult(out, manifest, fails, costs)
    except NotEnoughSpace as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise ExportError(
            f"the disk holding {str(out.parent)!r} filled up during the export ({exc}); the partial "
            f"export was removed and {str(out)!r} is as it was. Free space there or export to a disk "
            f"with room (-o)"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out``; an existing ``out`` is replaced only now, after the new one is complete."""
    tmp.chmod(0o755)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
