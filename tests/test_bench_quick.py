"""``python -m benchmarks --quick`` on the tiny stand-in: well-formed JSON, Markdown and PNGs, every system
present or skipped with a reason. No timed assertions: speeds on shared machines are not testable."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="needs the bench extra: pip install 'rosberta-onnx[bench]'")
HAS_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None

from benchmarks.readme_table import END, START, render_section, replace_section  # noqa: E402
from benchmarks.systems import SYSTEM_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
from benchmarks.harness.workloads import exact_length_texts  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = {"latency": "p50_ms", "throughput": "seq_per_s", "corpus": "texts_per_s", "scaling": "ms_per_seq"}


@pytest.fixture(scope="module")
def quick_run(tiny_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # A subprocess, so the peers' own warnings are not turned into errors by this suite's filterwarnings.
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            str(tiny_artifact),
            "--quick",
            "--rounds",
            "1",
            "--corpus-size",
            "16",
            "--out",
            str(out),
            "--name",
            "q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    folder = out / "q"
    return folder, json.loads((folder / "results.json").read_text(encoding="utf-8")), r


def test_every_system_ran_or_says_why_it_was_skipped(quick_run, tiny_artifact):
    from rosberta_onnx.manifest import Manifest
    from rosberta_onnx.openvino_engine import openvino_available

    _, res, r = quick_run
    systems = {s["name"]: s for s in res["systems"]}
    assert list(systems) == list(SYSTEM_NAMES)
    for name, s in systems.items():
        assert s["status"] in ("ok", "skipped"), f"{name}: {s['status']} — {s['reason']}"
        if s["status"] == "skipped":
            assert len(s["reason"]) > 10, name
    # Our own variants on the CPU must run; the fp16 GPU variant is skipped without CUDA, with a reason.
    assert systems["rosberta-fp32"]["status"] == systems["rosberta-int8"]["status"] == "ok"
    if (
        openvino_available() and "int8-openvino" in Manifest.read(tiny_artifact).variants
    ):  # the optional engine, where installed
        assert systems["rosberta-int8-openvino"]["status"] == "ok"
    if not res["machine"]["cuda"]:
        assert systems["rosberta-fp16"]["status"] == "skipped" and "CUDA" in systems["rosberta-fp16"]["reason"]
    if HAS_TORCH:  # the tiny artifact's manifest names its local checkpoint, so the reference is found
        assert systems["torch-fp32"]["status"] == "ok" and res["baseline"] == "torch-fp32"
    assert "Traceback" not in r.stderr


def test_figures_are_complete_and_finite(quick_run):
    _, res, _ = quick_run
    ok = [s["name"] for s in res["systems"] if s["status"] == "ok"]
    kinds = {w["kind"] for w in res["workloads"].values()}
    assert kinds == set(FIGURES)
    for wname, w in res["workloads"].items():
        assert set(w["systems"]) == set(ok), wname
        for name, rec in w["systems"].items():
            value = rec[FIGURES[w["kind"]]]
            assert math.isfinite(value) and value > 0, (wname, name, value)
            assert rec["ratio_median"] is not None and rec["ratio_median"] > 0
        assert w["systems"][res["baseline"]]["ratio_median"] == pytest.approx(1.0)
    lat = res["workloads"]["latency_1x16"]["systems"]
    assert all(r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] for r in lat.values())
    for s in res["systems"]:
        if s["status"] != "ok":
            continue
        assert s["load_s"] is not None and s["load_s"] >= 0, s["name"]
        assert s["memory"].get("peak_rss_mb", 0) > 0, (s["name"], s["memory"])
        q = s["quality"]
        assert q["n"] == 16 and -1.0001 <= q["cos_min"] <= q["cos_mean"] <= 1.0001, (s["name"], q)
    # Same inputs, same function: fp32 paths agree with the reference (int8/bf16 are only reported).
    for name in ("rosberta-fp32", "ort-plain", "openvino-fp32", "st-torch"):
        s = next(x for x in res["systems"] if x["name"] == name)
        if s["status"] == "ok":
            assert s["quality"]["cos_min"] > 0.9999, (name, s["quality"])
    m = res["machine"]
    assert m["cpu_model"] and m["physical_cores"] >= 1 and "avx512_vnni" in m["cpu_flags"]
    assert m["versions"]["onnxruntime"] != "not installed"


def test_markdown_and_charts_are_written(quick_run):
    folder, res, r = quick_run
    md = (folder / "results.md").read_text(encoding="utf-8")
    assert "| system | load s | 1×16 p50 ms" in md
    for s in res["systems"]:
        assert s["label"] in md
        if s["status"] == "skipped":
            assert s["reason"] in md
    assert "| system |" in r.stdout  # the table is printed too
    ok = {s["name"] for s in res["systems"] if s["status"] == "ok"}
    if {"torch-fp32", "rosberta-int8"} <= ok:  # the int8 speed goals are judged in the report and printed
        for text in (md, r.stdout):
            # the goal's figure depends on the CPU's ISA and its measured GEMM ceiling: only its form is fixed
            assert "## Speed goals (int8)" in text and "| rosberta-onnx int8 | 8×128 throughput " in text
    for chart in ("throughput.png", "latency.png", "seq_scaling.png"):
        data = (folder / chart).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, chart


def test_readme_section_replaces_only_the_marked_block(quick_run, tmp_path):
    folder, res, _ = quick_run
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{START}\nold table\n{END}\n\n## After\n", encoding="utf-8")
    section = render_section(res, folder / "results.json", readme)
    new = replace_section(readme.read_text(encoding="utf-8"), section)
    assert new.startswith("# Title\n\nintro\n\n") and new.endswith(f"{END}\n\n## After\n")
    assert "old table" not in new and "| system | load s |" in new
    assert "throughput.png)" in new and "seq_scaling.png)" in new
    assert res["machine"]["cpu_model"] in new
    with pytest.raises(ValueError, match="bench:start"):
        replace_section("# no markers\n", section)


def test_fixed_shape_texts_have_exactly_n_tokens(tiny_artifact):
    from rosberta_onnx import Encoder

    enc = Encoder.load(tiny_artifact, variant="fp32")
    count = lambda t: int(enc.count_tokens([t])[0])
    for n, k in ((16, 1), (128, 8), (enc.max_length, 1)):
        texts = exact_length_texts(count, n, k)
        assert len(set(texts)) == k and [count(t) for t in texts] == [n] * k


@pytest.mark.skipif(
    not HAS_TORCH or importlib.util.find_spec("openvino") is None,
    reason="the ceiling bench times torch against OpenVINO and onnxruntime",
)
def test_ceiling_bench_times_the_same_work_in_every_engine(tiny_checkpoint, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.studies.ceiling",
            str(tiny_checkpoint),
            "--shapes",
            "1x8,2x16",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # the GEMM-only models it built (GBs at full size) are gone with the run
    assert not list(scratch.glob("ceiling-*")), list(scratch.iterdir())
    res = json.loads((tmp_path / "ceiling.json").read_text(encoding="utf-8"))
    assert list(res["shapes"]) == ["1x8", "2x16"]
    for shape in res["shapes"].values():
        systems = shape["systems"]
        assert len(systems) == 6 and all(math.isfinite(s["gmacs"]) and s["gmacs"] > 0 for s in systems.values())
        # every engine's GEMM-only model computes torch's chain (int8 rounding aside)
        assert len(shape["cosine_vs_torch_gemms"]) == 5 and min(shape["cosine_vs_torch_gemms"].values()) > 0.95
    assert "| 2x16 |" in (tmp_path / "ceiling.md").read_text(encoding="utf-8")


@pytest.mark.skipif(not HAS_TORCH, reason="the plain-export peer needs torch")
def test_a_bench_stopped_by_sigterm_removes_its_work_folders(
    tiny_checkpoint, tiny_artifact, tmp_path, stop_with_sigterm
):
    """``kill`` or a CI time limit ends a bench like Ctrl-C: the plain export it was building (1.4 GB at full size)
    does not stay behind in the temp folder."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    rc, err = stop_with_sigterm(
        [
            sys.executable,
            "-m",
            "benchmarks",
            str(tiny_artifact),
            "--reference",
            str(tiny_checkpoint),
            "--quick",
            "--rounds",
            "1",
            "--systems",
            "ort-plain",
            "--out",
            str(tmp_path),
        ],
        ready=lambda: bool(list(scratch.glob("rosberta-bench-*"))),
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert rc != 0 and "stopped by signal" in err, err[-2000:]
    assert not list(scratch.glob("rosberta-bench-*")), list(scratch.iterdir())


