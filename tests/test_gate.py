"""The int8 gate's rule: cosine criteria judged on every model, retrieval and STS judged on trained weights only.

These check the verdict logic on figures; the exports in test_minilm / test_fullsize check it end to end."""

from rosberta_export.gate import COSINE_CRITERIA, INT8_GATE, TRAINED_ONLY, gate_record
from rosberta_onnx.report import gate_line

GOOD_COS = {"cos_min": 0.9996, "cos_mean": 0.9999, "worst_case": "empty"}
# a crowded random encoder: neighbours reorder under any rounding, STS is noise
CROWDED = {
    "pairs_per_lang": 200,
    "top10_overlap": {"en": 0.934, "ru": 0.932},
    "spearman_fp32": {"en": 0.48, "ru": 0.46},
    "spearman_int8": {"en": 0.47, "ru": 0.46},
}


def test_random_weights_record_retrieval_and_sts_without_failing_on_them():
    g = gate_record(GOOD_COS, CROWDED, random_weights=True)
    assert g["passed"] and not g["failures"]
    assert g["judged"] == list(COSINE_CRITERIA) and g["recorded"] == list(TRAINED_ONLY)
    assert g["recorded_reason"] == "random weights" and g["weights"].startswith("random")
    # the figures that miss are kept, in words: en/ru retrieval and the en Spearman delta 0.01 > 0.005
    assert len(g["recorded_misses"]) == 3 and "en top-10" in g["recorded_misses"][0], g["recorded_misses"]
    assert g["figures"] is CROWDED and g["thresholds"] == INT8_GATE


def test_trained_weights_judge_all_four_criteria():
    g = gate_record(GOOD_COS, CROWDED, random_weights=False)
    assert not g["passed"] and g["judged"] == list(INT8_GATE) and g["recorded"] == [] and not g["recorded_misses"]
    assert sum("top-10 retrieval" in f for f in g["failures"]) == 2 and any("Spearman" in f for f in g["failures"])


def test_random_weights_still_fail_on_cosine():
    g = gate_record({**GOOD_COS, "cos_min": 0.99}, CROWDED, random_weights=True)
    assert not g["passed"] and g["failures"] == ["cosine min 0.99000 < 0.995 (worst: empty)"]


def test_gate_line_says_the_verdict_what_was_judged_and_what_only_recorded():
    line = gate_line("int8-openvino", gate_record(GOOD_COS, CROWDED, random_weights=True), GOOD_COS)
    assert "\n" not in line and line.startswith("int8-openvino gate: pass — judged: cosine min 0.99960 (≥ 0.995)")
    assert "recorded, not judged (random weights): top-10 overlap with fp32 en 0.934, ru 0.932 (≥ 0.95)" in line
    assert line.endswith("[3 figure(s) below threshold]")
    trained = gate_line("int8", gate_record(GOOD_COS, CROWDED, random_weights=False), GOOD_COS)
    assert "FAIL (en top-10" in trained and "recorded" not in trained


def test_gate_line_reads_a_record_written_before_the_split_as_all_judged():
    old = {
        "passed": True,
        "thresholds": INT8_GATE,
        "failures": [],
        "figures": {**CROWDED, "top10_overlap": {"en": 0.97}},
    }
    line = gate_line("int8", old, GOOD_COS)
    assert "top-10 overlap with fp32 en 0.970" in line.split("judged:")[1] and "recorded" not in line
