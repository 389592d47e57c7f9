"""The accuracy and family tables in README/docs are the ones validate.py writes from the
results files, and the results files are what the shipped model gives today."""

from __future__ import annotations

import json

import pytest


def test_doc_tables_match_the_results_files(val):
    blocks = val.doc_blocks()
    for name, paths in val.DOC_BLOCKS.items():
        for path in paths:
            shown = val.between_markers(path.read_text(), name)
            assert shown == blocks[name], (
                f"{path.name}: the '{name}' table differs from the results file; "
                "run `python benchmarks/validate.py --write-docs`")


def test_results_file_is_what_the_model_gives_now(val):
    saved = json.loads(val.OUT_ALL.read_text())
    obs, preds, summary = val.run_all()
    assert saved["mdape"] == summary, "run `python benchmarks/validate.py --held-out`"
    assert saved["coverage"] == val.loo_coverage(obs, preds)
    assert saved["fit_mdape"] == val.run_all("fit")[2]["all"]


def test_held_out_accuracy_targets(val):
    """Measured by the same run the README shows: overall and every category of >= 5 rows."""
    s = val.run_all()[2]
    assert s["all"]["mdape_pct"] <= 15.0
    for c in ("amd", "blackwell-fp4", "moe", "long-context", "vllm-sglang"):
        if s[c]["rows"] >= 5:
            assert s[c]["mdape_pct"] <= 25.0, c


def test_markers_are_required(val):
    with pytest.raises(ValueError, match="markers"):
        val.replace_between_markers("no markers here", "x")
