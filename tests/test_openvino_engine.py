"""The optional OpenVINO engine: the int8-openvino variant, its loading, its errors, and how ``auto`` treats it."""

import json
import os
import shutil
import threading

import numpy as np
import pytest
from isa import int8_here

from rosberta_onnx import Encoder
from rosberta_onnx.errors import ArtifactError, VariantError
from rosberta_onnx.manifest import Manifest
from rosberta_onnx.openvino_engine import openvino_available, split_rows

needs_openvino = pytest.mark.skipif(
    not openvino_available(),
    reason="openvino is not installed (pip install 'rosberta-onnx[openvino]'; the full CI environment has it)",
)


def _has_ov_variant(art):
    if "int8-openvino" not in Manifest.read(art).variants:
        pytest.skip("this artifact has no int8-openvino variant (exported without openvino)")


def _with_gates(src, dst, **passed):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".autotune.json"))  # a new artifact: no timing verdict yet
    d = json.loads((dst / "manifest.json").read_text())
    for variant, ok in passed.items():
        # int8: onnxruntime's int8, the signed file and its unsigned twin alike (the one auto weighs depends on the CPU)
        for v in ("int8", "int8-avx2") if variant == "int8" else (variant.replace("_", "-"),):
            if v in d["variants"]:
                d["variants"][v]["gate"]["passed"] = ok
    (dst / "manifest.json").write_text(json.dumps(d))
    return dst


def test_record_names_the_engine_and_the_options_it_was_gated_with(tiny_artifact):
    _has_ov_variant(tiny_artifact)
    m = Manifest.read(tiny_artifact)
    ov, ort_int8 = m.variants["int8-openvino"], m.variants["int8"]
    assert (ov.engine, ort_int8.engine, m.variants["fp32"].engine) == ("openvino", "onnxruntime", "onnxruntime")
    assert ov.engine_options["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == 256
    assert ov.engine_options["INFERENCE_PRECISION_HINT"] in ("bf16", "f32")
    assert f"; {ov.engine_options['INFERENCE_PRECISION_HINT']} elsewhere" in ov.recipe
    if openvino_available() and not os.environ.get("ROSBERTA_TEST_ARTIFACT"):  # exported on this CPU: bf16 if native
        import openvino

        native_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        assert ov.engine_options["INFERENCE_PRECISION_HINT"] == ("bf16" if native_bf16 else "f32")
    assert ov.gate["engine"]["openvino"] and "passed" in ov.gate and ov.isa
    # the stand-in is CLS-pooled: every graph (int8, and fp32 after fusion) computes the last layer's tail on the
    # first token, and the int8 recipes say so
    layers = m.model.num_layers
    # and both int8 graphs store the word and position tables int8 (the token-type table is too small to matter)
    tables = {"int8_embeddings": 2}
    assert dict(ov.graph_rewrites) == {"key_transposes_split": layers, "first_token_tail": 1, **tables}
    assert dict(ort_int8.graph_rewrites) == {"first_token_tail": 1, **tables}
    assert dict(m.variants["fp32"].graph_rewrites) == {"first_token_tail": 1}
    assert "first token only" in ov.recipe and "first token only" in ort_int8.recipe


@pytest.mark.torch
def test_both_int8_variants_carry_the_same_weights(tiny_artifact):
    """One weight plan (smoothing + GPTQ) serves both engines: the int8 weight tensors are identical."""
    import onnx
    from onnx import numpy_helper

    _has_ov_variant(tiny_artifact)

    def int8_weights(file, suffix):
        g = onnx.load(str(tiny_artifact / file)).graph
        return sorted(numpy_helper.to_array(i).tobytes() for i in g.initializer if i.name.endswith(suffix))

    ort_w = int8_weights("model_int8.onnx", "_wq")
    assert ort_w and ort_w == int8_weights("model_int8_openvino.onnx", "_wq")


@needs_openvino
def test_openvino_variant_encodes_like_fp32_and_is_thread_safe(tiny_artifact):
    _has_ov_variant(tiny_artifact)
    ov = Encoder.load(tiny_artifact, variant="int8-openvino")
    assert ov.variant == "int8-openvino" and ov.providers == ["OpenVINO:CPU"]
    texts = ["Привет, мир", "search me", "Съешь же ещё этих мягких французских булок, да выпей чаю."] * 7
    ref = Encoder.load(tiny_artifact, variant="fp32").encode(texts, task="search_query")
    got = ov.encode(texts, task="search_query", batch_size=5)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert float((got * ref).sum(1).min()) > 0.999  # random weights: loose, the gate judges real ones
    # the serial answers for the very calls the threads make: the same texts in the same batches (with a bf16
    # inference hint, a different batching may move the last digits, which is not what this checks)
    serial = {i: ov.encode(texts[i : i + 6], task="search_query", batch_size=2) for i in range(8)}
    for i, v in serial.items():
        np.testing.assert_allclose(v, got[i : i + 6], atol=1e-3)  # batching is a rounding difference at most
    out, errors = {}, []

    def work(i):
        try:
            out[i] = ov.encode(texts[i : i + 6], task="search_query", batch_size=2)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(out) == 8
    for i, v in out.items():  # concurrent calls give what serial ones give
        np.testing.assert_allclose(v, serial[i], atol=1e-5)


def test_split_rows_covers_every_row_once_in_near_equal_parts():
    for rows in range(1, 12):
        for parts in range(1, 6):
            cut = split_rows(rows, parts)
            sizes = [s.stop - s.start for s in cut]
            assert [i for s in cut for i in range(rows)[s]] == list(range(rows))
            assert len(cut) == min(rows, parts) and min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


@needs_openvino
def test_batch_streams_give_what_one_stream_gives(tiny_artifact):
    """Splitting a batch across OpenVINO streams changes the schedule, not the result; one query is not split."""
    _has_ov_variant(tiny_artifact)
    one = Encoder.load(tiny_artifact, variant="int8-openvino", threads=2, streams=1)
    two = Encoder.load(tiny_artifact, variant="int8-openvino", threads=2, streams=2)
    assert (one.streams, two.streams) == (1, 2)
    assert (
        Encoder.load(tiny_artifact, variant="int8-openvino", threads=1, streams=2).streams == 1
    )  # a stream needs a thread
    texts = ["Привет, мир", "search me", "Съешь же ещё этих мягких французских булок, да выпей чаю.", "a", "б в г"]
    for batch_size in (1, 2, 3, 5):
        got, ref = two.encode(texts, batch_size=batch_size), one.encode(texts, batch_size=batch_size)
        np.testing.assert_allclose(got, ref, atol=2e-3)  # bf16 float ops: rounding may differ with the part's shape
        assert float((got * ref).sum(1).min()) > 0.99999
    ov = two._session
    assert len(ov._pools[True]) == 2 and len(ov._pools[False]) == 1  # batches went split, the lone text did not


def test_threads_and_streams_must_be_whole_numbers_from_one(tiny_artifact):
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match=rf"streams must be a whole number >= 1.*got {bad!r}"):
            Encoder.load(tiny_artifact, variant="fp32", streams=bad)
    with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
        Encoder.load(tiny_artifact, variant="fp32", threads=0)
    assert Encoder.load(tiny_artifact, variant="fp32", streams=np.int64(2)).streams == 1  # onnxruntime: not split


