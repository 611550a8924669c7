"""The int8 speed-goal verdicts in the benchmark report: judged from the per-round ratios, not from a lone median."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives beside src/ and is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.goals import GOALS, goals_section, judge, peer_ratio  # noqa: E402

GOAL_8X128 = next(g for g in GOALS if g.workload == "throughput_8x128")


def _rec(times, base):
    ratios = [b / t for b, t in zip(base, times)]
    return {"time_s_rounds": times, "ratio_median": sorted(ratios)[len(ratios) // 2],
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def _run(torch_times, ours_times, peer_times, baseline="torch-fp32", ours_status="ok"):
    systems = {"torch-fp32": _rec(torch_times, torch_times), "rosberta-int8-openvino": _rec(ours_times, torch_times),
               "openvino-int8": _rec(peer_times, torch_times)}
    return {"baseline": baseline,
            "systems": [{"name": "torch-fp32", "label": "torch fp32", "status": "ok"},
                        {"name": "openvino-int8", "label": "NNCF", "status": "ok"},
                        {"name": "rosberta-int8-openvino", "label": "ours", "status": ours_status}],
            "workloads": {"throughput_8x128": {"systems": systems}}}


def test_every_round_above_is_met_and_only_the_median_above_says_so():
    assert judge({"ratio_median": 4.2, "ratio_min": 4.05, "ratio_max": 4.4}, GOAL_8X128) == "met"
    assert judge({"ratio_median": 4.1, "ratio_min": 3.7, "ratio_max": 4.4}, GOAL_8X128) == "met by the median"
    assert judge({"ratio_median": 3.7, "ratio_min": 3.2, "ratio_max": 4.1}, GOAL_8X128) == "not met (best round above)"
    assert judge({"ratio_median": 3.7, "ratio_min": 3.2, "ratio_max": 3.9}, GOAL_8X128) == "not met"
    assert judge({"ratio_median": None}, GOAL_8X128) == "no ratio"


def test_peer_ratio_is_taken_round_by_round():
    # Round 1: ours 2× faster than the peer, round 2: 0.5×, round 3: 1.5× -> median 1.5, not the ratio of medians.
    res = _run([4.0, 4.0, 4.0], [1.0, 2.0, 1.0], [2.0, 1.0, 1.5])
    w = res["workloads"]["throughput_8x128"]
    assert peer_ratio(w, "rosberta-int8-openvino", "openvino-int8") == 1.5
    assert peer_ratio(w, "rosberta-int8-openvino", "torch-bf16") is None  # not in the run


def test_section_has_a_row_per_goal_measured_and_names_the_verdict():
    md = goals_section(_run([4.0, 4.0, 4.0], [1.0, 0.95, 1.05], [0.9, 0.9, 0.9]))
    rows = [r for r in md.splitlines() if r.startswith("| ours")]
    assert len(rows) == 1 and "8×128 throughput ≥ 4×" in rows[0]
    assert "4.00× (3.81×–4.21×)" in rows[0] and "met by the median" in rows[0]
    assert rows[0].rstrip(" |").endswith("0.90×")  # NNCF is faster than ours in every round


def test_no_section_without_the_torch_baseline_or_our_int8():
    assert goals_section(_run([4.0], [1.0], [1.0], baseline="rosberta-fp32")) == ""
    assert goals_section(_run([4.0], [1.0], [1.0], ours_status="skipped")) == ""
