"""The README's Python example runs as written (on the tiny stand-in instead of the real model)."""

import re
import subprocess
import sys
from pathlib import Path

from rosberta_onnx import Manifest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(runtime_artifact):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "models/ru-en-rosberta" in code
    code = code.replace("models/ru-en-rosberta", str(runtime_artifact))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith(f"(1, {Manifest.read(runtime_artifact).model.dim}) float32")
    assert "[False  True]" in lines[1] or "[False True]" in lines[1]
