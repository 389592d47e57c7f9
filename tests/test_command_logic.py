"""What the commands compute, tested through the packages (no command line): run naming
for ``compare``, bench option values and sweep points, the plan request from a scenario,
the emulator's one-replica rule, decision price books, ledger look-ups, plan-day replay
and the estimate of a scenario. Expected values are written out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from servelab.errors import ConfigError, LedgerError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ compare: names and baseline

def _loaded(*labels: str):
    from servelab.report.inputs import LoadedRun
    return [(f"in{i}", LoadedRun(path=Path(f"in{i}"), label=lab, records=[])) for i, lab in enumerate(labels)]


def test_repeated_labels_get_a_number_and_the_baseline_is_found_by_input_label_or_index():
    from servelab.report.inputs import name_runs
    runs = _loaded("a", "a", "b", "a")
    assert name_runs(runs) == (["a", "a #2", "b", "a #3"], 0)
    assert name_runs(runs, baseline="b")[1] == 2            # a label
    assert name_runs(runs, baseline="in1")[1] == 1          # an input as given
    assert name_runs(runs, baseline="4")[1] == 3            # 1-based index
    assert name_runs(runs, labels=["w", "x", "y", "z"], baseline="y") == (["w", "x", "y", "z"], 2)


def test_bad_labels_and_baselines_name_the_valid_ones():
    from servelab.report.inputs import compare_loaded, name_runs
    runs = _loaded("a", "b")
    with pytest.raises(ConfigError, match=r"unknown baseline 'c'.*\(a, b\) or an index 1\.\.2"):
        name_runs(runs, baseline="c")
    with pytest.raises(ConfigError, match="--label given 1 times for 2 runs"):
        name_runs(runs, labels=["x"])
    with pytest.raises(ConfigError, match=r"at least two runs, got 1 from \['x', 'y'\]"):
        compare_loaded(runs[:1], inputs=["x", "y"])
    with pytest.raises(ConfigError, match="--metrics is empty"):
        compare_loaded(runs, metrics=" , ")


# ------------------------------------------------------------------ bench option values, sweep points

def _spec(**kw):
    from servelab.load.bench_args import bench_spec
    return bench_spec(base_url="http://127.0.0.1:9", **kw)


def test_bench_spec_defaults_follow_vllm_and_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    spec, rates = _spec(request_rate="1,2,inf")
    assert rates == [1.0, 2.0, math.inf] and spec.request_rate == 1.0
    assert spec.num_prompts == 1000 and spec.duration_s is None       # vllm bench serve's default
    assert spec.endpoint.api_key == "sk-from-env"
    spec, _ = _spec(duration=30.0, goodput=["ttft:200", "tpot:20"], metric_percentiles="50, 99")
    assert spec.num_prompts is None and spec.duration_s == 30.0
    assert spec.goodput == "ttft:200 tpot:20" and spec.percentiles == (50.0, 99.0)


def test_bench_spec_reports_the_v1_note_and_refuses_bad_values():
    from servelab.load.bench_args import bench_spec
    notes: list[str] = []
    spec, _ = bench_spec(base_url="http://127.0.0.1:9/v1", on_note=notes.append)
    assert notes and "/v1" in notes[0] and spec.endpoint.base_url == "http://127.0.0.1:9"
    for kw, msg in (({"extra_body": "[1]"}, "must be a JSON object"), ({"extra_body": "{"}, "not valid JSON"),
                    ({"metric_percentiles": "50,x"}, "'x' is not a number"),
                    ({"endpoint": "v1/completions"}, "must be a path"), ({"header": ["nocolon"]}, "Name: value"),
                    ({"http_client": "curl"}, "known: raw, aiohttp"), ({"max_failure_rate": 2.0}, "<= 1")):
        with pytest.raises(ConfigError, match=msg):
            _spec(**kw)


def test_failure_over_names_share_limit_and_most_common_reason():
    from servelab.load.bench_args import failure_over
    s = {"offered": 8, "failures": {"count": 2, "share": 0.25,
                                    "by_reason": [{"count": 2, "status": "error", "reason": "HTTP 500"}]}}
    assert failure_over(s, "rate 4 req/s", 0.25) is None
    assert failure_over(s, "rate 4 req/s", 0.1) == ("rate 4 req/s: 2 of 8 requests not ok (25.0% > "
                                                    "--max-failure-rate 0.1); most common: 2× error — HTTP 500")


def test_sweep_points_are_closed_loop_saturating_or_evenly_spaced():
    from servelab.load.sweep import SWEEP_SYNC_PROMPTS, point_spec, point_tag
    spec, _ = _spec(num_prompts=100, request_rate="3", arrival="poisson", burstiness=0.5, max_concurrency=7)
    sync = point_spec(spec, "synchronous", math.inf)
    assert (sync.request_rate, sync.max_concurrency, sync.num_prompts) == (math.inf, 1, SWEEP_SYNC_PROMPTS)
    thr = point_spec(spec, "throughput", math.inf)
    assert (thr.request_rate, thr.max_concurrency, thr.num_prompts) == (math.inf, None, 100)
    const = point_spec(spec, "constant", 2.5)
    assert (const.request_rate, const.arrival, const.burstiness, const.max_concurrency) == (2.5, "constant", 1.0, 7)
    assert point_tag("throughput", math.inf) == "throughput" and point_tag("refine", 12.3456) == "refine-12.35"


# ------------------------------------------------------------------ plan request from a scenario

def test_plan_searches_the_given_value_or_the_defaults():
    from servelab.plan.from_scenario import plan_request
    from servelab.scenario import resolve
    sc = resolve({"gpu": "h200", "tp": 2})
    req, notes = plan_request(sc, given={"gpu", "tp"})
    assert (req.gpus, req.tps, req.pps, req.weight_dtypes) == (("h200",), (2,), (), ("bf16", "fp8"))
    req, _ = plan_request(sc, given=set(), gpus="L40S, h100-sxm", tp="1,4", pp="auto", precisions="fp8")
    assert (req.gpus, req.tps, req.pps, req.weight_dtypes) == (("l40s", "h100-sxm"), (1, 4), (), ("fp8",))
    assert notes == [] and req.confidence == "pessimistic"


@pytest.mark.parametrize("kw, msg", [({"jobs": 0}, "--jobs must be >= 1"), ({"max_requests": 0}, "--max-requests"),
                                     ({"headroom": 0.9}, "--headroom must be >= 1, got 0.9"),
                                     ({"spares": -1}, "--spares must be >= 0"), ({"tp": "0"}, "integers >= 1"),
                                     ({"confidence": "sure"}, "valid: optimistic")])
def test_plan_request_refuses_bad_values(kw, msg):
    from servelab.plan.from_scenario import plan_request
    from servelab.scenario import resolve
    with pytest.raises(ConfigError, match=msg):
        plan_request(resolve({}), given=set(), **kw)


# ------------------------------------------------------------------ emulator: one replica

def test_the_emulator_serves_one_replica_and_takes_the_tighter_queue_bound():
    from servelab.emulator import one_replica
    from servelab.scenario import resolve
    with pytest.raises(ConfigError, match="replicas=2 \\(valid: 1\\)"):
        one_replica(resolve({"replicas": 2}))
    sc = one_replica(resolve({"engine": {"max_queue": 8}, "admission": {"max_queue": 4}}))
    assert (sc.engine.max_queue, sc.admission.max_queue) == (4, None)


# ------------------------------------------------------------------ decisions and the ledger

def test_a_price_book_reaches_only_scenarios_without_prices_of_their_own():
    from servelab.evidence import load_decision
    from servelab.evidence.schema import with_price_book
    dec = load_decision(ROOT / "examples" / "decisions" / "h200-vs-h100-cost.yaml")
    first, second = list(dec.scenarios)
    dec = dec.model_copy(update={"scenarios": {**dec.scenarios, second: dec.scenarios[second].model_copy(
        update={"prices": dec.scenarios[second].prices.model_copy(update={"gpu_hour_usd": 3.0})})}})
    book = str(ROOT / "src" / "servelab" / "catalog" / "data" / "prices.csv")
    out = with_price_book(dec, book)
    assert out.scenarios[first].prices.book == book
    assert out.scenarios[second].prices.book is None and out.scenarios[second].prices.gpu_hour_usd == 3.0


def test_reading_a_missing_ledger_or_id_names_it(tmp_path):
    from servelab.evidence import Ledger
    from servelab.evidence.ledger import open_existing
    with pytest.raises(LedgerError, match="no ledger at .*nope.sqlite"):
        open_existing(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()
    with Ledger(tmp_path / "l.sqlite") as led:
        with pytest.raises(LedgerError, match="no run or claim with id 'x1'"):
            led.item("x1")


# ------------------------------------------------------------------ plan-day replay

def test_pools_take_the_planned_shape_replicas_and_autoscaler():
    from servelab.plan.dayplan_file import pools_with_plan
    from servelab.plan.fleetday import load_fleet_day
    fleet, scenarios = load_fleet_day(ROOT / "examples" / "fleet-day" / "three-models.yaml")
    pools = pools_with_plan([(p.name, sc) for p, sc in zip(fleet.pools, scenarios)],
                            str(ROOT / "examples" / "fleet-day" / "report.json"))
    got = {n: (sc.gpu, sc.tp, sc.pp, sc.weight_dtype, sc.kv_dtype, sc.replicas) for n, sc in pools}
    # examples/fleet-day/report.json: chat-8b "TP1 bf16/kv-bf16" 7 replicas at hour 0,
    # rag-70b "TP4 fp8/kv-fp8" on 4 GPUs, 6 replicas
    assert got["chat-8b"] == ("h100-sxm", 1, 1, "bf16", "bf16", 7)
    assert got["rag-70b"] == ("h100-sxm", 4, 1, "fp8", "fp8", 6)
    assert dict(pools)["chat-8b"].autoscaler.metric == "running"


def test_a_plan_without_the_pool_is_refused(tmp_path):
    from servelab.plan.dayplan_file import pools_with_plan
    from servelab.scenario import resolve
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"pools": [{"name": "other"}]}))
    with pytest.raises(ConfigError, match="has no pool 'chat'; it has other"):
        pools_with_plan([("chat", resolve({}))], str(f))


# ------------------------------------------------------------------ estimate of a scenario

def test_estimate_of_llama_3_1_8b_bf16_kv_bytes_per_token():
    from servelab.scenario import resolve
    from servelab.scenario.estimate import DEFAULT_INPUT_TOKENS, estimate_scenario
    r, _ = estimate_scenario(resolve({"model": "llama-3.1-8b", "gpu": "h100-sxm"}))
    assert r["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2          # K and V · layers · KV heads · head dim · bf16
    assert r["input_tokens"] == DEFAULT_INPUT_TOKENS and r["feasible"] and r["cost"]["billed_gpus"] == 1
    with pytest.raises(ConfigError, match="disaggregated"):
        estimate_scenario(resolve({"disagg": {"prefill": {"replicas": 1}, "decode": {"replicas": 1}}}))
