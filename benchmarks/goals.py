"""The int8 speed goals, judged from one benchmark run: a verdict per goal, with the spread over rounds.

The goals are speed-ups over torch fp32 through the public ``Encoder`` (issue 4). A median alone hides how
far the rounds scatter on a shared machine (the same run can differ 2×), so each verdict says whether every
round cleared the goal, only the median did, or not even that. The ratio to the strongest peers is taken the
same way as the ratio to torch: round by round in the same process (systems alternate inside a round), then
the median.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

__all__ = ["Goal", "GOALS", "BASELINE", "PEERS", "judge", "peer_ratio", "goals_section"]

BASELINE = "torch-fp32"
PEERS = ("torch-bf16", "openvino-int8")  # the strongest peers the goals are compared with
OURS_PREFIX = "rosberta-int8"  # every int8 system of ours: rosberta-int8, rosberta-int8-openvino, …


@dataclass(frozen=True)
class Goal:
    workload: str  # a workload name in results.json
    label: str
    at_least: float  # × torch fp32, same rounds


GOALS = (Goal("latency_1x16", "1×16 latency", 4.0),
         Goal("throughput_8x128", "8×128 throughput", 4.0),
         Goal("throughput_32x128", "32×128 throughput", 3.5))


def judge(rec: dict, goal: Goal) -> str:
    """'met' (every round at or above the goal), 'met by the median' (some rounds below), 'not met'
    (median below; 'best round above' when at least one round cleared it)."""
    med, lo, hi = rec.get("ratio_median"), rec.get("ratio_min"), rec.get("ratio_max")
    if med is None:
        return "no ratio"
    if med >= goal.at_least:
        return "met" if lo is not None and lo >= goal.at_least else "met by the median"
    return "not met (best round above)" if hi is not None and hi >= goal.at_least else "not met"


def peer_ratio(workload: dict, ours: str, peer: str) -> float | None:
    """Median over rounds of peer time / our time: > 1 means ours is faster in that round."""
    systems = workload.get("systems", {})
    a, b = systems.get(ours, {}).get("time_s_rounds"), systems.get(peer, {}).get("time_s_rounds")
    if not a or not b or len(a) != len(b):
        return None
    return statistics.median(p / o for p, o in zip(b, a) if o > 0)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def goals_section(res: dict, level: int = 2) -> str:
    """Markdown under a heading of ``level``: one row per (int8 system of ours, goal). Empty when the run has no
    torch fp32 baseline, none of our int8 systems ran, or none of the goal workloads was measured."""
    if res.get("baseline") != BASELINE:
        return ""
    ok = [s["name"] for s in res["systems"] if s["status"] == "ok"]
    ours = [n for n in ok if n.startswith(OURS_PREFIX)]
    goals = [g for g in GOALS if g.workload in res["workloads"]]
    if not ours or not goals:
        return ""
    peers = [p for p in PEERS if p in ok]
    labels = {s["name"]: s["label"] for s in res["systems"]}
    head = ["system", "goal", "× torch fp32: median (rounds min–max)", "verdict",
            *(f"× {labels[p]}" for p in peers)]
    rows = ["| " + " | ".join(head) + " |", "|---|---|---:|---|" + "---:|" * len(peers)]
    for name in ours:
        for g in goals:
            w = res["workloads"][g.workload]
            rec = w.get("systems", {}).get(name)
            if not rec:
                continue
            spread = f"{_fmt(rec.get('ratio_median'))} ({_fmt(rec.get('ratio_min'))}–{_fmt(rec.get('ratio_max'))})"
            rows.append("| " + " | ".join([labels[name], f"{g.label} ≥ {g.at_least:g}×", spread, judge(rec, g),
                                           *(_fmt(peer_ratio(w, name, p)) for p in peers)]) + " |")
    return ("#" * level + " Speed goals (int8, issue 4)\n\n"
            "Each ratio is taken inside a round (systems alternate), then the median over rounds; the range shows "
            "how far single rounds scatter. '× peer' > 1 means ours is faster than that peer in the same rounds.\n\n"
            + "\n".join(rows))
