"""Other tools opening an artifact: each one's vectors against this project's runtime, over-long text included.

    python -m benchmarks.studies.interop ARTIFACT [--variant fp32]

Runs whichever of fastembed and sentence-transformers' ONNX backend is installed in this environment (the latter
needs ``optimum-onnx``, which pins an older transformers than the exporter's: use a separate environment with
``pip install rosberta-onnx sentence-transformers 'optimum-onnx[onnxruntime]'``). Prints, per tool, the cosine of
each text's vector with ours; the artifact needs its interop files (``rosberta-onnx interop ARTIFACT``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

TEXTS = ["A man is playing a flute.", "Человек играет на флейте.", "слово word " * 400]  # the last is over-long


def _fastembed(art: Path, enc, file: str) -> np.ndarray:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = f"local/{art.name}-{file}"
    TextEmbedding.add_custom_model(
        model=name,
        pooling=PoolingType.CLS if enc.facts.pooling == "cls" else PoolingType.MEAN,
        normalization=enc.facts.normalize,
        sources=ModelSource(hf=name),
        dim=enc.dim,
        model_file=file,
    )
    return np.array(list(TextEmbedding(name, specific_model_path=str(art)).embed(TEXTS)))


def _sentence_transformers(art: Path, enc, file: str, task: str | None) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(art), backend="onnx", model_kwargs={"file_name": file}, device="cpu")
    return st.encode(TEXTS, prompt_name=task, normalize_embeddings=False)


def main(argv: list[str] | None = None) -> int:
    from rosberta_onnx import Encoder

    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.interop")
    p.add_argument("artifact", type=Path)
    p.add_argument("--variant", default="fp32", choices=["fp32", "int8"])
    a = p.parse_args(argv)
    enc = Encoder.load(a.artifact, variant=a.variant)
    file = enc.manifest.variant(a.variant).file
    task = "search_query" if "search_query" in enc.tasks else None
    tools = {
        "fastembed (no prefix: in the text)": ("fastembed", lambda: _fastembed(a.artifact, enc, file), None),
        "sentence-transformers, backend onnx, prompt_name": (
            "optimum",
            lambda: _sentence_transformers(a.artifact, enc, file, task),
            task,
        ),
    }
    print(f"{a.artifact} ({a.variant}): cosine with rosberta-onnx per text (short EN, short RU, over-long)\n")
    print("| tool | cosines |\n|---|---|")
    for label, (module, run, prefix_task) in tools.items():
        if importlib.util.find_spec(module) is None:
            print(f"| {label} | not installed here |")
            continue
        ours = enc.encode(TEXTS, task=prefix_task)
        got = run()
        cos = (got * ours).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ours, axis=1)
        print(f"| {label} | {' / '.join(f'{c:.6f}' for c in cos)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
