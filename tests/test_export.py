"""The export pipeline on the tiny stand-in: manifest contents, parity recomputed here, bad input, atomicity."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rosberta_onnx import Encoder
from rosberta_onnx.manifest import Manifest
from rosberta_onnx.openvino_engine import openvino_available

pytestmark = pytest.mark.torch

ROSBERTA_PROMPTS = {
    "search_query": "search_query: ",
    "search_document": "search_document: ",
    "classification": "classification: ",
    "clustering": "clustering: ",
}


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "rosberta_onnx.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_manifest_records_the_contract(tiny_artifact, tiny_checkpoint):
    m = Manifest.read(tiny_artifact)
    f = m.model
    assert (f.architecture, f.num_layers, f.hidden_size, f.num_heads, f.vocab_size) == ("roberta", 2, 64, 4, 50265)
    assert (f.pad_token_id, f.max_position_embeddings, f.max_length) == (1, 514, 512)
    assert (f.pooling, f.normalize, dict(f.prompts)) == ("cls", True, ROSBERTA_PROMPTS)
    assert m.source["stand_in"] is True and m.source["revision"].startswith("sha256:")
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(m.tools)
    # the default: every variant this environment can build (int8-openvino where openvino is installed)
    base = {"fp32", "fp16", "int8", "int8-avx2", "int4"}
    assert set(m.variants) == base | ({"int8-openvino"} if openvino_available() else set())
    assert (
        m.variants["fp32"].fused_ops["Attention"] == 2 and m.variants["fp32"].fused_ops["SkipLayerNormalization"] == 4
    )
    for v in m.variants.values():
        assert v.parity["n"] > 60 and v.parity["passed"], v.parity["failures"]
        assert set(v.files) == set(os.listdir(tiny_artifact)) & set(v.files)
    assert m.variants["int8"].isa
    # the manifest names the checkpoint without the exporter's path; the reference set ships for `verify`
    assert m.source["model"] == tiny_checkpoint.name
    assert m.reference and all((tiny_artifact / f).is_file() for f in m.reference["files"])
    # the files other tools read come with every export, the source's own config among them
    from rosberta_export.interop import INTEROP_FILES

    assert tuple(m.interop) == INTEROP_FILES
    config = json.loads((tiny_artifact / "config.json").read_text())
    assert config["model_type"] == "roberta" and "_note" not in config


def test_a_stand_in_gate_records_retrieval_below_threshold_and_passes(tiny_artifact):
    """Random weights (the source says so): the cosine criteria decide; retrieval and STS are kept, not judged."""
    from rosberta_export.gate import INT8_GATE

    m = Manifest.read(tiny_artifact)
    for name in ("int8", "int8-openvino"):
        if name not in m.variants:
            continue
        g = m.variants[name].gate
        assert g["judged"] == ["cos_min", "cos_mean"] and g["recorded"] == ["top10_overlap_min", "spearman_delta_max"]
        assert g["recorded_reason"] == "random weights" and g["passed"] and not g["failures"]
        # the tiny stand-in's neighbours are near-ties: its top-10 overlap sits below 0.95, and is only recorded
        overlap = g["figures"]["top10_overlap"]
        assert min(overlap.values()) < INT8_GATE["top10_overlap_min"], overlap
        assert any("top-10" in miss for miss in g["recorded_misses"]), g["recorded_misses"]
    r = cli("info", str(tiny_artifact))
    assert "int8 gate: pass — judged: cosine min" in r.stdout and "recorded, not judged (random weights)" in r.stdout


def test_a_stand_in_gate_defaults_to_the_smaller_sample_and_a_bad_sample_is_refused_up_front(tiny_artifact, tmp_path):
    """Only recorded figures come from the STS pairs on random weights: a stand-in export samples 200 of them
    unless told otherwise (MiniLM's test checks trained weights get all 1500); a sample the gate cannot rank
    top-10 lists in is refused before any work, naming the value."""
    from rosberta_export.gate import STAND_IN_GATE_PAIRS
    from rosberta_export.pipeline import ExportError, export

    m = Manifest.read(tiny_artifact)
    assert m.variants["int8"].gate["figures"]["pairs_per_lang"] == STAND_IN_GATE_PAIRS
    for bad in (0, 9, 1501):
        with pytest.raises(ExportError, match=rf"gate_pairs={bad}: .*choose 10\.\.1500"):
            export("/nonexistent/checkpoint", tmp_path / "out", gate_pairs=bad)
    assert not list(tmp_path.iterdir())


def test_parity_recomputed_through_the_public_api(tiny_checkpoint, tiny_artifact):
    """Independent of the exporter's own figures: reference vs Encoder, all edge cases, per variant."""
    from rosberta_export.parity import THRESHOLDS, compare, failures, parity_cases
    from rosberta_export.reference import Reference

    ref = Reference(tiny_checkpoint, pooling="cls", normalize=True, max_length=512)
    counter = Encoder.load(tiny_artifact, variant="fp32")
    cases = parity_cases(48, max_length=512, count_tokens=lambda t: counter.count_tokens([t])[0])
    names = [c.name for c in cases]
    assert {
        "empty",
        "whitespace",
        "one_char",
        "emoji_zwj",
        "combining_marks",
        "special_tokens_in_text",
        "longer_than_max",
        "exactly_max_length",
        "prefix_search_query",
        "prefix_clustering",
    } <= set(names)
    assert counter.count_tokens([c.text for c in cases if c.name == "exactly_max_length"])[0] == 512
    texts = [c.text for c in cases]
    want = ref.embed(texts, batch_size=16)
    report = {}
    for v in ("fp32", "fp16", "int8"):
        got = Encoder.load(tiny_artifact, variant=v, allow_cpu_fp16=True).encode(texts, batch_size=7)
        fig = compare(want, got, names)
        report[v] = failures(fig, THRESHOLDS[v])
    assert report == {"fp32": [], "fp16": [], "int8": []}


def test_failures_report_every_failing_case():
    from rosberta_export.parity import compare, failures

    ref = np.eye(3, dtype=np.float32)
    got = ref.copy()
    got[0] = [0.9, 0.1, 0]
    got[2] = [0, 0.2, 0.8]
    f = failures(compare(ref, got, ["a", "b", "c"]), {"cos_min": 0.99999, "max_abs": 1e-4})
    assert [x.split(":")[0] for x in f] == ["a", "c"]


def test_defaults_without_sentence_transformers_files(tmp_path):
    from rosberta_export.pipeline import export
    from rosberta_export.synth import synth

    ckpt = synth(tmp_path / "bare", size="tiny", seed=1, sentence_transformers_files=False)
    r = export(str(ckpt), tmp_path / "out", variants=("fp32",), parity_texts=8)
    f = r.manifest.model
    assert (f.pooling, f.normalize, dict(f.prompts), set(r.manifest.variants)) == (
        "cls",
        True,
        ROSBERTA_PROMPTS,
        {"fp32"},
    )
    assert r.ok


def test_mean_pooling_and_prompts_are_read_from_st_files(tmp_path, tiny_checkpoint):
    from rosberta_export.pipeline import export

    ckpt = tmp_path / "meanpool"
    shutil.copytree(tiny_checkpoint, ckpt)
    cfg = json.loads((ckpt / "1_Pooling/config.json").read_text())
    cfg.update(pooling_mode_cls_token=False, pooling_mode_mean_tokens=True)
    (ckpt / "1_Pooling/config.json").write_text(json.dumps(cfg))
    (ckpt / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "query: "}}))
    r = export(str(ckpt), tmp_path / "out", variants=("fp32",), parity_texts=16)
    assert r.manifest.model.pooling == "mean" and dict(r.manifest.model.prompts) == {"query": "query: "}
    assert r.ok, r.parity_failures  # mean pooling matches the reference too