def test_ceiling_agreement_check_tells_a_different_computation_apart():
    from benchmarks.studies.ceiling import INT8, TORCH_GEMMS, _agreement

    y = np.random.default_rng(0).standard_normal((2, 8, 16)).astype(np.float32)
    agree = _agreement({TORCH_GEMMS: y, INT8[0]: 1.01 * y + 1e-3, INT8[1]: y[:, ::-1].copy()})
    assert agree[TORCH_GEMMS] == pytest.approx(1.0) and agree[INT8[0]] > 0.999 and agree[INT8[1]] < 0.5


@pytest.mark.skipif(
    not HAS_TORCH or importlib.util.find_spec("nncf") is None,
    reason="the NNCF accuracy-control bench needs torch, openvino and nncf",
)
def test_nncf_accuracy_bench_reports_reverts_gate_figures_and_speed(tiny_checkpoint, tiny_artifact, tmp_path):
    from rosberta_onnx.manifest import Manifest

    if "int8-openvino" not in Manifest.read(tiny_artifact).variants:
        pytest.skip("the tiny artifact has no int8-openvino to compare with")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.studies.nncf_accuracy",
            "--quality-checkpoint",
            str(tiny_checkpoint),
            "--speed-checkpoint",
            str(tiny_checkpoint),
            "--artifact",
            str(tiny_artifact),
            "--max-drops",
            "0.01",
            "--defaults-iterations",
            "1",
            "--gate-pairs",
            "20",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "nncf_accuracy.json").read_text(encoding="utf-8"))
    runs = res["quality"]["runs"]
    assert [(x["max_drop"], x["nncf_defaults"]) for x in runs] == [
        (None, False),
        (0.01, False),
        (None, True),
        (0.01, True),
    ]
    assert runs[0]["reverted"] == [] and runs[2]["reverted"] == []  # plain static int8 quantises every MatMul
    for x in runs:
        assert x["weight_matmuls"] == 12 and len(x["reverted"]) == sum(x["reverted_roles"].values())
        assert 0.9 < x["cos_min"] <= x["cos_mean"] <= 1.0 + 1e-6 and set(x["top10_overlap"]) == {"en", "ru"}
    assert list(res["speed"]["shapes"]) == ["1x16", "8x128"]
    assert all(math.isfinite(v) and v > 0 for s in res["speed"]["shapes"].values() for v in s.values())
    assert "| no SmoothQuant, no bias correction | 0.01 |" in (tmp_path / "nncf_accuracy.md").read_text(
        encoding="utf-8"
    )
    assert not list(scratch.glob("nncf-accuracy-*"))


def test_nncf_accuracy_bench_needs_an_int8_openvino_artifact(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.studies.nncf_accuracy", "--artifact", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "has no model_int8_openvino.onnx" in r.stderr and "rosberta-onnx export" in r.stderr
