"""The int8 error-budget study (benchmarks/studies/error_budget.py): its rows on the tiny stand-in (whose random weights
show no quantisation error worth the name, so the figures are checked for shape, not size), the hooks on every
MatMul of each type, and the per-token quantiser itself."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.torch


def test_error_budget_rows(tiny_artifact, tiny_checkpoint, tmp_path):
    from benchmarks.studies.error_budget import ROLES, main

    assert (
        main(
            [
                str(tiny_artifact),
                "--reference",
                str(tiny_checkpoint),
                "--queries",
                "8",
                "--pairs",
                "40",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    res = json.loads((tmp_path / "error_budget.json").read_text())
    rows = {r["system"]: r for r in res["rows"]}
    assert "`int8` as shipped" in rows and res["docs"] > 10
    for r in rows.values():
        assert 0.0 <= r["top10_overlap"] <= 1.0 and math.isfinite(r["score_error_median"])
    layers = json.loads((tiny_artifact / "manifest.json").read_text())["model"]["num_layers"]
    per_type = [name for name in rows if name.startswith("activations per token")]
    hooked = {
        "every MatMul": 6 * layers,
        "Q/K/V": 3 * layers,
        "attention output": layers,
        "FFN-up": layers,
        "FFN-down": layers,
    }
    assert per_type == [f"activations per token u8: {k} ({n} MatMuls)" for k, n in hooked.items()]
    assert len(per_type) == 1 + len(ROLES)
    assert "Reproduce: `python -m benchmarks.studies.error_budget" in (tmp_path / "error_budget.md").read_text()


def test_error_budget_refuses_a_folder_without_a_manifest(tmp_path, capsys):
    from benchmarks.studies.error_budget import main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--reference", "x"])
    assert exc.value.code == 2 and "has no manifest.json" in capsys.readouterr().err


def test_per_token_u8_rounds_each_row_on_its_own_grid():
    import torch

    from benchmarks.studies.error_budget import per_token_u8

    torch.manual_seed(0)
    x = torch.randn(3, 5, 64, dtype=torch.float64)
    x[1, 2] *= 100  # one loud token must not coarsen the others
    y = per_token_u8(x)
    step = (x.amax(-1).clamp(min=0) - x.amin(-1).clamp(max=0)) / 255
    err = (y - x).abs().amax(-1)
    assert bool((err <= step / 2 + 1e-12).all()) and bool((err > 0).all())
    assert float(err[1, 2]) > 50 * float(err[0, 0])  # its own scale, not a shared one
    assert float(per_token_u8(torch.zeros(2, 8)).abs().max()) == 0.0
