"""Results out: ``results.json`` (everything), ``results.md`` (the table), and three PNG charts."""

from __future__ import annotations

from pathlib import Path

from .goals import goals_section
from .machine import describe
from .results import save

__all__ = ["write_all", "markdown", "table", "cell", "charts"]

# One colour per system across all charts: greys the reference, blues/purples/green the peers, warm ours.
COLOURS = {
    "torch-fp32": "#7f7f7f",
    "torch-bf16": "#b0b0b0",
    "st-torch": "#1f77b4",
    "st-onnx": "#9ecae9",
    "openvino-fp32": "#6a3d9a",
    "openvino-bf16": "#b294c7",
    "openvino-int8": "#3f007d",
    "ort-plain": "#2ca02c",
    "rosberta-fp32": "#ff7f0e",
    "rosberta-int8": "#d62728",
    "rosberta-int8-openvino": "#e377c2",
    "rosberta-int8-openvino-1stream": "#f7b6d2",
    "rosberta-int4": "#bcbd22",
    "rosberta-fp16": "#8c564b",
}
THROUGHPUT = ("throughput_8x128", "throughput_32x128", "throughput_1x512")


def _ratio(rec: dict | None) -> str:
    r = (rec or {}).get("ratio_median")
    return "" if r is None else f" ({r:.2f}×)"


def cell(res: dict, workload: str, name: str, key: str, fmt: str, ratio: bool = True) -> str:
    rec = res["workloads"].get(workload, {}).get("systems", {}).get(name)
    if not rec or rec.get(key) is None:
        return "–"
    return format(rec[key], fmt) + (_ratio(rec) if ratio else "")


def table(res: dict) -> str:
    """The Markdown results table: one row per system, speeds with their same-run ratio to the baseline."""
    head = (
        "| system | load s | 1×16 p50 ms | p95 ms | p99 ms | 8×128 seq/s | 32×128 seq/s | 1×512 seq/s | "
        "corpus texts/s | corpus tokens/s | peak RSS MB | cosine min / mean |"
    )
    rows = [head, "|---|" + "---:|" * 11]
    for s in res["systems"]:
        name = s["name"]
        if s["status"] != "ok":
            rows.append(f"| {s['label']} | {s['status']} | " + " | ".join(["–"] * 10) + " |")
            continue
        mem = s.get("memory") or {}
        q = s.get("quality") or {}
        load = f"{s['load_s']:.2f}" if s.get("load_s") is not None else "–"
        rows.append(
            "| "
            + " | ".join(
                [
                    s["label"] + (" **(baseline)**" if name == res["baseline"] else ""),
                    load,
                    cell(res, "latency_1x16", name, "p50_ms", ".1f"),
                    cell(res, "latency_1x16", name, "p95_ms", ".1f", False),
                    cell(res, "latency_1x16", name, "p99_ms", ".1f", False),
                    *(cell(res, w, name, "seq_per_s", ".2f") for w in THROUGHPUT),
                    cell(res, "corpus", name, "texts_per_s", ".1f"),
                    cell(res, "corpus", name, "tokens_per_s", ".0f", False),
                    f"{mem['peak_rss_mb']:.0f}" if "peak_rss_mb" in mem else "–",
                    f"{q['cos_min']:.6f} / {q['cos_mean']:.6f}" if q else "–",
                ]
            )
            + " |"
        )
    return "\n".join(rows)


def _scaling_table(res: dict) -> str:
    lengths = [w["tokens"] for k, w in res["workloads"].items() if k.startswith("scaling_")]
    if not lengths:
        return ""
    rows = ["| system | " + " | ".join(f"1×{n}" for n in lengths) + " |", "|---|" + "---:|" * len(lengths)]
    for s in res["systems"]:
        if s["status"] == "ok":
            rows.append(
                f"| {s['label']} | "
                + " | ".join(cell(res, f"scaling_{n}", s["name"], "ms_per_seq", ".1f") for n in lengths)
                + " |"
            )
    return "ms per sequence (batch 1) by sequence length, with the ratio to the baseline:\n\n" + "\n".join(rows)


