"""Embed a large corpus on a Ray cluster with rosberta-onnx (the ``distributed`` extra).

Two entry points:

* :func:`embed_corpus` (``rosberta-onnx embed-corpus``): Parquet/JSONL shards in, Parquet
  embedding shards out, restartable shard by shard, bad rows in ``_errors.jsonl``.
* :class:`RayEmbedder`: a callable class for ``ray.data.Dataset.map_batches`` when you already
  hold a dataset.

Importing this package does not import Ray; running a job does.
"""

from .embedder import RayEmbedder
from .job import JobSummary, Progress, embed_corpus

__all__ = ["RayEmbedder", "embed_corpus", "JobSummary", "Progress"]
