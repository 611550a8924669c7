"""The int8 speed-goal verdicts in the benchmark report: judged from the per-round ratios, not from a lone median."""

from __future__ import annotations

import json

from benchmarks.harness.goals import GOALS, goals_section, judge, peer_ratio
from benchmarks.harness.kernels import KERNEL_OF

GOAL_8X128 = next(g for g in GOALS if g.workload == "throughput_8x128")
ZEN4 = {
    "vendor": "AuthenticAMD",
    "family": 25,
    "model": 17,
    "isa": "avx512_vnni",
    "microarchitecture": "Zen 4",
    "description": "AMD EPYC (AuthenticAMD family 25 model 17, Zen 4; AVX-512 VNNI, no AMX)",
}


def _rec(times, base):
    ratios = [b / t for b, t in zip(base, times)]
    return {
        "time_s_rounds": times,
        "ratio_median": sorted(ratios)[len(ratios) // 2],
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def _run(torch_times, ours_times, peer_times, baseline="torch-fp32", ours_status="ok", cpu=ZEN4):
    systems = {
        "torch-fp32": _rec(torch_times, torch_times),
        "rosberta-int8-openvino": _rec(ours_times, torch_times),
        "openvino-int8": _rec(peer_times, torch_times),
    }
    return {
        "baseline": baseline,
        "systems": [
            {"name": "torch-fp32", "label": "torch fp32", "status": "ok"},
            {"name": "openvino-int8", "label": "NNCF", "status": "ok"},
            {"name": "rosberta-int8-openvino", "label": "ours", "status": ours_status},
        ],
        "workloads": {"throughput_8x128": {"systems": systems}},
        "machine": {"cpu": cpu},
    }


def _ceiling(tmp_path, cpu, x_8x128):
    """A benchmarks.studies.ceiling result for ``cpu`` whose shipped OpenVINO kernel reaches ``x_8x128`` at 8x128."""
    path = tmp_path / "ceiling.json"
    row = {KERNEL_OF["rosberta-int8-openvino"]: {"x_torch_model": x_8x128}}
    path.write_text(json.dumps({"cpu": cpu, "shapes": {"8x128": {"systems": row}}}))
    return path


def test_every_round_above_is_met_and_only_the_median_above_says_so():
    goal = GOAL_8X128.at_least
    assert judge({"ratio_median": 4.2, "ratio_min": 4.05, "ratio_max": 4.4}, goal) == "met"
    assert judge({"ratio_median": 4.1, "ratio_min": 3.7, "ratio_max": 4.4}, goal) == "met by the median"
    assert judge({"ratio_median": 3.7, "ratio_min": 3.2, "ratio_max": 4.1}, goal) == "not met (best round above)"
    assert judge({"ratio_median": 3.7, "ratio_min": 3.2, "ratio_max": 3.9}, goal) == "not met"
    assert judge({"ratio_median": None}, goal) == "no ratio"


def test_peer_ratio_is_taken_round_by_round():
    # Round 1: ours 2× faster than the peer, round 2: 0.5×, round 3: 1.5× -> median 1.5, not the ratio of medians.
    res = _run([4.0, 4.0, 4.0], [1.0, 2.0, 1.0], [2.0, 1.0, 1.5])
    w = res["workloads"]["throughput_8x128"]
    assert peer_ratio(w, "rosberta-int8-openvino", "openvino-int8") == 1.5
    assert peer_ratio(w, "rosberta-int8-openvino", "torch-bf16") is None  # not in the run


def _rows(md):
    return [r for r in md.splitlines() if r.startswith("| ours")]


def test_section_has_a_row_per_goal_measured_and_names_the_verdict(tmp_path):
    md = goals_section(_run([4.0, 4.0, 4.0], [1.0, 0.95, 1.05], [0.9, 0.9, 0.9]), ceiling_path=tmp_path / "none.json")
    rows = _rows(md)
    assert len(rows) == 1 and "8×128 throughput ≥ 4× (no GEMM ceiling measured on this CPU)" in rows[0]
    assert "4.00× (3.81×–4.21×)" in rows[0] and "met by the median" in rows[0]
    assert rows[0].rstrip(" |").endswith("0.90×")  # NNCF is faster than ours in every round
    assert "On AMD EPYC (AuthenticAMD family 25 model 17, Zen 4" in md


def test_vnni_goal_is_capped_by_this_cpus_gemm_ceiling(tmp_path):
    run = _run([4.0, 4.0, 4.0], [1.05, 1.0, 1.02], [0.9, 0.9, 0.9])  # ours 3.81-4.0x
    capped = _rows(goals_section(run, ceiling_path=_ceiling(tmp_path, ZEN4, 4.24)))[0]
    assert "≥ 3.60× (85% of the 4.24× GEMM ceiling)" in capped and "| met |" in capped
    roomy = _rows(goals_section(run, ceiling_path=_ceiling(tmp_path, ZEN4, 6.0)))[0]
    assert "≥ 4× (GEMM ceiling 6.00×)" in roomy and "not met (best round above)" in roomy
    # a ceiling measured on another CPU (a Zen 5: family 26) does not apply
    zen5 = {**ZEN4, "family": 26, "microarchitecture": "Zen 5"}
    other = _rows(goals_section(run, ceiling_path=_ceiling(tmp_path, zen5, 4.24)))[0]
    assert "no GEMM ceiling measured on this CPU" in other


def test_amx_figures_are_recorded_not_judged(tmp_path):
    amx = {**ZEN4, "vendor": "GenuineIntel", "family": 6, "model": 143, "isa": "amx"}
    row = _rows(goals_section(_run([4.0] * 3, [2.0] * 3, [1.0] * 3, cpu=amx), ceiling_path=tmp_path / "no.json"))[0]
    assert "recorded (amx: no goal set from a measurement on this ISA)" in row and "not met" not in row


def test_no_section_without_the_torch_baseline_or_our_int8():
    assert goals_section(_run([4.0], [1.0], [1.0], baseline="rosberta-fp32")) == ""
    assert goals_section(_run([4.0], [1.0], [1.0], ours_status="skipped")) == ""
