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
