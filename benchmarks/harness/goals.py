"""The int8 speed goals, judged from one benchmark run: a verdict per goal, with the spread over rounds.

The goals are speed-ups over torch fp32 through the public ``Encoder``. A median alone hides how far the rounds
scatter on a shared machine (the same run can differ 2×), so each verdict says whether every round cleared the
goal, only the median did, or not even that. The ratio to the strongest peers is taken the same way as the ratio
to torch: round by round in the same process (systems alternate inside a round), then the median.

The goals are stated per instruction set, because int8 GEMM speed is the CPU's, not ours:

- **AVX-512 VNNI / AVX-VNNI without AMX**: the goal, capped at :data:`CEILING_SHARE` of the shipped kernel's
  GEMM-only ceiling measured on the same CPU (vendor, family, model) by ``python -m benchmarks.studies.ceiling`` — the
  speed-up that kernel would give if every other op were free. Without a ceiling for this CPU, the goal as stated.
- **AMX** (and CPUs without VNNI): recorded, not judged; no goal has been set from a measurement there yet.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from .kernels import CEILING_RESULTS, KERNEL_OF

__all__ = [
    "Goal",
    "GOALS",
    "BASELINE",
    "PEERS",
    "CEILING_SHARE",
    "judge",
    "peer_ratio",
    "goal_for",
    "load_ceiling",
    "goals_section",
]

BASELINE = "torch-fp32"
PEERS = ("torch-bf16", "openvino-int8")  # the strongest peers the goals are compared with
OURS_PREFIX = "rosberta-int8"  # every int8 system of ours: rosberta-int8, rosberta-int8-openvino, …


@dataclass(frozen=True)
class Goal:
    workload: str  # a workload name in results.json
    label: str
    at_least: float  # × torch fp32, same rounds


GOALS = (
    Goal("latency_1x16", "1×16 latency", 4.0),
    Goal("throughput_8x128", "8×128 throughput", 4.0),
    Goal("throughput_32x128", "32×128 throughput", 3.5),
)
# Where the GEMMs cap the speed-up (VNNI without AMX), the goal is this share of the shipped kernel's ceiling: the
# rest of the graph (attention scores, softmax, LayerNorm, GELU, tokenisation) costs 5-20% end to end.
CEILING_SHARE = 0.85
SHAPE_OF = {"latency_1x16": "1x16", "throughput_8x128": "8x128", "throughput_32x128": "32x128"}


def _same_cpu(a: dict | None, b: dict | None) -> bool:
    keys = ("vendor", "family", "model")
    return bool(a and b) and all(a.get(k) == b.get(k) for k in keys) and a.get("family") is not None


def load_ceiling(cpu: dict | None, path: Path | None = None) -> dict | None:
    """``benchmarks.studies.ceiling``'s results if they were measured on this ``cpu`` (vendor, family, model), else None."""
    try:
        data = json.loads((path or CEILING_RESULTS).read_text())
    except (OSError, ValueError):
        return None
    return data if _same_cpu(data.get("cpu"), cpu) else None


