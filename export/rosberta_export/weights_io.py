"""Reading an exported fp32 graph's weights without holding all of them: the graph alone, one weight at a time, or
every weight but those about to be replaced. (torch-free: the runtime's tests build artifacts with it.)"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

__all__ = ["load_graph", "read_initializer"]


def load_graph(path: Path, *, without: Collection[str] = ()):
    """The ONNX model at ``path`` with its weights in memory, except the initializers named in ``without``: those
    keep their reference to the external data file, unread (the caller replaces them). A writer that swaps every
    MatMul weight of the full-size graph for an int8 one then holds ~0.3 GB of fp32 weights instead of 1.4."""
    import onnx
    from onnx import TensorProto
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    skip = set(without)
    for t in model.graph.initializer:
        if t.name not in skip and uses_external_data(t):
            load_external_data_for_tensor(t, str(Path(path).parent))
            t.data_location = TensorProto.DEFAULT
            del t.external_data[:]
    return model


def read_initializer(path: Path, tensor) -> np.ndarray:
    """One initializer's values (``tensor`` from the graph at ``path``), read from the external data file when it
    is there: one weight in memory at a time, not the whole model."""
    from onnx import helper, numpy_helper
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    if not uses_external_data(tensor):
        return numpy_helper.to_array(tensor)
    info = ExternalDataInfo(tensor)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
    shape = tuple(int(d) for d in tensor.dims)
    count = int(np.prod(shape, dtype=np.int64))
    return np.fromfile(
        Path(path).parent / info.location, dtype=dtype, count=count, offset=int(info.offset or 0)
    ).reshape(shape)
