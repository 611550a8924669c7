"""Thread spinning on or off: latency of short queries vs CPU burnt while idle, alternating in one process.

    python -m benchmarks.studies.spinning DIR [--variant int8] [--rounds 40] [--gap-ms 20]

Each round encodes one short query with each session (spinning on / off, same variant and threads),
then sleeps ``--gap-ms`` as a service between requests would. Reported: median latency per call, and
the process CPU time per round divided by wall time, i.e. how many cores the process keeps busy —
spinning threads busy-wait after each run instead of sleeping.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--variant", default="int8")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)

    from rosberta_onnx import Encoder

    encs = {s: Encoder.load(a.dir, variant=a.variant, threads=a.threads, spinning=s) for s in (True, False)}
    query = ["Сколько программистов нужно, чтобы вкрутить лампочку?"]
    for e in encs.values():
        e.encode(query)
    lat = {s: [] for s in encs}
    busy = {s: [] for s in encs}
    for _ in range(a.rounds):
        for s, e in encs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            e.encode(query)
            lat[s].append(time.perf_counter() - w0)
            time.sleep(a.gap_ms / 1e3)
            busy[s].append((time.process_time() - c0) / (time.perf_counter() - w0))
    from ..harness.machine import cpu_facts

    print(
        f"{a.dir} variant {a.variant}, {a.rounds} alternating rounds, {a.gap_ms:g} ms idle gap after each call, "
        f"on {cpu_facts()['description']}"
    )
    print("| spinning | median latency ms | p90 ms | cores busy (CPU time / wall, call + gap) |")
    print("|---|---:|---:|---:|")
    for s in (False, True):
        print(
            f"| {'on' if s else 'off (default)'} | {1e3 * np.median(lat[s]):.1f} | {1e3 * np.percentile(lat[s], 90):.1f} | "
            f"{np.median(busy[s]):.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
