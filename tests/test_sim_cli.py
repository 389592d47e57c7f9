"""`servelab simulate` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from servelab.cli import app

runner = CliRunner()


def test_simulate_json_keys() -> None:
    res = runner.invoke(app, ["simulate", "--duration", "20", "--rate", "5", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    for key in ("offered", "completed", "rejected", "throughput_tokens_per_s", "goodput_rps", "delivery"):
        assert key in s
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        assert all(p in s[m] for p in ("p50", "p90", "p95", "p99"))
    assert s["offered"] == s["completed"] + s["rejected"] + s["timed_out"] + s["failed"] + s["cancelled"]
    assert s["offered"] > 50 and s["delivery"] == 1.0


def test_simulate_writes_run_folder_and_table(tmp_path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["simulate", "--duration", "10", "--rate", "40", "--replicas", "2",
                              "--router", "prefix", "--max-queue", "4", "--slo", "ttft_p95=1s",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Latency" in res.output
    for f in ("meta.json", "records.jsonl", "summary.json", "timeseries.json"):
        assert (out / f).exists(), f
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "simulate" and meta["complete"] is True
    n = sum(1 for _ in (out / "records.jsonl").open())
    assert n == json.loads((out / "summary.json").read_text())["offered"]


def test_simulate_bad_router_names_valid_ones() -> None:
    res = runner.invoke(app, ["simulate", "--duration", "5", "--router", "random", "--json"])
    assert res.exit_code == 2
    assert "round-robin" in res.output


def test_simulate_unknown_gpu() -> None:
    res = runner.invoke(app, ["simulate", "--duration", "5", "--gpu", "h1000", "--json"])
    assert res.exit_code == 2 and "h100-sxm" in res.output


def test_simulate_host_kv_tier_option() -> None:
    # Llama-3.1-8B on an L4: ~5 GB of KV, so multi-turn conversations (agentic preset)
    # evict earlier turns. With a 64 GiB host tier they come back from DRAM; without
    # one, nothing does. Capacity by hand: 64 GiB / (131,072 B per token · 16 tokens
    # per block) = 32,768 blocks.
    stats = {}
    for gib in ("0", "64"):
        res = runner.invoke(app, ["simulate", "--gpu", "l4", "--workload", "agentic", "--rate", "5",
                                  "--duration", "30", "--cpu-kv-gib", gib, "--json"])
        assert res.exit_code == 0, res.output
        s = json.loads(res.output)
        assert s["completed"] == s["offered"]
        stats[gib] = s["sim"]["replicas"]["replica-0"]
    assert stats["0"]["kv_tier_blocks"] == {} and stats["0"]["cpu_kv_hit_tokens"] == 0
    hits = stats["64"]["cpu_kv_hit_tokens"]
    assert hits > 0 and hits % 16 == 0 and stats["64"]["kv_tier_hit_tokens"] == {"dram": hits}
    assert 0 < stats["64"]["kv_tier_blocks"]["dram"] <= 32_768


def test_simulate_autoscaler_and_fault_options() -> None:
    res = runner.invoke(app, ["simulate", "--duration", "60", "--rate", "60", "--replicas", "2",
                              "--autoscale-max", "4", "--autoscale-target", "1", "--poll", "5",
                              "--provisioning-delay", "10", "--load-delay", "5",
                              "--kill-at", "20", "--retry", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    kinds = [e[1] for e in s["sim"]["events"]]
    assert "killed" in kinds
    assert s["offered"] == s["completed"] + s["rejected"] + s["failed"] + s["timed_out"]
    assert s["failed"] == 0                      # retried, not failed
