"""The footprint study end to end on the torch-free test artifact (no torch: its speed columns say so), and the JS
benchmark systems finding the package they run."""

from __future__ import annotations

import json

from benchmarks.studies import footprint
from benchmarks.systems.js_runtime import JS_DIR


def test_js_systems_point_at_the_repositorys_js_package():
    assert (JS_DIR / "package.json").is_file(), JS_DIR


def test_footprint_study_measures_every_column_it_can(runtime_artifact, tmp_path):
    out = tmp_path / "fp"
    page = tmp_path / "edge.md"
    page.write_text("# Edge\n\n<!-- footprint:start -->\nstale table\n<!-- footprint:end -->\n\nkept\n")
    args = ["--systems", "rosberta-fp32,rosberta-int4", "--rounds", "1", "--cold-runs", "1", "--out", str(out)]
    rc = footprint.main([str(runtime_artifact), *args, "--page", str(page)])
    assert rc == 0
    res = json.loads((out / "footprint.json").read_text())
    for name in ("rosberta-fp32", "rosberta-int4"):
        s = res["systems"][name]
        m = s["memory"]
        assert 0 < m["rss_after_load_mb"] <= m["peak_after_1x16_mb"] <= m["peak_after_8x128_mb"], m
        assert s["cold"]["cold_start_s"] > 0 and s["file_mb"] > 0
    assert res["systems"]["rosberta-int4"]["file_mb"] < res["systems"]["rosberta-fp32"]["file_mb"]
    assert res["systems"]["rosberta-int4"]["fullsize_quality"]["cos_min"] > 0.99  # its gate record, read back
    assert res["speed"]["status"]["torch-fp32"]["status"] == "skipped"  # no checkpoint given: no baseline
    table = (out / "footprint.md").read_text()
    assert "| rosberta-int4 |" in table and "cold start s" in table and not (out / "texts.json").exists()
    published = page.read_text()  # the page's section is the same table, the rest of the page untouched
    assert table in published and "stale table" not in published and published.endswith("kept\n")
    assert footprint.main(["--render", str(out / "footprint.json")]) == 0  # publishes again, measures nothing
    assert (out / "footprint.md").read_text() == table


def test_first_load_study_runs_each_system_on_an_artifact_it_has_never_loaded(runtime_artifact, tmp_path):
    """auto's first load measures and caches next to the artifact: the study gives each system a fresh copy (files
    linked, caches left out), so its figures are a first load's and the artifact measured is left as it was."""
    import os
    import shutil

    from benchmarks.studies import first_load

    art = tmp_path / "art"
    shutil.copytree(runtime_artifact, art)
    (art / ".autotune.json").write_text("{}")  # a warm artifact: its cache must not reach the copies
    before = sorted(p.name for p in art.iterdir())
    copy = first_load.fresh_copy(art, tmp_path / "fresh")
    assert not (copy / ".autotune.json").exists() and (copy / "manifest.json").is_file()
    assert os.path.samefile(copy / "model.onnx", art / "model.onnx")  # linked, not copied

    out = tmp_path / "out"
    assert first_load.main([str(art), "--systems", "rosberta-auto,rosberta-fp32", "--out", str(out)]) == 0
    res = json.loads((out / "first_load.json").read_text())
    auto, fp32 = res["systems"]["rosberta-auto"], res["systems"]["rosberta-fp32"]
    assert auto["variant"].startswith("auto -> ") and fp32["variant"] == "fp32", res["systems"]
    for m in (auto, fp32):
        assert 0 < m["rss_after_load_mb"] <= m["peak_after_load_mb"] <= m["peak_after_8x128_mb"], m
    assert sorted(p.name for p in art.iterdir()) == before  # nothing written into the artifact measured
    assert not list(art.parent.glob(".first-load-*"))  # the copies are gone
    assert "| rosberta-auto | auto -> " in (out / "first_load.md").read_text()
