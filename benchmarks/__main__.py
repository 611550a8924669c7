"""``python -m benchmarks DIR [--reference MODEL] [--quick] [--out benchmarks/results/]``.

Also reachable as ``rosberta-onnx bench``; both share :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run", "main"]


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .systems import ON_REQUEST, SYSTEM_NAMES

    p.add_argument("dir", help="an exported rosberta-onnx artifact folder")
    p.add_argument(
        "--reference",
        default=None,
        help="the Hugging Face checkpoint folder DIR was exported from (torch, sentence-transformers and "
        "the plain ONNX export need it); default: the manifest's source.model when it is a local folder",
    )
    p.add_argument("--quick", action="store_true", help="few rounds and a small corpus: a smoke test (tiny stand-in)")
    p.add_argument("--out", default="benchmarks/results", help="results root (default benchmarks/results)")
    p.add_argument("--name", default=None, help="results sub-folder (default: DIR's name + -quick/-full)")
    p.add_argument("--threads", type=int, default=None, help="threads for every system (default: physical cores)")
    p.add_argument("--rounds", type=int, default=None, help="override the rounds of every workload (smoke tests)")
    p.add_argument("--corpus-size", type=int, default=None, help="override the number of corpus texts")
    p.add_argument(
        "--systems",
        type=_csv,
        default=None,
        help=f"comma list from: {','.join(SYSTEM_NAMES)} (default: all of them); "
        f"on request only: {','.join(ON_REQUEST)}",
    )
    p.add_argument(
        "--workloads",
        type=_csv,
        default=None,
        help="comma list of workload names or kinds (latency, throughput, corpus, scaling)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the per-system peak-memory processes")


def run(a: argparse.Namespace) -> int:
    from .bench import run_benchmark
    from .harness.goals import goals_section
    from .harness.report import table
    from .harness.runner import end_like_ctrl_c_on_sigterm

    end_like_ctrl_c_on_sigterm()

    if a.rounds is not None and a.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {a.rounds}")
    if a.threads is not None and a.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {a.threads}")
    res, paths = run_benchmark(
        a.dir,
        reference=a.reference,
        quick=a.quick,
        out=a.out,
        name=a.name,
        threads=a.threads,
        rounds=a.rounds,
        systems=a.systems,
        workloads=a.workloads,
        corpus_size=a.corpus_size,
        memory=not a.no_memory,
    )
    print(table(res))
    goals = goals_section(res)
    if goals:
        print("\n" + goals)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in paths.items()))
    failed = [s["name"] for s in res["systems"] if s["status"] == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (see results.md)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description="rosberta-onnx against its peers, same inputs, one run"
    )
    add_arguments(p)
    a = p.parse_args(argv)
    try:
        return run(a)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
