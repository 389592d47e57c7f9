"""The run time-series format: per-bucket percentiles, the server section from
scraped /metrics samples and from the simulator, all checked by hand."""

from __future__ import annotations

import pytest

from servelab.load.scrape import server_series
from servelab.metrics import TIMESERIES_FORMAT, default_bucket_s, run_timeseries, server_section
from servelab.records import RequestRecord
from servelab.sim.series import server_section_of


def _rec(i: int, arrival: float, ttft: float, tpot: float, out: int = 5) -> RequestRecord:
    return RequestRecord(id=str(i), arrival_s=arrival, input_tokens=10, output_tokens=out,
                         first_token_s=arrival + ttft, finish_s=arrival + ttft + tpot * (out - 1))


def test_bucket_percentiles_by_hand():
    # bucket 0 (arrivals in [0, 1)): TTFTs 0.1, 0.2, 0.3, 0.4; bucket 1: one request
    recs = [_rec(i, 0.2 * i, 0.1 * (i + 1), 0.01 * (i + 1)) for i in range(4)] + [_rec(9, 1.5, 0.05, 0.002)]
    doc = run_timeseries(recs, bucket_s=1.0)
    assert doc["format"] == TIMESERIES_FORMAT and "server" not in doc
    ts = doc["requests"]
    # numpy linear interpolation: p50 of (.1,.2,.3,.4) = .25, p95 = .3 + .85·.1 = .385
    assert ts["ttft_p50_s"][0] == pytest.approx(0.25)
    assert ts["ttft_p95_s"][0] == pytest.approx(0.385)
    assert ts["ttft_p99_s"][0] == pytest.approx(0.397)
    assert ts["tpot_p50_s"][0] == pytest.approx(0.025)
    assert ts["e2e_p50_s"][0] == pytest.approx(0.35)        # E2E = 0.14·(i+1): median of .14 .28 .42 .56
    assert ts["ttft_p50_s"][1] == pytest.approx(0.05) and ts["tpot_p95_s"][1] == pytest.approx(0.002)


def test_default_bucket_is_a_round_number():
    recs = [_rec(i, 0.1 * i, 0.1, 0.01) for i in range(100)]      # span ≈ 10.04 s
    assert default_bucket_s(recs) == 0.2                          # 10.04 / 60 = 0.167 → 0.2
    assert default_bucket_s([]) == 1.0


def test_server_series_rates_resets_and_histogram_means():
    samples = [
        {"t_s": 0.0, "values": {"vllm:num_requests_running": 0, "vllm:generation_tokens_total": 100.0,
                                "vllm:time_to_first_token_seconds_sum": 1.0,
                                "vllm:time_to_first_token_seconds_count": 10.0}},
        {"t_s": 0.5, "values": {"vllm:num_requests_running": 3, "vllm:generation_tokens_total": 150.0,
                                "vllm:time_to_first_token_seconds_sum": 1.6,
                                "vllm:time_to_first_token_seconds_count": 12.0}},
        {"t_s": 1.5, "values": {"vllm:num_requests_running": 2, "vllm:generation_tokens_total": 250.0,
                                "vllm:time_to_first_token_seconds_sum": 1.6,
                                "vllm:time_to_first_token_seconds_count": 12.0}},
        {"t_s": 2.0, "values": {"vllm:num_requests_running": 1, "vllm:generation_tokens_total": 20.0,
                                "vllm:time_to_first_token_seconds_sum": 0.1,
                                "vllm:time_to_first_token_seconds_count": 1.0}},   # server restarted
    ]
    sec = server_series({"source": "http://x/metrics", "samples": samples})
    assert sec["source"] == "http://x/metrics" and sec["t_s"] == [0.0, 0.5, 1.5, 2.0]
    s = sec["series"]
    assert s["running"] == [0, 3, 2, 1]
    assert s["generation_tokens_per_s"] == [None, 100.0, 100.0, None]     # 50/0.5, 100/1, reset
    assert s["server_ttft_mean_s"][1] == pytest.approx(0.3)               # (1.6 − 1.0) / (12 − 10)
    assert s["server_ttft_mean_s"][2] is None and s["server_ttft_mean_s"][3] is None
    assert "waiting" not in s and "kv_usage" not in s
    assert server_series({"samples": []}) is None and server_series(None) is None