# -- bad input to the exporter: one clear line, non-zero exit, nothing half-written ------------------


def test_missing_folder(tmp_path):
    r = cli("export", str(tmp_path / "nope" / "x"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "does not exist" in r.stderr and not (tmp_path / "out").exists()


def test_not_a_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("export", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "no config.json" in r.stderr and not (tmp_path / "out").exists()


def test_unsupported_architecture(tmp_path, tiny_checkpoint):
    ckpt = tmp_path / "gpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    r = cli("export", str(ckpt), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "'gpt2'" in r.stderr and "bert, roberta, xlm-roberta" in r.stderr


def test_existing_output_needs_overwrite(tmp_path, tiny_checkpoint):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    r = cli("export", str(tiny_checkpoint), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_calibration_size_out_of_range_names_the_range(tmp_path, tiny_checkpoint):
    r = cli("export", str(tiny_checkpoint), "-o", str(tmp_path / "out"), "--calibration-sentences", "0")
    assert r.returncode == 2 and "calibration_sentences=0 is out of range" in r.stderr and "choose 1.." in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_failing_fusion_child_is_an_export_error_with_its_cause(tmp_path, tiny_artifact):
    """Fusion runs in a child process (its memory goes back to the OS); its failure must still say what broke."""
    from rosberta_export.fp_variants import build_fp_variants
    from rosberta_export.pipeline import ExportError

    facts = Manifest.read(tiny_artifact).model
    with pytest.raises(ExportError, match=r"rosberta_export\.fuse failed: exit status 1\..*missing-raw\.onnx"):
        build_fp_variants(tmp_path / "missing-raw.onnx", tmp_path, tmp_path, ("fp32", "fp16"), facts, {})
    assert not (tmp_path / "model.onnx").exists() and not (tmp_path / "model_fp16.onnx").exists()


@pytest.mark.parametrize("unread_above", [None, 0], ids=["default", "every-weight-on-disk"])
def test_fp16_converted_with_weights_on_disk_is_the_converters_own_file(
    tmp_path, tiny_artifact, monkeypatch, unread_above
):
    """The fp16 writer converts the graph with its large weights unread, then rounds each from disk: the graph must
    be the one onnxruntime's converter gives on the whole loaded model (the tiny graph has few weights above the
    threshold, so it is also run with every weight left on disk)."""
    import onnx

    from rosberta_export import fp16
    from rosberta_export.weights_io import load_graph

    if unread_above is not None:
        monkeypatch.setattr(fp16, "_UNREAD_ABOVE", unread_above)
    fused = tiny_artifact / "model.onnx"
    big = fp16.large_weights(fused)
    assert big, "nothing left on disk: the test would not test the streamed path"
    fp16.write_fp16(fused, tmp_path / "lean.onnx", props={})
    whole = fp16.to_fp16(onnx.load(str(fused)), fp16.tensor_types(load_graph(fused, without=big)))
    lean = onnx.load(str(tmp_path / "lean.onnx"))
    assert lean.graph.SerializeToString() == whole.graph.SerializeToString()
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in lean.graph.initializer if t.name in big)


def test_unwritable_output(tmp_path, tiny_checkpoint):
    if os.geteuid() == 0:
        target = "/proc/rosberta-out/x"  # root ignores permission bits; /proc refuses everyone
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = str(ro / "out")
    r = cli("export", str(tiny_checkpoint), "-o", target)
    assert r.returncode == 2 and ("cannot create" in r.stderr or "cannot write" in r.stderr), r.stderr


def test_hub_id_while_offline(tmp_path, tiny_checkpoint):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run(
        [sys.executable, "-m", "rosberta_onnx.cli", "export", "ai-forever/ru-en-RoSBERTa", "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 2
    assert "could not fetch 'ai-forever/ru-en-RoSBERTa'" in r.stderr and "--local-dir" in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == r.stderr.splitlines()[-1:]
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_demo_prints_fp32_vectors_and_parity_first(tmp_path, tiny_checkpoint):
    """The README's first command gives vectors before any quantised variant is built: fp32 alone, then (without
    --fp32-only) every variant."""
    import shutil

    shutil.copytree(tiny_checkpoint, tmp_path / "standin-tiny")  # the demo reuses a stand-in already there
    r = subprocess.run(
        [sys.executable, "-m", "rosberta_onnx.cli", "demo", str(tmp_path), "--size", "tiny", "--fp32-only"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "STAND-IN model (random weights" in out
    assert "encoded 2 RU/EN queries with variant 'fp32'" in out and "norms [1.0, 1.0]" in out
    assert "| fp32 |" in out and "| int8 |" not in out and "every variant" not in out
    assert list(Manifest.read(tmp_path / "standin-tiny-onnx").variants) == ["fp32"]


def test_failed_export_leaves_nothing_and_keeps_the_old_artifact(tmp_path, tiny_checkpoint, monkeypatch):
    from rosberta_export import pipeline, quantized_variants

    out = tmp_path / "out"
    pipeline.export(str(tiny_checkpoint), out, variants=("fp32",), parity_texts=4)
    before = Manifest.read(out)

    def boom(*a, **k):
        raise RuntimeError("simulated crash during quantisation")

    monkeypatch.setattr(quantized_variants, "quantize_int8", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pipeline.export(str(tiny_checkpoint), out, variants=("fp32", "int8"), overwrite=True, parity_texts=4)
    assert Manifest.read(out) == before  # the old artifact is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folders left behind
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        pipeline.export(str(tiny_checkpoint), fresh, variants=("int8",), parity_texts=4)
    assert not fresh.exists()


def test_calibration_size_without_a_calibrating_variant_says_it_is_unused(tmp_path, tiny_checkpoint):
    r = cli(
        "export",
        str(tiny_checkpoint),
        "-o",
        str(tmp_path / "out"),
        "--variants",
        "fp32",
        "--calibration-sentences",
        "64",
        "--parity-texts",
        "4",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "calibration_sentences=64 is not used" in r.stdout + r.stderr


def test_too_little_disk_is_refused_up_front_and_a_full_disk_midway_loses_nothing(
    tmp_path, tiny_checkpoint, monkeypatch
):
    import errno
    from collections import namedtuple

    from rosberta_export import diskspace, pipeline, quantized_variants

    out = tmp_path / "out"
    pipeline.export(str(tiny_checkpoint), out, variants=("fp32",), parity_texts=4)
    before = Manifest.read(out)

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 2**20, 2**20))
    with pytest.raises(
        pipeline.ExportError,
        match=r"not enough disk space in .* needs about \d+\.\d GB more at its "
        r"peak and 0\.0 GB are free.*--variants",
    ):
        pipeline.export(str(tiny_checkpoint), out, overwrite=True, parity_texts=4)
    monkeypatch.undo()

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "model_int8.onnx")

    monkeypatch.setattr(quantized_variants, "quantize_int8", disk_full)
    with pytest.raises(pipeline.ExportError, match=r"filled up during the export .*partial export was removed"):
        pipeline.export(str(tiny_checkpoint), out, variants=("fp32", "int8"), overwrite=True, parity_texts=4)
    assert Manifest.read(out) == before  # the old artifact is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folders left behind


def test_too_little_memory_is_refused_before_the_checkpoint_loads(tmp_path, tiny_checkpoint, monkeypatch):
    from rosberta_export import memory, pipeline

    monkeypatch.setattr(memory, "available_bytes", lambda: 100 * 1024**2)
    loaded = []
    monkeypatch.setattr(pipeline, "export_fp32", lambda *a, **k: loaded.append(a))
    with pytest.raises(pipeline.ExportError, match=r"not enough memory for exporting .* 0\.1 GB are available"):
        pipeline.export(str(tiny_checkpoint), tmp_path / "out")
    assert not loaded and list(tmp_path.iterdir()) == []  # refused before torch ran; nothing written


def test_disk_estimate_covers_every_file_the_export_holds_at_once(minilm_export):
    """The space check's arithmetic against a real export's files (MiniLM: its int8 files are about a quarter of
    fp32, int4 a fifth: the embedding tables, int8 in both, are half the model). At its fullest the export holds
    the raw and fused fp32 graphs, fp16, and the quantised files (the calibration probe is the raw graph without
    its weights)."""
    from rosberta_export.diskspace import MARGIN_BYTES, peak_bytes, quantized_fractions

    m = minilm_export.manifest
    size = {v: r.size_bytes for v, r in m.variants.items()}
    assert set(size) == {"fp32", "fp16", "int8", "int8-avx2", "int8-openvino", "int4"}
    raw = size["fp32"]  # the fused graph holds the same weights as the raw one
    q = quantized_fractions(
        raw,
        vocab_size=m.model.vocab_size,
        max_positions=m.model.max_position_embeddings,
        hidden_size=m.model.hidden_size,
    )
    for v in ("int8", "int8-avx2", "int8-openvino", "int4"):
        assert size[v] == pytest.approx(q[v] * raw, rel=0.03), (v, size[v] / raw, q[v])
    held = raw + sum(size.values())
    estimate = raw + peak_bytes(raw, tuple(size), fractions=q)
    assert held <= estimate <= held * 1.03 + MARGIN_BYTES


def test_raw_export_keeps_weights_apart_so_the_calibration_probe_copies_none(tmp_path, tiny_checkpoint, monkeypatch):
    """The raw fp32 graph's weights sit in one .data file, so the calibration probe (the graph plus outputs)
    writes kilobytes, not a copy of the weights; ``weights_apart=False`` keeps torch's single file."""
    import onnx
    from onnx import numpy_helper

    from rosberta_export import rowwise
    from rosberta_export.convert import export_fp32
    from rosberta_export.source import resolve_source

    src = resolve_source(str(tiny_checkpoint))
    for d in ("apart", "whole"):
        (tmp_path / d).mkdir()
    apart = export_fp32(src, tmp_path / "apart" / "raw.onnx")
    whole = export_fp32(src, tmp_path / "whole" / "raw.onnx", weights_apart=False)
    data = apart.with_name("raw.onnx.data")
    assert data.exists() and not whole.with_name("raw.onnx.data").exists()
    assert apart.stat().st_size * 20 < data.stat().st_size < whole.stat().st_size

    # apart, each Linear multiplies by a transposed view of its weight (nothing for torch to fold); whole, torch folds
    # a transposed copy: the same MatMul weights node by node, and the same outputs
    def matmul_weights(path):
        g = onnx.load(str(path)).graph
        inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        return [inits[n.input[1]] for n in g.node if n.op_type == "MatMul" and n.input[1] in inits]

    a, w = matmul_weights(apart), matmul_weights(whole)
    assert len(a) == len(w) > 0 and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, w))
    g = onnx.load(str(apart), load_external_data=False).graph
    consts = {i.name for i in g.initializer}
    assert not [n.name for n in g.node if n.op_type == "Transpose" and n.input[0] in consts]
    import onnxruntime as ort

    ids = np.array([[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]])
    feed = {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int64)}
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert np.array_equal(run(apart), run(whole))

    probes = []
    real_save = onnx.save_model
    monkeypatch.setattr(
        onnx,
        "save_model",
        lambda m, f, *args, **kw: (real_save(m, f, *args, **kw), probes.append(os.path.getsize(f)))[0],
    )
    g = onnx.load(str(apart), load_external_data=False).graph
    name = next(n.input[0] for n in g.node if n.op_type == "MatMul")
    ids = np.array([[0, 5, 6, 2]], dtype=np.int64)
    cal = rowwise.channel_stats(apart, [name], [(ids, np.ones_like(ids))])
    assert probes and max(probes) < apart.stat().st_size * 2 and name in cal.ranges
    assert not apart.with_name("raw.calibration.onnx").exists()


def test_the_traced_model_is_gone_when_the_trace_returns(tmp_path, tiny_checkpoint):
    """In a fresh process, transformers resolves the model class through a lazy import whose caught exception keeps
    the loading frames (and the model in them) in a reference cycle: without a collection the weights (at full size,
    1.4 GB of mapped checkpoint pages) stayed resident through calibration whenever the collector did not run."""
    script = f"""
import gc, sys, weakref
import transformers
from rosberta_export.convert import export_fp32
from rosberta_export.source import resolve_source
loaded, real = [], transformers.AutoModel.from_pretrained
def load(*a, **kw):
    m = real(*a, **kw)
    loaded.append(weakref.ref(m))
    return m
transformers.AutoModel.from_pretrained = load
gc.disable()
export_fp32(resolve_source({str(tiny_checkpoint)!r}), __import__("pathlib").Path({str(tmp_path / "raw.onnx")!r}))
print("alive" if any(r() is not None for r in loaded) else "gone" if loaded else "never loaded")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == "gone", r.stdout


def test_an_export_stopped_by_sigterm_leaves_no_partial_folder(tiny_checkpoint, tmp_path, stop_with_sigterm):
    """``kill`` or a CI time limit ends an export like Ctrl-C: the partial folder beside the target (1.4 GB and
    more at full size) is removed, and the target is as it was (here: absent)."""
    out = tmp_path / "out"
    rc, err = stop_with_sigterm(
        [
            sys.executable,
            "-m",
            "rosberta_onnx.cli",
            "export",
            str(tiny_checkpoint),
            "-o",
            str(out),
            "--parity-texts",
            "8",
            "--gate-pairs",
            "50",
        ],
        ready=lambda: bool(list(tmp_path.glob(".out.partial-*/*"))),
    )
    assert rc == 130 and "interrupted" in err, err[-2000:]
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())
