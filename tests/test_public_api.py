"""The public surface is small and pinned, and the runtime never imports torch or transformers."""

import subprocess
import sys
import textwrap

import rosberta_onnx


def test_all_is_pinned():
    assert sorted(rosberta_onnx.__all__) == sorted(
        [
            "Encoder",
            "Chunks",
            "ChunkPlan",
            "mean_of_chunks",
            "Encoded",
            "Selection",
            "select_variant",
            "prepare_texts",
            "l2_normalize",
            "verify",
            "VerifyReport",
            "Manifest",
            "ModelFacts",
            "VARIANTS",
            "RosbertaError",
            "ArtifactError",
            "ArtifactNotFoundError",
            "VariantError",
            "TaskError",
            "InputTypeError",
            "InputTooLongError",
            "InputFormatError",
            "MissingDependencyError",
            "PromptWarning",
            "HardwareWarning",
            "require",
            "atomic_file",
            "atomic_path",
            "write_json_atomic",
            "__version__",
        ]
    )
    for name in rosberta_onnx.__all__:
        assert hasattr(rosberta_onnx, name)


def test_errors_subclass_builtins():
    from rosberta_onnx import errors

    assert issubclass(errors.TaskError, ValueError)
    assert issubclass(errors.InputTypeError, TypeError)
    assert issubclass(errors.ArtifactNotFoundError, FileNotFoundError)
    assert issubclass(errors.ArtifactError, errors.RosbertaError)


def test_runtime_does_not_import_torch(runtime_artifact):
    code = textwrap.dedent(f"""
        import sys
        from rosberta_onnx import Encoder
        import rosberta_onnx.cli, rosberta_onnx.session, rosberta_onnx.tokenize
        enc = Encoder.load({str(runtime_artifact)!r}, variant="fp32")
        v = enc.encode(["Привет", "hello"], task="search_query")
        assert v.shape == (2, enc.dim)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum", "onnx"))
        print("HEAVY", heavy)
        assert not heavy, heavy
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "HEAVY []" in r.stdout