def test_llamacpp_names_map_to_the_same_series():
    samples = [{"t_s": 0.0, "values": {"llamacpp:requests_processing": 1, "llamacpp:tokens_predicted_total": 0}},
               {"t_s": 2.0, "values": {"llamacpp:requests_processing": 0, "llamacpp:tokens_predicted_total": 64}}]
    s = server_series({"source": "u", "samples": samples})["series"]
    assert s["running"] == [1, 0] and s["generation_tokens_per_s"] == [None, 32.0]


def test_simulator_gauges_become_the_server_section():
    sim_ts = {"t_s": [0.0, 1.0], "waiting": [0, 2], "running": [1, 4], "kv_usage": [0.1, 0.5],
              "replicas": [1, 1], "per_replica": {"r0": {}}}
    sec = server_section_of(sim_ts)
    assert sec == {"source": "simulator", "t_s": [0.0, 1.0],
                   "series": {"running": [1, 4], "waiting": [0, 2], "kv_usage": [0.1, 0.5], "replicas": [1, 1]}}
    assert server_section_of({"t_s": []}) is None


def test_server_section_rejects_ragged_series():
    with pytest.raises(ValueError, match="'running' has 1 values for 2 sample times"):
        server_section("s", [0.0, 1.0], {"running": [1]})


def test_legacy_run_folders_still_plot(tmp_path):
    """A run folder written before the format (raw scrape samples at the top level)
    is read with its server section rebuilt."""
    from servelab import recordio
    from servelab.report.inputs import load_inputs
    from servelab.records import RunMeta
    recs = [_rec(i, 0.1 * i, 0.05, 0.01) for i in range(20)]
    raw = {"source": "u", "interval_s": 1.0, "errors": 0, "last_error": "",
           "samples": [{"t_s": 0.0, "values": {"vllm:num_requests_waiting": 2}},
                       {"t_s": 1.0, "values": {"vllm:num_requests_waiting": 0}}]}
    recordio.write_run(tmp_path / "r", RunMeta(run_id="x", kind="bench", started_at="t"), recs,
                       {"offered": 20}, raw)
    lr = load_inputs(tmp_path / "r")[0]
    assert lr.timeseries["format"] == TIMESERIES_FORMAT
    assert lr.timeseries["server"]["series"]["waiting"] == [2, 0]


def test_server_counters_are_the_runs_change_not_lifetime_totals(tmp_path):
    """Two runs against one server: the second's counters in the summary are its own
    tokens, though the server's counter holds both runs' (fake server: llama.cpp names)."""
    import json

    from typer.testing import CliRunner

    from load_fixtures import fake_server
    from servelab.cli import app
    from servelab.load.fakeserver import FakeServerConfig
    args = ["--model", "m", "--num-prompts", "6", "--random-input-len", "8", "--random-output-len", "5",
            "--request-rate", "inf", "--scrape-interval", "0.05", "--json"]
    with fake_server(FakeServerConfig(ttft_s=0.002, itl_s=0.001)) as srv:
        runs = [json.loads(CliRunner().invoke(app, ["bench", "--base-url", srv.url, *args,
                                                    "--out", str(tmp_path / f"r{i}")]).stdout)
                for i in range(2)]
    for s in runs:
        assert s["server_metrics"]["change"]["generation_tokens_total"] == 6 * 5
        assert "generation_tokens_total" not in s["server_metrics"]["max"]
    raw = json.loads((tmp_path / "r1" / "timeseries.json").read_text())["samples"]
    assert raw[0]["t_s"] <= 0 and raw[-1]["values"]["llamacpp:tokens_predicted_total"] == 60
