"""The soak study end to end, small: a real server on 127.0.0.1, every route of the mix, each answer's status
checked; no request may go without an HTTP answer."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from benchmarks.studies import soak_serve

pytestmark = pytest.mark.timeout(300)


def test_a_short_soak_answers_every_request_with_its_expected_status(runtime_artifact, tmp_path):
    out = tmp_path / "soak"
    rc = soak_serve.main([str(runtime_artifact), "--clients", "16", "--requests", "600", "--out", str(out)])
    res = json.loads((out / "soak.json").read_text())
    (run,) = res["runs"]
    s = run["soak"]
    assert rc == 0 and s["transport_errors"] == 0, s["transport_examples"]
    assert s["answered"] == 600 and s["wrong_status"] == {}, s["wrong_status"]
    assert {k for k, v in s["per_kind"].items() if v["n"]} >= {"embed", "openai", "similarity", "bad_json"}
    assert {"200", "422"} <= set(s["statuses"]) and run["server_alive_after"]
    assert 0 < s["p50_ms"] <= s["p99_ms"] and "| 75 | 16 | none | 600 | 0" in (out / "soak.md").read_text()