def markdown(res: dict) -> str:
    m, st = res["machine"], res["settings"]
    model = res["model"]
    lines = [
        f"# rosberta-onnx benchmark ({res['mode']})",
        "",
        f"- machine: {describe(m)}",
        f"- model: {model['description']}",
        f"- threads: {st['threads']} for every system; rounds alternate the systems (A B C A B C …); "
        f"each figure is the median over rounds after warm-up; ratios (×) are speed-ups over "
        f"**{res['baseline']}** taken round by round in the same process, then the median",
        f"- latency: {st['latency_samples']} timed calls per system; corpus: {st['corpus_size']} RU/EN STS sentences, "
        f"each system batching its own way; tokens/s counts content tokens (no padding)",
        f"- quality: cosine of each system's corpus embeddings against {res['baseline']}; peak RSS: a separate "
        f"process per system loading the model and encoding {st.get('memory_workload', '8×128 and 1×512')}",
        "- load time: one in-process load per system, library imports excluded, file cache warm",
        "",
    ]
    if res["baseline"] != "torch-fp32":
        lines += [
            f"> **No PyTorch reference in this run** ({model.get('reference_origin')}): ratios and cosines are "
            f"against {res['baseline']} instead.",
            "",
        ]
    if model.get("stand_in"):
        lines += [
            "> **Stand-in model with random weights**: speed and memory are those of the real shape; the "
            "cosines only show that each system computes the same function — int8's quality loss on real "
            "weights is larger.",
            "",
        ]
    lines += [table(res), ""]
    for section in (goals_section(res), _scaling_table(res)):
        if section:
            lines += [section, ""]
    lines += ["## Systems", ""]
    for s in res["systems"]:
        extra = f" — {s['reason']}" if s["status"] != "ok" else ""
        lines.append(f"- **{s['label']}** (`{s['name']}`, {s['status']}){extra}")
        if s["status"] == "ok":
            cfg = ", ".join(f"{k}={v}" for k, v in s.get("config", {}).items())
            lines.append(f"  - config: {cfg}; corpus batching: {s.get('corpus_batching') or '–'}")
            for note in s.get("notes", []):
                lines.append(f"  - {note}")
    v = m["versions"]
    lines += ["", "Library versions: " + ", ".join(f"{k} {x}" for k, x in v.items() if x != "not installed"), ""]
    return "\n".join(lines)


def charts(res: dict, folder: Path) -> list[Path]:
    """throughput.png, latency.png, seq_scaling.png; empty list if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    ok = [s for s in res["systems"] if s["status"] == "ok"]
    colour = {s["name"]: COLOURS.get(s["name"], "#333333") for s in ok}
    title = f"{res['model']['short']} · {res['settings']['threads']} threads · {res['machine']['cpu_model']}"
    out = []

    panels = [(w, "seq/s", "seq_per_s") for w in THROUGHPUT] + [("corpus", "texts/s", "texts_per_s")]
    panels = [p for p in panels if p[0] in res["workloads"]]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(ok) + 1.8), sharey=True)
        axes = axes if len(panels) > 1 else [axes]
        for ax, (w, unit, key) in zip(axes, panels):
            recs = res["workloads"][w]["systems"]
            names = [s["name"] for s in ok if s["name"] in recs]
            vals = [recs[n][key] for n in names]
            ax.barh(range(len(names)), vals, color=[colour[n] for n in names])
            for i, n in enumerate(names):
                r = recs[n].get("ratio_median")
                ax.text(vals[i], i, f" {r:.2f}×" if r else "", va="center", fontsize=8)
            ax.set_yticks(range(len(names)), names)
            ax.set_title(f"{res['workloads'][w]['label']} ({unit})", fontsize=9)
            ax.margins(x=0.25)
        axes[0].invert_yaxis()  # once: the panels share the y axis, so each call would flip it back
        fig.suptitle("Throughput (higher is better; × = speed-up over " + res["baseline"] + ")\n" + title, fontsize=9)
        fig.tight_layout()
        out.append(_save(fig, folder / "throughput.png", plt))

    lat = res["workloads"].get("latency_1x16", {}).get("systems", {})
    if lat:
        names = [s["name"] for s in ok if s["name"] in lat]
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.6))
        p50 = [lat[n]["p50_ms"] for n in names]
        err = [[0] * len(names), [lat[n]["p95_ms"] - lat[n]["p50_ms"] for n in names]]
        ax.barh(range(len(names)), p50, xerr=err, color=[colour[n] for n in names], capsize=3)
        ax.scatter([lat[n]["p99_ms"] for n in names], range(len(names)), marker="|", color="k", s=80, label="p99")
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("ms per query (bar p50, whisker p95, tick p99; lower is better)")
        ax.set_title("One short query, 1×16 tokens\n" + title, fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        out.append(_save(fig, folder / "latency.png", plt))

    lengths = sorted(w["tokens"] for k, w in res["workloads"].items() if k.startswith("scaling_"))
    if lengths:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for s in ok:
            pts = [
                (n, res["workloads"][f"scaling_{n}"]["systems"].get(s["name"], {}).get("ms_per_seq")) for n in lengths
            ]
            pts = [(n, v) for n, v in pts if v is not None]
            if pts:
                ax.plot(
                    *zip(*pts),
                    marker="o",
                    label=s["name"],
                    color=colour[s["name"]],
                    linestyle={"reference": "--", "peer": ":", "ours": "-"}.get(s["group"], "-"),
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.set_xlabel("sequence length (tokens, batch 1)")
        ax.set_ylabel("ms per sequence (lower is better)")
        ax.set_title("Cost vs sequence length\n" + title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        out.append(_save(fig, folder / "seq_scaling.png", plt))
    return out


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(res: dict, folder: Path) -> dict[str, Path]:
    """Write results.json, results.md and the charts into ``folder``; returns what was written."""
    paths = {"json": save(folder / "results.json", res), "markdown": save(folder / "results.md", markdown(res))}
    for p in charts(res, folder):
        paths[p.stem] = p
    return paths
