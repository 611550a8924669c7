"""A new user's first load: the memory ``Encoder.load`` needs on a machine that has never seen the artifact.

    python -m benchmarks.studies.first_load ARTIFACT
        [--systems rosberta-auto,rosberta-int8,...] [--threads 2] [--out DIR]

``variant="auto"`` measures on its first load (each candidate gated on another instruction set against the reference
set, then a timing of fp32 and the gated candidates) and caches its verdicts next to the artifact; every load after
that opens the chosen variant only. So a memory figure taken on a warm artifact says nothing about the first one,
which is the load an edge device must survive. Each system here runs in a fresh process on a fresh copy of the
artifact (its files hard-linked, or linked where the file system cannot, with no autotune or verdict cache): the
resident set after load, the peak of the load itself, and the peaks after a 1×16 and an 8×128 call (footprint's
memory child). Memory only: speed columns belong to runs that alternate the systems (``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import as_run
from .footprint import _memory, _texts

SYSTEMS = ("rosberta-auto", "rosberta-int8", "rosberta-int8-avx2", "rosberta-int8-openvino-1stream")
_ROOT = Path(__file__).resolve().parents[2]
_CACHES = (".autotune.json", ".verified.json")  # rosberta_onnx.autotune.CACHE_NAME, rosberta_onnx.trust.VERIFIED_NAME


def fresh_copy(artifact: Path, into: Path) -> Path:
    """``artifact``'s files under ``into``, hard-linked (symlinked across file systems), without the runtime's
    per-machine caches: to the runtime, an artifact it has never loaded."""
    dst = into / artifact.name
    for src in artifact.rglob("*"):
        rel = src.relative_to(artifact)
        if src.is_dir() or rel.name in _CACHES:
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst / rel)
        except OSError:
            os.symlink(src.resolve(), dst / rel)
    return dst


def table(res: dict) -> str:
    head = "| system | loads | RSS after load MB | peak of the load MB | peak after 1×16 MB | peak after 8×128 MB |"
    rows = [head, "|---|---|---:|---:|---:|---:|"]
    for name, fig in res["systems"].items():
        if "skipped" in fig or "error" in fig:
            rows.append(f"| {name} | {fig.get('skipped') or fig.get('error')} | – | – | – | – |")
            continue
        rows.append(
            f"| {name} | {fig.get('variant', '–')} | {fig['rss_after_load_mb']:.0f} | {fig['peak_after_load_mb']:.0f} "
            f"| {fig['peak_after_1x16_mb']:.0f} | {fig['peak_after_8x128_mb']:.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.first_load", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", type=Path)
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=_ROOT / "benchmarks" / "results" / "first-load")
    a = p.parse_args(argv)
    if not (a.artifact / "manifest.json").is_file():
        p.error(f"{a.artifact} is not an artifact folder (no manifest.json): pass the output of rosberta-onnx export")
    log = lambda msg: print(f"[first-load] {msg}", file=sys.stderr, flush=True)
    one, eight = _texts(a.artifact)
    systems: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=".first-load-", dir=a.artifact.parent) as tmp:
        texts_file = save(Path(tmp) / "texts.json", [one, eight])
        for name in (n for n in a.systems.split(",") if n):
            copy = fresh_copy(a.artifact, Path(tmp) / name)
            fig = _memory(name, SimpleNamespace(artifact=copy, threads=a.threads), texts_file, log)
            systems[name] = fig
            shutil.rmtree(copy.parent)
    res = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "threads": a.threads,
        "systems": systems,
        "reproduce": "python -m benchmarks.studies.first_load " + as_run(argv),
    }
    save(a.out / "first_load.json", res)
    md = (
        f"First load of `{res['artifact']}` on {res['machine']['description']}, {a.threads} threads: each system in "
        f"a fresh process on a fresh copy of the artifact (no autotune or verdict cache).\n\n"
        + table(res)
        + f"\n\nReproduce: `{res['reproduce']}`\n"
    )
    save(a.out / "first_load.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
