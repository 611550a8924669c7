"""The export pipeline: checkpoint -> artifact folder (ONNX variants + tokenizer + manifest), with parity.

Everything is built in a hidden temporary sibling of the output folder and renamed into place only
once every file and the manifest are written, so a failed or interrupted export leaves no folder that
loads as valid (and, with ``overwrite``, the previous artifact stays intact until the very end).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from rosberta_onnx.hardware import cpu_isa
from rosberta_onnx.manifest import (FORMAT_VERSION, INT8_VARIANTS, VARIANTS, Manifest, ModelFacts, VariantRecord,
                                    sha256_file)
from rosberta_onnx.openvino_engine import openvino_available, openvino_version
from rosberta_onnx.report import gate_line

from .convert import OPSET, data_file, export_fp32, save_onnx, stamp
from .diskspace import NotEnoughSpace, check_space, int8_fraction, peak_bytes
from .gate import gate_figures, gate_record
from .parity import THRESHOLDS, compare, failures, parity_cases
from .openvino_int8 import openvino_options, openvino_recipe, write_openvino_int8
from .quantize import (DEFAULT_INT8_RECIPE, INT8_RECIPES, ROWWISE_SETTINGS, RowwiseSettings, calibrate,
                       calibration_texts, describe_rowwise, quantize_int8)
from .rewrites import describe, rewrite_for_onnxruntime, rewrite_for_openvino
from .rowwise import plan_weights
from .source import Source, resolve_source

__all__ = ["ExportError", "ExportResult", "export", "FILES"]

FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx",
         "int8-openvino": "model_int8_openvino.onnx"}
RECIPES = {
    "fp32": "fp32, onnxruntime transformer fusions (Attention, SkipLayerNormalization, BiasGelu), weights in model.onnx.data",
    "fp16": "fp16 weights and compute from the fused fp32 graph, fp32 inputs/outputs; a GPU variant",
}
# applied to each int8 file once it is built (after calibration, so the weights are those calibrated on every token)
REWRITES = {"int8": rewrite_for_onnxruntime, "int8-openvino": rewrite_for_openvino}


class ExportError(ValueError):
    """The export was asked for something it cannot do (bad output path, variant); the message names the fix."""


class ExportResult:
    def __init__(self, folder: Path, manifest: Manifest, parity_failures: dict[str, list[str]]) -> None:
        self.folder, self.manifest, self.parity_failures = folder, manifest, parity_failures

    @property
    def ok(self) -> bool:
        return not any(self.parity_failures.get(v) for v in ("fp32", "fp16"))


def _log(msg: str) -> None:
    print(f"[export] {msg}", file=sys.stderr, flush=True)


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"output {str(out)!r} exists and is a file; choose a folder path")
    if out.exists() and not overwrite:
        raise ExportError(f"output folder {str(out)!r} already exists; pass --overwrite to replace it (the old one "
                          f"stays until the new export has fully succeeded)")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {str(parent)!r} ({exc.strerror}); choose a writable output path") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write into {str(parent)!r} (permission denied); choose a writable output path")


def _tool_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "rosberta-onnx": md.version("rosberta-onnx")}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _facts(src: Source) -> ModelFacts:
    c = src.config
    return ModelFacts(
        architecture=src.model_type, hidden_size=int(c["hidden_size"]), num_layers=int(c["num_hidden_layers"]),
        num_heads=int(c["num_attention_heads"]), intermediate_size=int(c["intermediate_size"]),
        vocab_size=int(c["vocab_size"]), pad_token_id=int(c.get("pad_token_id") or 0),
        max_position_embeddings=int(c["max_position_embeddings"]), max_length=src.max_length,
        pooling=src.pooling, normalize=src.normalize, prompts=src.prompts,
    )


def export(
    model: str,
    out: str | os.PathLike,
    *,
    variants: tuple[str, ...] | None = None,
    overwrite: bool = False,
    parity_texts: int = 64,
    int8_recipe: str = DEFAULT_INT8_RECIPE,
    gate_pairs: int = 1500,
    calibration_sentences: int | None = None,
    log: Callable[[str], None] = _log,
) -> ExportResult:
    """Export ``model`` (hub id or local folder) into the artifact folder ``out``.

    ``variants``: default all of :data:`VARIANTS` this environment can build (``int8-openvino`` needs
    ``openvino``, to gate it; without it that variant is left out, with a note in the log).
    ``parity_texts``: real RU/EN sentences in the parity set (edge cases are always added).
    ``int8_recipe``: see :data:`rosberta_export.quantize.INT8_RECIPES`. ``gate_pairs``: STS dev pairs per
    language for the int8 gate's retrieval and Spearman figures (1500 = the whole dev split).
    ``calibration_sentences``: RU/EN STS train sentences the row-wise int8 weights are calibrated on (default:
    the recipe's, 1024 for ``rowwise-sq``); fewer builds faster (calibration is ~4 of the full-size model's
    ~11 minutes) at some cost in quality, which the gate then measures. Recorded in the variants' recipe.
    """
    if variants is None:
        variants = tuple(v for v in VARIANTS if v != "int8-openvino" or openvino_available())
        if "int8-openvino" not in variants:
            log("NOTE: openvino is not installed, so the int8-openvino variant is left out "
                "(pip install 'rosberta-onnx[openvino]' to build and gate it)")
    variants = tuple(dict.fromkeys(variants))
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ExportError(f"unknown variant(s) {bad or variants}; choose from {', '.join(VARIANTS)}")
    if "int8-openvino" in variants and not openvino_available():
        raise ExportError("variant int8-openvino is built and gated with OpenVINO, which is not installed: "
                          "pip install 'rosberta-onnx[openvino]', or leave int8-openvino out of --variants")
    if int8_recipe not in INT8_RECIPES:
        raise ExportError(f"unknown int8 recipe {int8_recipe!r}; choose one of {', '.join(INT8_RECIPES)}")
    settings = ROWWISE_SETTINGS[_ov_weights(int8_recipe)]
    # only the row-wise int8 recipes and int8-openvino (which takes their weights) calibrate
    calibrates = "int8-openvino" in variants or ("int8" in variants and int8_recipe in ROWWISE_SETTINGS)
    if calibration_sentences is not None:
        available = len(calibration_texts(10 ** 9))
        if not 1 <= calibration_sentences <= available:
            raise ExportError(f"calibration_sentences={calibration_sentences} is out of range: the shipped RU/EN STS "
                              f"train split has {available} sentences; choose 1..{available} (default "
                              f"{settings.sentences})")
        settings = dataclasses.replace(settings, sentences=calibration_sentences)
        if not calibrates:
            log(f"NOTE: calibration_sentences={calibration_sentences} is not used: none of the variants "
                f"{', '.join(variants)} with int8 recipe {int8_recipe} calibrates (int8 with a row-wise recipe, or "
                f"int8-openvino, would)")
    out = Path(out)
    _check_output(out, overwrite)
    t0 = time.perf_counter()
    step = lambda msg: log(f"{msg} ({time.perf_counter() - t0:.0f}s)")  # noqa: E731

    step(f"resolving {model}")
    src = resolve_source(model)
    facts = _facts(src)
    if src.stand_in:
        log(f"NOTE: {src.folder} is a STAND-IN with random weights ({src.stand_in.get('size')}): same compute as the "
            f"real model, meaningless embeddings")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        work = tmp / ".work"
        work.mkdir()
        from transformers import AutoTokenizer

        # The fast tokenizer's own file; padding/truncation blocks in it are ignored by the runtime.
        AutoTokenizer.from_pretrained(str(src.folder)).backend_tokenizer.save(str(tmp / "tokenizer.json"))

        step(f"exporting the fp32 graph ({facts.num_layers} layers, hidden {facts.hidden_size}) with torch.onnx")
        raw = export_fp32(src, work / "raw.onnx")
        raw_bytes = sum(f.stat().st_size for f in (raw, data_file(raw)) if f.exists())
        q = int8_fraction(raw_bytes, vocab_size=facts.vocab_size, max_positions=facts.max_position_embeddings,
                          hidden_size=facts.hidden_size)
        check_space(out.parent, peak_bytes(raw_bytes, variants, int8_fraction=q),
                    f"exporting {', '.join(variants)}")

        provisional = Manifest(
            format_version=FORMAT_VERSION,
            source={"model": src.model_id, "revision": src.revision, "kind": src.kind,
                    "stand_in": bool(src.stand_in), "note": (src.stand_in or {}).get("note", ""),
                    "max_length_origin": src.max_length_origin},
            model=facts, tokenizer_file="tokenizer.json", tokenizer_sha256=sha256_file(tmp / "tokenizer.json"),
            opset=OPSET, tools=_tool_versions(), variants={},
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        props = provisional.metadata_props()
        written: dict[str, list[Path]] = {}
        fused_counts: dict[str, int] = {}
        rewrites: dict[str, dict[str, int]] = {}
        if "fp32" in variants or "fp16" in variants:
            step("fusing transformer ops with onnxruntime's optimizer, writing "
                 + " and ".join(v for v in ("fp32", "fp16") if v in variants) + " (child processes)")
            fp, fused_counts, fused_rewrites = _fuse_and_convert(raw, work, tmp, variants, facts, props)
            written.update(fp)
            rewrites.update({v: fused_rewrites for v in fp})  # fp16 is converted from the rewritten fp32 graph
            log(f"  fused ops: {fused_counts}")
        if any(v in variants for v in INT8_VARIANTS):
            quantised, int8_rewrites = _quantise(raw, work, tmp, variants, int8_recipe, settings, facts, props, step)
            written.update(quantised)
            rewrites.update(int8_rewrites)

        records = {}
        ov_options = openvino_options() if "int8-openvino" in written else {}
        rowwise = int8_recipe in ROWWISE_SETTINGS
        recipes = {**RECIPES, "int8": describe_rowwise(settings) if rowwise else INT8_RECIPES[int8_recipe]}
        if ov_options:
            recipes["int8-openvino"] = openvino_recipe(ov_options, calibrated_on=settings.sentences)
        for v, paths in written.items():
            openvino = v == "int8-openvino"
            records[v] = VariantRecord(
                name=v, file=FILES[v], files={p.name: sha256_file(p) for p in paths},
                size_bytes=sum(p.stat().st_size for p in paths), recipe=recipes[v] + describe(rewrites.get(v, {})),
                fused_ops=fused_counts if v not in INT8_VARIANTS else {}, isa=cpu_isa() if v in INT8_VARIANTS else "",
                engine="openvino" if openvino else "onnxruntime", engine_options=ov_options if openvino else {},
                graph_rewrites=rewrites.get(v, {}),
            )
        shutil.rmtree(work)
        Manifest(**{**provisional.__dict__, "variants": records}).write(tmp)

        step("measuring parity against the PyTorch reference")
        records, fails = _measure_parity(src, tmp, records, parity_texts, step, int8_recipe=int8_recipe,
                                         gate_pairs=gate_pairs)
        manifest = Manifest(**{**provisional.__dict__, "variants": records})
        manifest.write(tmp)

        tmp.chmod(0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        step(f"wrote {out}")
        return ExportResult(out, manifest, fails)
    except NotEnoughSpace as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise ExportError(f"the disk holding {str(out.parent)!r} filled up during the export ({exc}); the partial "
                          f"export was removed and {str(out)!r} is as it was. Free space there or export to a disk "
                          f"with room (-o)") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _in_child(module: str, job: dict) -> dict:
    """``python -m <module>`` with ``job`` as JSON on stdin; its JSON answer (last stdout line). The fusion and
    fp16 steps run this way so that their transient memory goes back to the OS before the next step (in one
    process the export peaked at 13.2 GB RSS on the full-size model, and was OOM-killed on a 23 GB machine
    with one job beside it; as separate processes the largest step peaks at 8.9 GB). A subprocess rather than
    multiprocessing: spawn re-imports the caller's ``__main__``, which a library must not require of callers."""
    import json
    import subprocess

    r = subprocess.run([sys.executable, "-m", module], input=json.dumps(job), capture_output=True, text=True)
    if r.returncode != 0:
        why = ("killed by signal %d (most often: out of memory -- fusing the full-size model needs about 9 GB free)"
               % -r.returncode) if r.returncode < 0 else f"exit status {r.returncode}"
        tail = " ".join(r.stderr.strip().splitlines()[-3:])
        raise ExportError(f"the export step {sys.executable} -m {module} failed: {why}. {tail} "
                          f"Free memory or fix what it reports, then export again")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _fuse_and_convert(raw: Path, work: Path, tmp: Path, variants: tuple[str, ...], facts: ModelFacts,
                      props: dict[str, str]) -> tuple[dict[str, list[Path]], dict[str, int], dict[str, int]]:
    """The fused fp32 variant and its fp16 conversion, each step in a child process (:func:`_in_child`); also
    the fused op counts and the graph rewrites applied to both."""
    fused = tmp / FILES["fp32"] if "fp32" in variants else work / "fused.onnx"
    got = _in_child("rosberta_export.fuse", {"raw": str(raw), "out": str(fused), "num_heads": facts.num_heads,
                                             "hidden_size": facts.hidden_size, "pooling": facts.pooling,
                                             "props": props})
    written = {"fp32": [Path(p) for p in got["files"]]} if "fp32" in variants else {}
    if "fp16" in variants:
        half = _in_child("rosberta_export.fp16", {"fused": str(fused), "out": str(tmp / FILES["fp16"]), "props": props})
        written["fp16"] = [Path(p) for p in half["files"]]
    return written, got["counts"], got["rewrites"]