def _isa(machine: dict) -> str:
    if "cpu" in machine:
        return machine["cpu"]["isa"]
    flags = machine.get("cpu_flags", {})  # results written before the CPU was recorded as facts
    return next(
        (
            isa
            for isa, f in (("amx", "amx_int8"), ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"))
            if flags.get(f)
        ),
        "other",
    )


def goal_for(goal: Goal, system: str, isa: str, ceiling: dict | None) -> tuple[float | None, str]:
    """(the figure to judge against or None when only recorded, how it was set) for ``system`` on ``isa``."""
    if isa not in ("avx512_vnni", "avx_vnni"):
        return None, f"recorded ({isa}: no goal set from a measurement on this ISA)"
    try:
        cap = ceiling["shapes"][SHAPE_OF[goal.workload]]["systems"][KERNEL_OF[system]]["x_torch_model"]
    except (KeyError, TypeError):
        return goal.at_least, f"≥ {goal.at_least:g}× (no GEMM ceiling measured on this CPU)"
    if CEILING_SHARE * cap < goal.at_least:
        return CEILING_SHARE * cap, f"≥ {CEILING_SHARE * cap:.2f}× ({CEILING_SHARE:.0%} of the {cap:.2f}× GEMM ceiling)"
    return goal.at_least, f"≥ {goal.at_least:g}× (GEMM ceiling {cap:.2f}×)"


def judge(rec: dict, at_least: float) -> str:
    """'met' (every round at or above ``at_least``), 'met by the median' (some rounds below), 'not met'
    (median below; 'best round above' when at least one round cleared it)."""
    med, lo, hi = rec.get("ratio_median"), rec.get("ratio_min"), rec.get("ratio_max")
    if med is None:
        return "no ratio"
    if med >= at_least:
        return "met" if lo is not None and lo >= at_least else "met by the median"
    return "not met (best round above)" if hi is not None and hi >= at_least else "not met"


def peer_ratio(workload: dict, ours: str, peer: str) -> float | None:
    """Median over rounds of peer time / our time: > 1 means ours is faster in that round."""
    systems = workload.get("systems", {})
    a, b = systems.get(ours, {}).get("time_s_rounds"), systems.get(peer, {}).get("time_s_rounds")
    if not a or not b or len(a) != len(b):
        return None
    return statistics.median(p / o for p, o in zip(b, a) if o > 0)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def goals_section(res: dict, level: int = 2, ceiling_path: Path | None = None) -> str:
    """Markdown under a heading of ``level``: one row per (int8 system of ours, goal), the goal set for the run's
    CPU (see the module docstring). Empty when the run has no torch fp32 baseline, none of our int8 systems ran,
    or none of the goal workloads was measured."""
    if res.get("baseline") != BASELINE:
        return ""
    ok = [s["name"] for s in res["systems"] if s["status"] == "ok"]
    ours = [n for n in ok if n.startswith(OURS_PREFIX)]
    goals = [g for g in GOALS if g.workload in res["workloads"]]
    if not ours or not goals:
        return ""
    peers = [p for p in PEERS if p in ok]
    labels = {s["name"]: s["label"] for s in res["systems"]}
    machine = res.get("machine", {})
    isa = _isa(machine)
    ceiling = load_ceiling(machine.get("cpu"), ceiling_path)
    head = [
        "system",
        "goal on this CPU",
        "× torch fp32: median (rounds min–max)",
        "verdict",
        *(f"× {labels[p]}" for p in peers),
    ]
    rows = ["| " + " | ".join(head) + " |", "|---|---|---:|---|" + "---:|" * len(peers)]
    for name in ours:
        for g in goals:
            w = res["workloads"][g.workload]
            rec = w.get("systems", {}).get(name)
            if not rec:
                continue
            spread = f"{_fmt(rec.get('ratio_median'))} ({_fmt(rec.get('ratio_min'))}–{_fmt(rec.get('ratio_max'))})"
            at_least, how = goal_for(g, name, isa, ceiling)
            verdict = judge(rec, at_least) if at_least is not None else "recorded"
            rows.append(
                "| "
                + " | ".join(
                    [labels[name], f"{g.label} {how}", spread, verdict, *(_fmt(peer_ratio(w, name, p)) for p in peers)]
                )
                + " |"
            )
    cpu = machine.get("cpu", {}).get("description") or machine.get("cpu_model", "this CPU")
    return (
        "#" * level + " Speed goals (int8)\n\n"
        f"On {cpu}. Goals are set per instruction set: on VNNI without AMX, the stated goal capped at "
        f"{CEILING_SHARE:.0%} of the shipped kernel's GEMM-only ceiling on the same CPU (`python -m "
        "benchmarks.studies.ceiling`); on AMX, recorded. Each ratio is taken inside a round (systems alternate), then the "
        "median over rounds; the range shows how far single rounds scatter. '× peer' > 1 means ours is faster "
        "than that peer in the same rounds.\n\n" + "\n".join(rows)
    )