@needs_openvino
def test_auto_takes_a_gated_openvino_int8_and_never_a_failed_one(tiny_artifact, tmp_path):
    _has_ov_variant(tiny_artifact)
    only_ov = _with_gates(tiny_artifact, tmp_path / "ov", int8=False, int8_openvino=True, int4=False)
    assert Encoder.load(only_ov, autotune=False).variant == "int8-openvino"
    both = _with_gates(tiny_artifact, tmp_path / "both", int8=True, int8_openvino=True, int4=False)
    assert Encoder.load(both, autotune=False).variant == int8_here()  # untimed: the default engine first
    neither = _with_gates(tiny_artifact, tmp_path / "neither", int8=False, int8_openvino=False, int4=False)
    assert Encoder.load(neither, autotune=False).variant == "fp32"
    timed = Encoder.load(both)  # timed: all three measured, the fastest kept
    ms = timed.selection.timings_ms
    assert set(ms) == {"fp32", int8_here(), "int8-openvino"} and timed.variant == min(ms, key=ms.get)


def test_without_openvino_the_variant_is_refused_with_the_fix_and_auto_skips_it(tiny_artifact, tmp_path, monkeypatch):
    _has_ov_variant(tiny_artifact)
    import rosberta_onnx.openvino_engine as engine
    import rosberta_onnx.session as session

    monkeypatch.setattr(engine, "openvino_available", lambda: False)
    monkeypatch.setattr(session, "openvino_available", lambda: False)
    with pytest.raises(VariantError, match=r"not installed.*rosberta-onnx\[openvino\].*variant='int8'"):
        Encoder.load(tiny_artifact, variant="int8-openvino")
    only_ov = _with_gates(tiny_artifact, tmp_path / "ov", int8=False, int8_openvino=True, int4=False)
    assert Encoder.load(only_ov).variant == "fp32"


@needs_openvino
def test_damaged_openvino_file_is_an_artifact_error(tiny_artifact, tmp_path):
    _has_ov_variant(tiny_artifact)
    art = tmp_path / "damaged"
    shutil.copytree(tiny_artifact, art)
    f = art / Manifest.read(art).variants["int8-openvino"].file
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        Encoder.load(art, variant="int8-openvino")
    with pytest.raises(ArtifactError, match=r"OpenVINO .* could not load.*re-export"):
        Encoder.load(art, variant="int8-openvino", verify=False)


@needs_openvino
def test_auto_checks_every_file_it_would_time_before_running_any(tiny_artifact, tmp_path):
    _has_ov_variant(tiny_artifact)
    both = _with_gates(tiny_artifact, tmp_path / "both", int8=True, int8_openvino=True, int4=False)
    f = both / Manifest.read(both).variants["int8-openvino"].file
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(ArtifactError, match=r"model_int8_openvino.*does not match its checksum"):
        Encoder.load(both)
    assert not (both / ".autotune.json").exists()  # nothing was timed, so no verdict was cached


def test_unknown_engine_in_a_manifest_is_refused(tiny_artifact, tmp_path):
    art = tmp_path / "future"
    shutil.copytree(tiny_artifact, art)
    d = json.loads((art / "manifest.json").read_text())
    d["variants"]["int8"]["engine"] = "tensorrt"
    (art / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match="engine 'tensorrt'.*upgrade rosberta-onnx or re-export"):
        Encoder.load(art)