def _quantise(raw: Path, work: Path, tmp: Path, variants: tuple[str, ...], recipe: str, s: RowwiseSettings,
              facts: ModelFacts, props, step) -> tuple[dict[str, list[Path]], dict[str, dict[str, int]]]:
    """The int8 variants, and the graph rewrites applied to each (:mod:`.rewrites`). The row-wise recipes'
    calibration and weight plans (GPTQ: minutes on the full-size model) are made once, with settings ``s``, and
    shared by ``int8`` and ``int8-openvino``, which therefore hold the same weights."""
    import onnx

    from rosberta_onnx.tokenize import TextTokenizer

    tok = TextTokenizer(tmp / "tokenizer.json", max_length=facts.max_length, pad_id=facts.pad_token_id)
    rowwise = recipe in ROWWISE_SETTINGS
    cal = plans = None
    if rowwise or "int8-openvino" in variants:
        step(f"calibrating int8 on {s.sentences} RU/EN STS train sentences")
        cal = calibrate(raw, tok, s)
        step("planning int8 weights: SmoothQuant, " + ("GPTQ rounding" if s.gptq else "rounding to nearest"))
        plans = plan_weights(raw, cal, alpha=s.alpha, shift_floor=s.shift_floor)
    builds = {"int8": lambda out: quantize_int8(raw, out, recipe=recipe, tokenizer=tok, settings=s if rowwise else None,
                                                cal=cal if rowwise else None, plans=plans if rowwise else None),
              "int8-openvino": lambda out: write_openvino_int8(raw, out, plans)}
    written, rewrites = {}, {}
    for v in (v for v in INT8_VARIANTS if v in variants):
        step(f"writing {v} (" + (f"recipe {recipe}" if v == "int8" else "row-wise weights for OpenVINO") + ")")
        built = builds[v](work / FILES[v])
        qm = onnx.load(str(built))
        built.unlink()  # in memory now: the disk holds each int8 file once (see diskspace.peak_bytes)
        rewrites[v] = REWRITES[v](qm.graph, pooling=facts.pooling)  # after calibration: same weights
        stamp(qm, props)
        # int8-openvino keeps its weights in a .data file beside the graph: OpenVINO maps that file instead of
        # reading it into memory (load peak ~360 MB instead of ~1070 MB on the full-size model), and processes
        # serving the same artifact share its pages
        written[v] = save_onnx(qm, tmp / FILES[v], external_data=v == "int8-openvino")
        del qm
    return written, rewrites


