"""torch -> ONNX: export the encoder graph in fp32 with dynamic batch and sequence axes."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .source import Source

__all__ = ["OPSET", "data_file", "export_fp32", "save_onnx", "stamp"]

OPSET = 17  # has LayerNormalization; what onnxruntime's transformer fusions are tested against


def stamp(model, props: dict[str, str]) -> None:
    """Copy the runtime contract into an ONNX file's metadata_props (replacing any there)."""
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v


def data_file(path: Path) -> Path:
    """Where a graph saved with external weights keeps them: ``<name>.data`` beside it."""
    return path.with_name(path.name + ".data")


def save_onnx(model, path: Path, *, external_data: bool) -> list[Path]:
    """Save an ``onnx.ModelProto``; with ``external_data`` the weights go to ``<name>.data`` beside it."""
    import onnx

    path = Path(path)
    if external_data:
        data = data_file(path)
        if data.exists():
            data.unlink()
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
        written = [path, data]
    else:
        onnx.save_model(model, str(path))
        written = [path]
    for p in written:
        p.chmod(0o644)  # onnx creates the data file 0600; artifacts are meant to be shared read-only
    return written


def export_fp32(source: Source, out: Path, *, weights_apart: bool = True) -> Path:
    """Export ``source`` to ``out``; returns ``out``.

    ``weights_apart`` (default): the graph is traced without its weights, which are then written one tensor at a
    time to one ``<name>.data`` file beside it. torch's TorchScript exporter otherwise serialises the whole model into
    one in-memory protobuf below protobuf's 2 GB limit (ru-en-RoSBERTa: 1.4 GB), beside the model and its
    constant-folded copies: 6.3 GB at full size; this way, with nothing to fold (:func:`_transposed_linears`), 1.9 GB,
    most of it the checkpoint's own pages as transformers maps them. A graph with its weights apart is also what the
    later steps want (the calibration probe adds outputs to it: megabytes, not a copy of the weights).
    ``False`` leaves the file as torch writes it (one file, as a plain export ships; its Linear weights folded).
    """
    import torch
    from transformers import AutoModel

    from .graph import EncoderGraph

    hf = AutoModel.from_pretrained(source.folder, add_pooling_layer=False, attn_implementation="eager").eval()
    graph = EncoderGraph(hf, model_type=source.model_type).eval()
    if weights_apart:
        _transposed_linears(graph)
    pad = int(source.config.get("pad_token_id") or 0)
    # A tracing example with a padded row, so nothing about padding is specialised into the graph.
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, pad, pad]], dtype=torch.int64)
    mask = (ids != pad).to(torch.int64)
    mask[:, 0] = 1
    axes = {"batch": 0, "sequence": 1}
    dyn = {name: {v: k for k, v in axes.items()} for name in ("input_ids", "attention_mask", "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings(), _exporters_weights() as weights:
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            graph,
            (ids, mask),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            export_params=not weights_apart,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes=dyn,
            external_data=True,
        )
    del hf, graph
    # In a fresh process transformers resolves the model class through a lazy import whose caught exception keeps the
    # loading frames, and the model in them, in a reference cycle: until a collection the checkpoint's pages (1.4 GB
    # at full size, mapped from the file) stay resident, into calibration and beyond (seen: 3.3 GB there, not 1.9)
    gc.collect()
    if weights_apart:
        _attach_weights(out, weights)
    return out


def _transposed_linears(model) -> None:
    """Every ``nn.Linear`` in ``model`` computes ``x @ Wt + b`` with ``Wt`` its weight's transposed *view* (no copy),
    registered as a parameter of its own. torch's exporter then finds each MatMul's weight as a parameter, in the
    (in, out) layout ONNX's MatMul takes, and has nothing to fold: from ``x @ W.T`` its constant folding makes a
    transposed copy of every Linear weight (1.2 GB at full size) beside the model's own. Each view is made contiguous
    one at a time as it is written (:func:`_attach_weights`): the same graph and the same numbers in the file."""
    import torch
    from torch import nn

    class TransposedLinear(nn.Linear):
        # a subclass, not a bound method stored on each module: that would be a reference cycle, and the model (its
        # checkpoint pages) would stay resident after the export until the cyclic collector happened to run
        def forward(self, x):
            y = torch.matmul(x, self.weight_t)
            return y + self.bias if self.bias is not None else y

    for lin in [m for m in model.modules() if type(m) is nn.Linear]:
        lin.weight_t = nn.Parameter(lin.weight.detach().t(), requires_grad=False)
        lin.__class__ = TransposedLinear


@contextmanager
def _exporters_weights() -> Iterator[dict]:
    """The weights torch's TorchScript exporter puts into the graph (the model's, and the constants it folds, such
    as transposed Linear weights), by name, as it hands them to its serialiser: with ``export_params=False`` it
    writes the graph alone and these become ours to write. torch is pinned; a torch whose exporter no longer
    passes through this step fails loudly in :func:`_attach_weights`, never silently."""
    import torch._C as C

    seen: dict = {}
    real = C._jit_pass_onnx_deduplicate_initializers

    def keep(graph, params, training):
        kept = real(graph, params, training)
        seen.clear()
        seen.update(kept)
        return kept

    C._jit_pass_onnx_deduplicate_initializers = keep
    try:
        yield seen
    finally:
        C._jit_pass_onnx_deduplicate_initializers = real


_ALIGN = 4096  # each large weight starts on a page of the data file, so a memory map of it is aligned


def _attach_weights(path: Path, weights: dict) -> None:
    """Turn the weight inputs of the graph at ``path`` (traced without its weights) into initializers, written one
    at a time to ``<name>.data`` (tensors under 1 KB stay inside the graph, as :func:`save_onnx` keeps them)."""
    import onnx
    import torch
    from onnx import TensorProto

    model = onnx.load(str(path))
    missing = [i.name for i in model.graph.input if i.name not in ("input_ids", "attention_mask", *weights)]
    if missing or not weights:
        raise RuntimeError(
            f"torch's ONNX exporter left graph inputs without their weights ({missing[:3]}...): this torch's "
            f"exporter differs from the pinned one (torch==2.13.0); install the pinned torch"
        )
    types = _onnx_types()
    data = data_file(path)
    inits = []
    offset = 0
    with open(data, "wb") as f:
        for inp in [i for i in model.graph.input if i.name in weights]:
            t = weights[inp.name].detach().contiguous()
            raw = t.view(torch.uint8).numpy() if t.dim() else t.reshape(1).view(torch.uint8).numpy()
            proto = TensorProto(name=inp.name, dims=list(t.shape), data_type=types[t.dtype])
            if raw.nbytes < 1024:
                proto.raw_data = raw.tobytes()
            else:
                offset += -offset % _ALIGN
                f.seek(offset)
                f.write(memoryview(raw))
                proto.data_location = TensorProto.EXTERNAL
                for k, v in (("location", data.name), ("offset", str(offset)), ("length", str(raw.nbytes))):
                    entry = proto.external_data.add()
                    entry.key, entry.value = k, v
                offset += raw.nbytes
            inits.append(proto)
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(inits)
    onnx.save_model(model, str(path))
    for p in (path, data):
        p.chmod(0o644)


def _onnx_types() -> dict:
    import torch
    from onnx import TensorProto

    return {
        torch.float32: TensorProto.FLOAT,
        torch.float16: TensorProto.FLOAT16,
        torch.bfloat16: TensorProto.BFLOAT16,
        torch.float64: TensorProto.DOUBLE,
        torch.int64: TensorProto.INT64,
        torch.int32: TensorProto.INT32,
        torch.int8: TensorProto.INT8,
        torch.uint8: TensorProto.UINT8,
        torch.bool: TensorProto.BOOL,
    }
