"""``rosberta-onnx verify``: every variant re-measured on this CPU against the reference set the artifact ships; a
variant whose weights were altered or whose file was tampered with fails, with the reason, and the exit status says so."""

import json

import numpy as np
import pytest

from rosberta_onnx import ArtifactError, verify
from rosberta_onnx.cli import main
from rosberta_onnx.hardware import cpu_info
from rosberta_onnx.manifest import Manifest, sha256_file


def _rewrite_manifest(folder, change):
    d = json.loads((folder / "manifest.json").read_text())
    change(d)
    (folder / "manifest.json").write_text(json.dumps(d))


def test_a_good_artifact_passes_here_and_names_the_cpu(runtime_artifact, capsys):
    report = verify(runtime_artifact, remember_verdicts=False)
    assert report.passed and report.isa == cpu_info().isa
    assert {c.variant for c in report.checks} == {"fp32", "int8", "int8-avx2", "int4"}
    fp32 = next(c for c in report.checks if c.variant == "fp32")
    assert fp32.cosines["cos_min"] > 0.99999 and fp32.judged == ("cos_min", "max_abs")
    assert main(["verify", str(runtime_artifact)]) == 0
    out = capsys.readouterr().out
    assert f"ISA: {cpu_info().isa}" in out and "verdict: pass" in out and "| int8-avx2 |" in out


def test_the_export_figures_are_reproduced_on_the_same_cpu(runtime_artifact):
    # the reference set is the fp32 graph's own vectors here: fp32 reproduces them exactly, and the unsigned twin
    # gives int8's vectors (both exact on this CPU, or both not)
    report = verify(runtime_artifact, variants=["fp32", "int8", "int8-avx2"], remember_verdicts=False)
    by = {c.variant: c for c in report.checks}
    assert by["fp32"].cosines["max_abs"] < 1e-5
    if cpu_info().isa not in ("avx2", "avx512", "x86"):
        assert by["int8"].cosines == by["int8-avx2"].cosines


def test_altered_weights_fail_even_with_their_checksums_updated(artifact_copy, capsys, tmp_path):
    import onnx
    from onnx import numpy_helper

    path = artifact_copy / "model_int8.onnx"
    model = onnx.load(str(path))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:  # every per-column weight scale off by up to 60%: a mis-quantised file
        if init.name.endswith("_scol"):
            scale = numpy_helper.to_array(init)
            init.CopyFrom(
                numpy_helper.from_array((scale * rng.uniform(0.4, 1.6, scale.shape)).astype(np.float32), init.name)
            )
    onnx.save(model, str(path))
    _rewrite_manifest(artifact_copy, lambda d: d["variants"]["int8"]["files"].update({path.name: sha256_file(path)}))
    report = verify(artifact_copy, variants=["int8"], remember_verdicts=False)
    (check,) = report.checks
    assert not report.passed and not check.passed and check.cosines["cos_min"] < 0.995
    assert any(f.startswith("cosine min") for f in check.failures)
    out = tmp_path / "verify.json"
    assert main(["verify", str(artifact_copy), "--variant", "int8", "--json", str(out)]) == 1
    assert "FAIL: cosine min" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["passed"] is False and written["checks"][0]["failures"] and written["isa"] == cpu_info().isa


def test_a_tampered_file_is_a_failed_check_naming_the_checksum(artifact_copy, capsys):
    with open(artifact_copy / "model_int4.onnx", "r+b") as f:
        f.seek(-64, 2)
        f.write(b"\0" * 8)
    report = verify(artifact_copy, remember_verdicts=False)
    failed = [c for c in report.checks if not c.passed]
    assert [c.variant for c in failed] == ["int4"] and "does not match its checksum" in failed[0].error
    assert main(["verify", str(artifact_copy)]) == 1
    assert "| int4 |" in capsys.readouterr().out


def test_an_export_without_a_reference_set_says_to_re_export(artifact_copy, capsys):
    _rewrite_manifest(artifact_copy, lambda d: d.pop("reference"))
    with pytest.raises(ArtifactError, match="ships no reference set.*Re-export"):
        verify(artifact_copy)
    assert main(["verify", str(artifact_copy)]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_changed_reference_file_is_refused(artifact_copy):
    vecs = np.load(artifact_copy / "reference.npy")
    np.save(artifact_copy / "reference.npy", vecs * 0.5)
    with pytest.raises(ArtifactError, match="reference.npy.*does not match its checksum"):
        verify(artifact_copy)


def test_sts_figures_are_recorded_beside_the_verdict_not_judged(runtime_artifact):
    report = verify(runtime_artifact, variants=["int8"], sts_pairs=8, remember_verdicts=False)
    (check,) = report.checks
    assert set(check.sts["top10_overlap"]) == {"en", "ru"} and check.sts["pairs_per_lang"] == 8
    assert set(check.judged) <= {"cos_min", "cos_mean", "max_abs"}
    with pytest.raises(ValueError, match="ships 32 STS pairs"):
        verify(runtime_artifact, sts_pairs=33)


def test_unknown_and_absent_variants_are_errors_naming_the_choices(runtime_artifact):
    with pytest.raises(ValueError, match="unknown variant 'int9'"):
        verify(runtime_artifact, variants=["int9"])
    with pytest.raises(ValueError, match="not in this artifact"):
        verify(runtime_artifact, variants=["int8-openvino"])
    assert Manifest.read(runtime_artifact).reference["cases"] > 16