def _measure_parity(src: Source, folder: Path, records: dict, n_real: int, step, *, int8_recipe: str,
                    gate_pairs: int) -> tuple[dict, dict[str, list[str]]]:
    from rosberta_onnx import Encoder

    from .reference import Reference

    facts = Manifest.read(folder).model
    ref = Reference(src.folder, pooling=facts.pooling, normalize=facts.normalize, max_length=facts.max_length)
    any_variant = next(iter(records))
    counter = Encoder.load(folder, variant=any_variant, verify=False, allow_cpu_fp16=True)
    cases = parity_cases(n_real, max_length=facts.max_length, count_tokens=lambda t: counter.count_tokens([t])[0])
    names, texts = [c.name for c in cases], [c.text for c in cases]
    ours = counter.tokenize(texts)
    theirs = ref.tokenize(texts)
    tok_mismatch = [n for n, a, b in zip(names, ours, theirs) if list(a) != list(b)]
    del counter
    step(f"  reference embeddings for {len(texts)} texts ({n_real} real RU/EN sentences + edge cases)")
    # Short texts in padded batches of mixed lengths; the max-length cases in a batch of their own, so
    # they don't pad fifteen short rows to 512 tokens (minutes on the full-size model, same figures).
    import numpy as np

    counts = [len(x) for x in ours]
    long_ix = [i for i, c in enumerate(counts) if c > 128]
    short_ix = [i for i, c in enumerate(counts) if c <= 128]
    ref_vecs = np.empty((len(texts), facts.dim), dtype=np.float32)
    ref_vecs[short_ix] = ref.embed([texts[i] for i in short_ix], batch_size=16)
    if long_ix:
        ref_vecs[long_ix] = ref.embed([texts[i] for i in long_ix], batch_size=4)
    out, fails = {}, {}
    gated = [v for v in INT8_VARIANTS if v in records]
    kept = {}  # the encoders the gate uses again: one load (one OpenVINO compile) per variant
    for v, rec in records.items():
        enc = Encoder.load(folder, variant=v, verify=False, allow_cpu_fp16=True)
        if v in gated or (v == "fp32" and gated):
            kept[v] = enc
        got = enc.encode(texts, batch_size=16)
        fig = compare(ref_vecs, got, names)
        fig["tokenizer_mismatches"] = tok_mismatch
        f = failures(fig, THRESHOLDS[v]) + [f"tokenizer ids differ from transformers for: {tok_mismatch}"] * bool(tok_mismatch)
        fig["thresholds"] = THRESHOLDS[v]
        fig["passed"] = not f
        fig["failures"] = f
        out[v] = VariantRecord(**{**rec.__dict__, "parity": fig})
        fails[v] = f
        step(f"  {v}: cosine min {fig['cos_min']:.6f} mean {fig['cos_mean']:.6f} max abs {fig['max_abs']:.2e}"
             + ("" if not f else f" — {len(f)} failing case(s)"))
    if gated:
        if "fp32" in kept:
            base = kept.pop("fp32")
            fp32 = lambda t, task: base.encode(t, task=task, batch_size=32)  # noqa: E731 - equal to torch by parity
        else:
            from rosberta_onnx.prompts import apply_prompt

            fp32 = lambda t, task: ref.embed(apply_prompt(list(t), task, facts.prompts), batch_size=32)  # noqa: E731
        fp32 = _memo(fp32)  # every int8 variant is judged against the same fp32 vectors, computed once
    for v in gated:
        step(f"  {v} quality gate: retrieval and STS on {gate_pairs} dev pairs per language")
        int8 = kept.pop(v)
        figures = gate_figures(fp32, lambda t, task: int8.encode(t, task=task, batch_size=32),
                               prompts=facts.prompts, pairs_per_lang=gate_pairs)
        gate = {**gate_record(out[v].parity, figures, random_weights=bool(src.stand_in)),
                "recipe": int8_recipe if v == "int8" else "openvino-" + _ov_weights(int8_recipe)}
        if v == "int8-openvino":
            gate["engine"] = {"openvino": openvino_version(), **out[v].engine_options}
        out[v] = VariantRecord(**{**out[v].__dict__, "gate": gate})
        step(f"  {gate_line(v, gate, out[v].parity)}")
        del int8
    return out, fails


def _ov_weights(recipe: str) -> str:
    """int8-openvino always carries row-wise weights: those of the recipe asked for, else the default recipe's."""
    return recipe if recipe in ROWWISE_SETTINGS else DEFAULT_INT8_RECIPE


def _memo(embed):
    cache: dict = {}

    def cached(texts, task):
        key = (tuple(texts), task)
        if key not in cache:
            cache[key] = embed(texts, task)
        return cache[key]

    return cached
