"""Per-family efficiencies: fit rows only, shrinkage, the catalog's architecture in use."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest

from servelab.catalog import get_gpu, list_gpus
from servelab.catalog.gpus import _from_entry
from servelab.errors import ConfigError
from servelab.perf import Efficiency
from servelab.perf.engines import get_engine
from servelab.perf.families import (FAMILIES, PRIOR_ROWS, family_efficiency, family_fit, load_table,
                                    prior_penalty)

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"


@pytest.fixture(scope="module")
def obs(fam_fit):
    return fam_fit.observations()


def _strip(fits: dict) -> dict:
    return {k: (v["fit_rows"], v["raw"]) for k, v in fits.items()}


def test_every_data_row_has_a_role_and_a_source():
    n = {"fit": 0, "validate": 0}
    for path in sorted(DATA.glob("*.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                assert r["role"] in ("fit", "validate"), (path.name, r)
                url = r.get("url") or r.get("source")
                assert url.startswith("https://"), (path.name, r)
                n[r["role"]] += 1
    assert n["fit"] >= 100 and n["validate"] >= 300


def test_validate_rows_change_no_fitted_parameter(fam_fit, obs):
    """Fit with the validate rows removed, and with their published values tripled: the
    fitted parameters of every family are identical."""
    with_all = _strip(fam_fit.fit_families(obs))
    fit_only = _strip(fam_fit.fit_families([o for o in obs if o.role == "fit"]))
    perturbed = [dataclasses.replace(o, published=3 * o.published) if o.role == "validate" else o for o in obs]
    assert with_all == fit_only
    assert _strip(fam_fit.fit_families(perturbed)) == fit_only
    moe = fam_fit.fit_expert_compute(obs)
    assert fam_fit.fit_expert_compute([o for o in obs if o.role == "fit"]) == moe
    assert fam_fit.fit_expert_compute(perturbed) == moe
    # the check can fail: halving the CDNA3 fit rows' published values moves that family's fit
    moved = [dataclasses.replace(o, published=0.5 * o.published) if o.role == "fit" and o.family == "cdna3"
             else o for o in obs]
    assert _strip(fam_fit.fit_families(moved, families=("cdna3",)))["cdna3"] != fit_only["cdna3"]


def test_shipped_table_is_reproduced_by_the_fit(fam_fit, obs):
    table = load_table()
    moe = fam_fit.fit_expert_compute(obs)
    assert Efficiency().expert_compute == moe["expert_compute"] == table["moe"]["expert_compute"]
    assert moe["fit_rows"] >= 40 and moe["loss_fit"] < moe["loss_at_1"]
    fits = fam_fit.fit_families(obs)
    for fam in FAMILIES:
        assert table["families"][fam]["fit_rows"] == fits[fam]["fit_rows"]
        assert table["families"][fam]["raw"] == pytest.approx(fits[fam]["raw"])
        assert fits[fam]["fit_rows"] > 0          # every family rests on sourced rows


def test_prior_penalty_is_log_distance_in_rows():
    g = Efficiency()
    assert prior_penalty(g, g) == 0.0
    e = dataclasses.replace(g, compute=g.compute / math.e, step_overhead_s=1e-3)
    # a factor e on one efficiency and 1 ms of step overhead: one unit each
    assert prior_penalty(e, g) == pytest.approx(2 * PRIOR_ROWS)


def test_more_rows_move_a_family_further_from_the_global_fit(fam_fit, obs):
    """Shrinkage: the same evidence repeated five times outweighs the prior more."""
    rows = [o for o in obs if o.role == "fit" and o.family == "cdna3"]
    g = Efficiency()
    once = fam_fit.fit_family(rows, g)
    five = fam_fit.fit_family(rows * 5, g)
    assert prior_penalty(five, g) > prior_penalty(once, g) > 0


def test_catalog_architecture_selects_the_family():
    assert {g.architecture for g in list_gpus()} <= set(FAMILIES)
    assert family_fit(get_gpu("mi300x")).family == "cdna3"
    assert family_fit(get_gpu("b200")).family == "blackwell"
    # AMD and NVIDIA no longer share one set of efficiencies
    assert family_efficiency(get_gpu("mi300x")) != family_efficiency(get_gpu("h100-sxm"))
    entry = {"name": "x1", "display_name": "X", "vendor": "amd", "architecture": "hopper",
             "memory_gb": 1, "memory_bandwidth_gb_s": 1, "dense_tflops": {}, "interconnect_gb_s_per_direction": 0,
             "pcie_gen": 4, "pcie_gb_s_per_direction": 32}
    with pytest.raises(ConfigError, match="cdna3"):
        _from_entry(entry)


def test_engine_profiles_take_kernel_efficiencies_from_the_family():
    mi = get_gpu("mi300x")
    v, t = get_engine("vllm").efficiency_for(mi), get_engine("trtllm").efficiency_for(mi)
    fam = family_efficiency(mi)
    assert v.compute == t.compute == fam.compute and v.memory == fam.memory
    assert v.step_overhead_s == get_engine("vllm").efficiency.step_overhead_s   # vLLM's runtime
    assert t.step_overhead_s == fam.step_overhead_s


def test_every_other_fit_reads_only_fit_rows(val):
    """The global fit's training split and the vllm profile's step-overhead rows are all
    rows whose role is fit, so no validate row reaches any fitted parameter."""
    cal = val.calibrate
    train = [r for r in cal.load_rows() if cal.is_training(r)]
    assert len(train) == 131 and all(r["role"] == "fit" for r in train)
    vllm_fit = [r for r in val.load_rows() if r["source"] == val.VLLM_FIT_SOURCE]
    assert len(vllm_fit) == 3 and all(r["role"] == "fit" for r in vllm_fit)
    assert all(r["role"] == "validate" for r in val.load_rows(val.VLLM_DATA))
