"""torch -> ONNX: export the encoder graph in fp32 with dynamic batch and sequence axes."""

from __future__ import annotations

import warnings
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

    ``weights_apart``: the weights go to one ``<name>.data`` file beside the graph, so a step that needs only the
    graph (the calibration probe adds outputs to it) reads and writes megabytes, not a copy of the weights. torch's
    TorchScript exporter keeps them inside the .onnx below protobuf's 2 GB limit (ru-en-RoSBERTa: 1.4 GB), so they
    are moved out after it; ``False`` leaves the file as torch wrote it (one file, as a plain export ships).
    """
    import torch
    from transformers import AutoModel

    from .graph import EncoderGraph

    hf = AutoModel.from_pretrained(source.folder, add_pooling_layer=False, attn_implementation="eager").eval()
    graph = EncoderGraph(hf, model_type=source.model_type).eval()
    pad = int(source.config.get("pad_token_id") or 0)
    # A tracing example with a padded row, so nothing about padding is specialised into the graph.
    ids = torch.tensor([[0, 5, 6, 7, 2], [0, 8, 2, pad, pad]], dtype=torch.int64)
    mask = (ids != pad).to(torch.int64)
    mask[:, 0] = 1
    axes = {"batch": 0, "sequence": 1}
    dyn = {name: {v: k for k, v in axes.items()} for name in ("input_ids", "attention_mask", "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            graph,
            (ids, mask),
            str(out),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes=dyn,
            external_data=True,
        )
    if weights_apart and not data_file(out).exists():
        import onnx

        save_onnx(onnx.load(str(out)), out, external_data=True)
    return out
