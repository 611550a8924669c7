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

__all__ = ["cosines", "fastembed_vectors", "sentence_transformers_model"]

TEXTS = ["A man is playing a flute.", "Человек играет на флейте.", "слово word " * 400]  # the last is over-long


def fastembed_vectors(art: Path, enc, file: str, texts: list[str], **options) -> np.ndarray:
    """fastembed's vectors for ``texts`` from the folder ``art`` (graph ``file``), registered as a custom model with
    the pooling and normalisation ``enc`` (our Encoder on the same folder) reads from the manifest."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = f"local/{art.parent.name}-{art.name}-{file}"  # one registration per folder and graph
    TextEmbedding.add_custom_model(
        model=name,
        pooling=PoolingType.CLS if enc.facts.pooling == "cls" else PoolingType.MEAN,
        normalization=enc.facts.normalize,
        sources=ModelSource(hf=name),
        dim=enc.dim,
        model_file=file,
    )
    return np.array(list(TextEmbedding(name, specific_model_path=str(art), **options).embed(texts)))


def sentence_transformers_model(art: Path, file: str):
    """sentence-transformers' ONNX backend on the folder ``art`` (graph ``file``)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(art), backend="onnx", model_kwargs={"file_name": file}, device="cpu")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


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
        "fastembed (no prefix: in the text)": (
            "fastembed",
            lambda: fastembed_vectors(a.artifact, enc, file, TEXTS),
            None,
        ),
        "sentence-transformers, backend onnx, prompt_name": (
            "optimum",
            lambda: sentence_transformers_model(a.artifact, file).encode(
                TEXTS, prompt_name=task, normalize_embeddings=False
            ),
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
        cos = cosines(got, ours)
        print(f"| {label} | {' / '.join(f'{c:.6f}' for c in cos)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
