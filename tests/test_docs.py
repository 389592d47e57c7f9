"""`make docs-check`: numbers in README.md and docs/ against the result files and
commands they come from (tests/docs_check.py describes the marks)."""

from __future__ import annotations

import pytest

import docs_check as dc

SOURCES = [r for p in dc.DOCS for r in dc.check_sources(p)]
BLOCKS = [(p, b) for p in dc.DOCS for b in dc.blocks(p)]


def test_documents_carry_marks():
    assert len(SOURCES) >= 20 and len(BLOCKS) >= 4


@pytest.mark.parametrize("res", SOURCES, ids=[r.where for r in SOURCES])
def test_number_matches_its_result_file(res):
    assert res.ok, f"{res.where}: {res.detail}"


@pytest.mark.parametrize("doc,block", BLOCKS, ids=[f"{p.name}:{b[4]}:{b[0]}" for p, b in BLOCKS])
def test_console_block_matches_its_command(doc, block):
    res = dc.check_block(doc, *block)
    assert res.ok, f"{res.where}: {res.detail}"


def test_the_comparison_catches_drift():
    expected = "goodput (req/s)                     16.95\n│ TTFT │ 1,487 │ 2,170 │"
    actual = "goodput (req/s)   10.36\n│ TTFT │ 1,487 │ 2,170 │"
    bad = dc.compare_output(expected, actual)
    assert len(bad) == 1 and "16.95" in bad[0] and "10.36" in bad[0]
    assert dc.compare_output("x 2.93 ms", "x 2.934 ms") == []          # within the precision shown
    assert dc.compare_output("x 2.93 ms", "x 2.94 ms") != []
    assert dc.compare_output("x 100", "x 104", tol_rel=0.05) == []
    assert dc.compare_output("x 1,226", "x 1225") != []


def test_lookup_and_precision():
    data = {"a": {"b": 1.234}, "cases": [{"s": 0.06}, {"s": 0.33}]}
    assert dc.lookup(data, "a.b") == 1.234
    assert dc.lookup(data, "min:cases.*.s") == 0.06 and dc.lookup(data, "max:cases.*.s") == 0.33
    with pytest.raises(KeyError, match="use min: or max:"):
        dc.lookup(data, "cases.*.s")
    assert dc.shown_tolerance("12.1") == pytest.approx(0.05) and dc.shown_tolerance("55,700") == 0.5
    assert dc.close("12.1", 12.052) and not dc.close("10.7", 12.052)
