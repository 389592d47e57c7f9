"""Decision-file validation: errors name the bad field path and the valid choices."""

from __future__ import annotations

import pytest

from servelab.errors import ConfigError
from servelab.evidence import load_decision, parse_decision
from servelab.evidence.schema import BenchExperiment, RelativeThreshold


def base(**claim):
    c = {"id": "c1", "scenario": "a", "metric": "ttft_p95", "comparison": "<=", "threshold": 2.0}
    c.update(claim)
    return {"name": "t",
            "scenarios": {"a": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "rate_rps": 2},
                          "b": {"model": "llama-3.1-8b", "gpu": "h200", "rate_rps": 2}},
            "claims": [c]}


def err(data) -> str:
    with pytest.raises(ConfigError) as e:
        parse_decision(data, source="d.yaml")
    return str(e.value)


def test_valid_file_and_defaults():
    d = parse_decision(base(threshold={"scenario": "b", "factor": 0.5}))
    sc = d.scenarios["a"]
    assert (sc.tp, sc.kv_dtype, sc.router, sc.engine.max_num_seqs) == (1, "bf16", "round-robin", 256)
    assert [e.kind for e in sc.experiments] == ["simulate"]
    c = d.claims[0]
    assert isinstance(c.threshold, RelativeThreshold) and c.threshold.factor == 0.5
    assert c.evidence.kinds == ("simulate", "bench") and c.evidence.min_requests == 100


def test_bad_comparison_lists_valid_ones():
    msg = err(base(comparison="=>"))
    assert "claims[0].comparison" in msg and "'<', '<=', '>' or '>='" in msg and "'=>'" in msg


def test_bad_metric_lists_valid_forms():
    msg = err(base(metric="ttft_p95x"))
    assert "claims[0].metric: unknown metric 'ttft_p95x'" in msg
    assert "delivery" in msg and "cost_per_million_tokens" in msg and "ttft_p95" in msg


def test_unknown_field_lists_valid_fields():
    data = base()
    data["scenarios"]["a"]["max_queue"] = 8          # belongs under engine
    msg = err(data)
    assert "scenarios.a.max_queue: unknown field" in msg and "engine" in msg and "rate_rps" in msg
    data = base()
    data["scenarios"]["a"]["engine"] = {"max_queu": 8}
    assert "scenarios.a.engine.max_queu: unknown field; valid fields: profile, max_num_seqs" in err(data)


def test_bounds_and_types():
    data = base()
    data["scenarios"]["a"]["tp"] = 0
    data["scenarios"]["a"]["kv_dtype"] = "fp4"
    msg = err(data)
    assert "scenarios.a.tp: Input should be greater than or equal to 1 (got 0)" in msg
    assert "scenarios.a.kv_dtype: unknown KV dtype 'fp4'; valid: bf16, fp16, fp8" in msg


def test_unknown_catalog_names():
    data = base()
    data["scenarios"]["a"]["gpu"] = "h1000"
    msg = err(data)
    assert "scenarios.a.gpu" in msg and "unknown GPU 'h1000'" in msg and "h100-sxm" in msg


def test_cross_references():
    assert "claims[0].scenario: unknown scenario 'zz'; known: a, b" in err(base(scenario="zz"))
    msg = err(base(threshold={"scenario": "zz", "factor": 1}))
    assert "claims[0].threshold.scenario: unknown scenario 'zz'" in msg
    assert "needs another scenario" in err(base(threshold={"scenario": "a"}))
    data = base()
    data["claims"].append(dict(data["claims"][0]))
    assert "duplicate claim id 'c1'" in err(data)


def test_experiment_kinds_and_bench_sources():
    data = base()
    data["scenarios"]["a"]["experiments"] = [{"kind": "measure"}]
    msg = err(data)
    assert "scenarios.a.experiments[0]" in msg and "'simulate', 'bench', 'kernels'" in msg
    data["scenarios"]["a"]["experiments"] = [{"kind": "bench"}]
    assert "exactly one of 'url' or 'import'" in err(data)
    data["scenarios"]["a"]["experiments"] = [
        {"kind": "bench", "import": {"format": "vllm", "path": "r.json"}}]
    exp = parse_decision(data).scenarios["a"].experiments[0]
    assert isinstance(exp, BenchExperiment) and exp.import_.path == "r.json"
    data["scenarios"]["a"]["experiments"] = [
        {"kind": "bench", "import": {"format": "aiperf", "path": "r.json"}}]
    assert "'vllm' or 'guidellm'" in err(data)


def test_kernel_claims_need_kernel_evidence():
    c = {"kernel": {"kernel": "rmsnorm", "provider": "triton"}, "metric": "pct_of_peak",
         "comparison": ">=", "threshold": 90}
    assert "needs 'kernels' in evidence.kinds" in err(base(**c))
    d = parse_decision(base(**c, evidence={"kinds": ["kernels"]}))
    assert d.claims[0].kernel.kernel == "rmsnorm"


def test_load_decision_file_errors(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_decision(p)
    with pytest.raises(ConfigError, match="cannot read decision file"):
        load_decision(tmp_path / "missing.yaml")
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_decision(p)


def test_public_api_is_all():
    import servelab.evidence as ev

    public = {n for n in dir(ev) if not n.startswith("_")} - {"annotations"}
    modules = {"decision", "estimates", "ledger", "runner", "schema", "verdict"}
    assert set(ev.__all__) == public - modules
    assert all(getattr(ev, n) is not None for n in ev.__all__)
