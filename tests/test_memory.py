"""100 000 short texts in one call: memory stays bounded (tokenisation is chunked, output preallocated)."""

import json
import subprocess
import sys
import textwrap


def test_100k_texts_peak_rss(tiny_artifact):
    code = textwrap.dedent(f"""
        import json

        def hwm_mb():  # this process's own peak RSS (ru_maxrss can report the forking parent's peak)
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

        from rosberta_onnx import Encoder
        enc = Encoder.load({str(tiny_artifact)!r}, variant="fp32")
        enc.encode(["warm-up"])
        base = hwm_mb()
        texts = [f"короткий текст номер {{i}}, short text number {{i}}" for i in range(100_000)]
        v = enc.encode(texts, batch_size=256)
        peak = hwm_mb()
        print(json.dumps({{"shape": list(v.shape), "after_load_mb": base, "peak_mb": peak,
                           "finite": bool(abs(v).sum() > 0)}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(out)
    assert out["shape"] == [100_000, 64] and out["finite"]
    # Output is 100k x 64 float32 = 25.6 MB and the texts ~10 MB; the rest must not grow with n:
    # tokenising all 100k texts at once would hold ~1 GB of Encoding objects.
    assert out["peak_mb"] - out["after_load_mb"] < 400, out
