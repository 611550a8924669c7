import json
import shutil

import pytest

from rosberta_onnx import Encoder
from rosberta_onnx.errors import ArtifactError, ArtifactNotFoundError, VariantError
from rosberta_onnx.manifest import Manifest


def test_roundtrip(runtime_artifact):
    m = Manifest.read(runtime_artifact)
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="does not exist"):
        Encoder.load(tmp_path / "nope")
    with pytest.raises(ArtifactNotFoundError, match="manifest.json.*not found"):
        Encoder.load(tmp_path)


def test_future_format_version_is_refused(artifact_copy):
    p = artifact_copy / "manifest.json"
    d = json.loads(p.read_text())
    d["format_version"] = 99
    p.write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match="format_version 99 is not supported"):
        Encoder.load(artifact_copy)


def test_truncated_manifest_is_refused(artifact_copy):
    (artifact_copy / "manifest.json").write_text('{"format_version": 1')
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Encoder.load(artifact_copy)


def test_corrupt_model_file_names_the_file(artifact_copy):
    f = artifact_copy / "model_int8.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model_int8\.onnx.*does not match its checksum"):
        Encoder.load(artifact_copy, variant="int8")


def test_missing_weight_file_names_the_file(artifact_copy):
    (artifact_copy / "model.onnx.data").unlink()
    with pytest.raises(ArtifactNotFoundError, match=r"model\.onnx\.data.*missing"):
        Encoder.load(artifact_copy, variant="fp32")


def test_unknown_and_absent_variants(runtime_artifact, tmp_path):
    with pytest.raises(VariantError, match="unknown variant 'bf16'"):
        Encoder.load(runtime_artifact, variant="bf16")
    dst = tmp_path / "fp32only"
    shutil.copytree(runtime_artifact, dst)
    d = json.loads((dst / "manifest.json").read_text())
    del d["variants"]["int8"]
    (dst / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(VariantError, match="not in this artifact"):
        Encoder.load(dst, variant="int8")


def test_fp16_on_cpu_is_refused_unless_allowed(tiny_artifact):
    with pytest.raises(VariantError, match="GPU variant"):
        Encoder.load(tiny_artifact, variant="fp16", providers=["CPUExecutionProvider"])
    enc = Encoder.load(tiny_artifact, variant="fp16", providers=["CPUExecutionProvider"], allow_cpu_fp16=True)
    assert enc.encode(["x"]).shape == (1, enc.dim)


def test_metadata_props_carry_the_contract(tiny_artifact):
    import onnxruntime as ort

    m = Manifest.read(tiny_artifact)
    for v in m.variants.values():
        s = ort.InferenceSession(str(tiny_artifact / v.file), providers=["CPUExecutionProvider"])
        meta = s.get_modelmeta().custom_metadata_map
        assert meta == m.metadata_props(), v.name
