"""The server-load study against infinity-emb: the model folder infinity is given, which int8 file both servers run,
the summary of rounds; and, where an infinity-emb environment is named (``ROSBERTA_INFINITY_PYTHON``), the whole
study on loopback with real clients. infinity-emb pins its own world (optimum, transformers 4.x, torch), so CI
does not build it: ``python3 -m venv .venv-infinity && .venv-infinity/bin/pip install 'torch==2.13.0'
'infinity-emb[server,optimum]'``."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks.harness.infinity_server import infinity_folder
from benchmarks.studies import load_peers
from rosberta_onnx import Manifest


def test_infinity_gets_the_checkpoints_tokenizer_and_our_file_at_the_top_under_the_name_it_looks_for(
    runtime_artifact, tmp_path
):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("tokenizer.json", "model.safetensors"):
        (ckpt / name).write_text(name)
    (ckpt / "config.json").write_text(json.dumps({"model_type": "roberta", "max_position_embeddings": 514}))
    rec = Manifest.read(runtime_artifact).variants["int8"]
    data = [runtime_artifact / f for f in rec.files if f != rec.file]
    folder = infinity_folder(ckpt, runtime_artifact / rec.file, data, tmp_path / "m", max_length=512)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["config.json", "tokenizer.json", "model_quantized.onnx", *(f.name for f in data)])
    assert (folder / "model_quantized.onnx").read_bytes() == (runtime_artifact / rec.file).read_bytes()
    assert not (folder / "model.safetensors").exists()  # the weights infinity would never read are left out
    # infinity truncates at max_position_embeddings: RoBERTa's 514 is two past what the model takes
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "roberta", "max_position_embeddings": 512}
    assert json.loads((ckpt / "config.json").read_text())["max_position_embeddings"] == 514  # a copy was changed


def test_both_servers_run_an_onnxruntime_int8_file_exact_on_this_cpu(runtime_artifact, monkeypatch):
    import rosberta_onnx.hardware as hardware

    m = Manifest.read(runtime_artifact)
    assert load_peers.onnxruntime_int8(m, "int8") == "int8"
    monkeypatch.setattr(hardware, "int8_native", lambda isa: False)
    if "int8-avx2" in m.variants:  # without VNNI, fp32 or an OpenVINO pick maps to the exact unsigned twin
        assert load_peers.onnxruntime_int8(m, "fp32") == "int8-avx2"
    monkeypatch.setattr(hardware, "int8_native", lambda isa: True)
    assert load_peers.onnxruntime_int8(m, "fp32") == "int8"


def test_rounds_are_summarised_as_medians_with_errors_summed():
    run = lambda rps, p50, err: {
        "requests": 10,
        "errors": err,
        "first_errors": ["503 busy"] * err,
        "requests_per_s": rps,
        "p50_ms": p50,
        "p99_ms": p50 * 2,
    }
    s = load_peers.summarize([run(10.0, 5.0, 0), run(30.0, 7.0, 1), run(20.0, 9.0, 0)])
    assert (s["requests_per_s"], s["p50_ms"], s["p99_ms"]) == (20.0, 7.0, 14.0)
    assert (s["requests"], s["errors"], s["first_errors"]) == (30, 1, ["503 busy"])
    assert s["each_round_requests_per_s"] == [10.0, 30.0, 20.0]


@pytest.mark.skipif(not os.environ.get("ROSBERTA_INFINITY_PYTHON"), reason="set ROSBERTA_INFINITY_PYTHON (see above)")
def test_load_study_against_infinity_on_minilm(minilm_export, minilm_dir, tmp_path):
    out = tmp_path / "out"
    args = [str(minilm_export), "--checkpoint", str(minilm_dir), "--infinity-python"]
    args += [os.environ["ROSBERTA_INFINITY_PYTHON"], "--concurrency", "4", "--duration", "2", "--max-requests", "60"]
    assert load_peers.main([*args, "--rounds", "2", "--out", str(out)]) == 0
    res = json.loads((out / "load_peers.json").read_text())
    ours, inf = res["servers"][load_peers.OURS], res["servers"][load_peers.INFINITY]
    assert ours["runs"] == inf["runs"] and ours["cos_min_vs_fp32"] > 0.99 and inf["cos_min_vs_fp32"] > 0.99
    for srv in (ours, inf):
        s = srv["load"]["4"]
        assert s["errors"] == 0 and s["requests"] > 0 and s["p50_ms"] > 0 and srv["peak_rss_mb"] > 0, srv
