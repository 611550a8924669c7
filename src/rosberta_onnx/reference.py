"""The reference set an artifact ships, so that any CPU can re-measure a variant against PyTorch: texts, their fp32
PyTorch vectors, and a sample of STS pairs. The exporter writes it (:func:`write_reference`) from the parity run it
already makes; ``verify`` reads it (:func:`read_reference`). Two files, listed in the manifest with their sha256::

    reference.json   {"format": 1, "cases": [{"name", "text"}...], "sts": {"en": [[s1, s2, score]...], "ru": ...},
                      "vectors": {"file": "reference.npy", "dtype": "float32", "shape": [n, dim]}, "made_by": ...}
    reference.npy    float32 (n, dim): the reference's pooled, L2-normalised vector of each case, in order

The cases are the export's parity texts (real RU/EN sentences of mixed length, the edge cases, a text of exactly the
maximum length), embedded as given (no task prefix: the prefix cases carry their own); the STS pairs are the first
pairs of the gate's dev split, for the retrieval and STS criteria, which are measured against this CPU's fp32.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, write_json_atomic
from .errors import ArtifactError
from .manifest import Manifest, sha256_file
from .quality import Pair

__all__ = ["REFERENCE_JSON", "REFERENCE_VECTORS", "ReferenceSet", "write_reference", "read_reference"]

REFERENCE_JSON = "reference.json"
REFERENCE_VECTORS = "reference.npy"
FORMAT = 1


@dataclass(frozen=True)
class ReferenceSet:
    names: tuple[str, ...]
    texts: tuple[str, ...]
    vectors: np.ndarray  # float32 (n, dim)
    sts: Mapping[str, tuple[Pair, ...]]  # language -> pairs
    made_by: str

    def sts_sample(self, pairs_per_lang: int) -> dict[str, tuple[Pair, ...]]:
        return {lang: pairs[:pairs_per_lang] for lang, pairs in self.sts.items()}


def write_reference(
    folder: Path,
    names: Sequence[str],
    texts: Sequence[str],
    vectors: np.ndarray,
    sts: Mapping[str, Sequence[Pair]],
    *,
    made_by: str,
) -> dict[str, Any]:
    """Write the two files into ``folder``; returns the manifest's ``reference`` entry."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or len(names) != len(texts):
        raise ValueError(f"reference: {len(names)} names, {len(texts)} texts and vectors {vectors.shape} disagree")
    with atomic_path(folder / REFERENCE_VECTORS) as tmp, open(tmp, "wb") as f:
        np.save(f, vectors, allow_pickle=False)
    data = {
        "format": FORMAT,
        "cases": [{"name": n, "text": t} for n, t in zip(names, texts)],
        "sts": {lang: [[a, b, float(s)] for a, b, s in pairs] for lang, pairs in sts.items()},
        "vectors": {"file": REFERENCE_VECTORS, "dtype": "float32", "shape": list(vectors.shape)},
        "made_by": made_by,
    }
    write_json_atomic(folder / REFERENCE_JSON, data)
    return {
        "file": REFERENCE_JSON,
        "files": {name: sha256_file(folder / name) for name in (REFERENCE_JSON, REFERENCE_VECTORS)},
        "cases": len(texts),
        "sts_pairs_per_lang": min((len(p) for p in sts.values()), default=0),
    }


def read_reference(folder: str | Path, manifest: Manifest) -> ReferenceSet:
    """The artifact's reference set, its files checked against the manifest; an error naming the fix otherwise."""
    folder = Path(folder)
    entry = manifest.reference
    if not entry:
        raise ArtifactError(
            f"{str(folder)!r} ships no reference set (it was exported by an older rosberta-onnx), so its variants "
            f"cannot be re-measured on this CPU. Re-export it: rosberta-onnx export MODEL -o {folder} --overwrite"
        )
    manifest.verify_files(folder, entry["files"])
    try:
        data = json.loads((folder / entry["file"]).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this rosberta-onnx reads {FORMAT}")
        vectors = np.load(folder / data["vectors"]["file"], allow_pickle=False)
        cases = data["cases"]
        if vectors.shape != (len(cases), manifest.model.dim):
            raise ValueError(f"vectors {vectors.shape} for {len(cases)} cases of dimension {manifest.model.dim}")
        sts = {lang: tuple((a, b, float(s)) for a, b, s in pairs) for lang, pairs in data["sts"].items()}
        return ReferenceSet(
            names=tuple(c["name"] for c in cases),
            texts=tuple(c["text"] for c in cases),
            vectors=vectors.astype(np.float32),
            sts=sts,
            made_by=str(data.get("made_by", "")),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"the reference set in {str(folder)!r} cannot be read ({exc}); re-export the folder: "
            f"rosberta-onnx export MODEL -o {folder} --overwrite"
        ) from exc
