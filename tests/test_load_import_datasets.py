"""Imports of vLLM / guidellm results, and the prompt sources."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from servelab.catalog.workloads import RequestSpec
from servelab.cli import app
from servelab.errors import ConfigError
from servelab.load.client import EndpointConfig
from servelab.load.datasets import (WORDS, load_jsonl_prompts, load_sharegpt_prompts, prompts_from_specs,
                                    synthetic_prompts)
from servelab.load.fakeserver import FakeServerConfig
from servelab.load.runner import RunOptions, run_load

from load_fixtures import fake_server

# A `vllm bench serve --save-result --save-detailed` file in vLLM's layout: 3 requests,
# the third failed. Times in seconds.
VLLM = {
    "date": "20250101-120000", "backend": "vllm", "model_id": "meta-llama/Llama-3.1-8B-Instruct",
    "num_prompts": 3, "request_rate": "inf", "burstiness": 1.0, "max_concurrency": None,
    "duration": 2.0, "completed": 2, "total_input_tokens": 300, "total_output_tokens": 7,
    "request_throughput": 1.0, "mean_ttft_ms": 150.0,
    "input_lens": [100, 200, 50], "output_lens": [3, 4, 0],
    "ttfts": [0.1, 0.2, 0.0], "itls": [[0.05, 0.05], [0.1, 0.1, 0.1], []],
    "start_times": [1000.0, 1000.5, 1001.0],
    "generated_texts": ["a b c", "a b c d", ""], "errors": ["", "", "Bad Request"],
}


def test_import_vllm_records_and_summary(tmp_path: Path) -> None:
    f = tmp_path / "vllm.json"
    f.write_text(json.dumps(VLLM))
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["bench", "import", "vllm", str(f), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["offered"] == 3 and s["completed"] == 2 and s["failed"] == 1
    assert s["total_output_tokens"] == 7                              # failed request counts no output
    # TTFT = [0.1, 0.2] → mean 0.15 s, as vLLM's mean_ttft_ms = 150
    assert s["ttft_s"]["mean"] == pytest.approx(0.15)
    # E2E = ttft + Σitl = 0.2 and 0.5; TPOT = (e2e − ttft)/(out − 1) = 0.05 and 0.1
    assert s["e2e_s"]["mean"] == pytest.approx(0.35)
    assert s["tpot_s"]["mean"] == pytest.approx(0.075)
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    by_id = {x["id"]: x for x in recs}
    assert by_id["vllm-1"]["arrival_s"] == pytest.approx(0.5)
    assert by_id["vllm-1"]["token_times_s"] == pytest.approx([0.7, 0.8, 0.9, 1.0])
    assert by_id["vllm-2"]["status"] == "failed" and by_id["vllm-2"]["reason"] == "Bad Request"


def test_import_vllm_without_detail_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "v.json"
    f.write_text(json.dumps({k: v for k, v in VLLM.items() if k not in ("ttfts", "itls")}))
    r = CliRunner().invoke(app, ["bench", "import", "vllm", str(f)])
    assert r.exit_code == 2 and "--save-detailed" in r.output


def _gl_request(rid: str, start: float, first: float | None, last: float | None, end: float,
                n_in: int, n_out: int) -> dict:
    return {"type_": "generative_request_stats", "request_id": rid,
            "info": {"request_id": rid, "status": "completed",
                     "timings": {"targeted_start": start, "request_start": start + 0.001,
                                 "first_token_iteration": first, "last_token_iteration": last,
                                 "request_end": end}},
            "input_metrics": {"text_tokens": n_in}, "output_metrics": {"text_tokens": n_out}}


def test_import_guidellm_new_schema(tmp_path: Path) -> None:
    data = {"metadata": {"guidellm_version": "0.8.1"}, "benchmarks": [{
        "type_": "generative_benchmark", "duration": 4.0,
        "requests": {
            "successful": [_gl_request("a", 1700000000.0, 1700000000.3, 1700000001.0, 1700000001.0, 10, 8),
                           _gl_request("b", 1700000001.0, 1700000001.1, 1700000001.5, 1700000001.5, 20, 6)],
            "incomplete": [_gl_request("c", 1700000002.0, 1700000002.2, None, 1700000003.0, 5, 2)],
            "errored": [_gl_request("d", 1700000003.0, None, None, 1700000003.1, 5, 0)],
        }}]}
    f = tmp_path / "g.json"
    f.write_text(json.dumps(data))
    r = CliRunner().invoke(app, ["bench", "import", "guidellm", str(f), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert (s["offered"], s["completed"], s["cancelled"], s["failed"]) == (4, 2, 1, 1)
    # TTFT from the targeted start: 0.3 and 0.1 s
    assert s["ttft_s"]["mean"] == pytest.approx(0.2, abs=1e-6)
    assert s["e2e_s"]["max"] == pytest.approx(1.0, abs=1e-6)
    assert s["request_throughput_rps"] == pytest.approx(2 / 4.0)


def test_synthetic_prompts_lengths_and_prefix_groups() -> None:
    ps = synthetic_prompts([0.0] * 6, input_len=50, output_len=7, prefix_len=20, num_prefix_groups=2, seed=3)
    for p in ps:
        words = p.prompt.split()
        assert len(words) == 70 and all(w in WORDS for w in words) and p.output_tokens == 7
    assert ps[0].prompt.split()[:20] == ps[2].prompt.split()[:20] != ps[1].prompt.split()[:20]
    assert ps[0].prompt != ps[2].prompt
    again = synthetic_prompts([0.0] * 6, input_len=50, output_len=7, prefix_len=20, num_prefix_groups=2, seed=3)
    assert [p.prompt for p in again] == [p.prompt for p in ps]          # seeded


def test_jsonl_and_sharegpt(tmp_path: Path) -> None:
    j = tmp_path / "p.jsonl"
    j.write_text('{"prompt": "one two three", "output_tokens": 5}\n'
                 '{"messages": [{"role": "user", "content": "hi there"}], "max_tokens": 2}\n')
    ps = load_jsonl_prompts(j, [0.0, 0.1, 0.2])
    assert [(p.input_tokens, p.output_tokens) for p in ps] == [(3, 5), (2, 2), (3, 5)]
    assert ps[1].messages[0]["content"] == "hi there"
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ConfigError, match="bad.jsonl:1"):
        load_jsonl_prompts(tmp_path / "bad.jsonl", [0.0])
    sg = tmp_path / "sg.json"
    sg.write_text(json.dumps([
        {"id": "1", "conversations": [{"from": "human", "value": "a b c d e"},
                                      {"from": "gpt", "value": "x y z w v u"}]},
        {"id": "2", "conversations": [{"from": "human", "value": "too short"},
                                      {"from": "gpt", "value": "x y z w"}]},
        {"id": "3", "conversations": [{"from": "gpt", "value": "no human"}]},
    ]))
    ps = load_sharegpt_prompts(sg, [0.0, 1.0])
    assert [(p.prompt, p.input_tokens, p.output_tokens) for p in ps] == [("a b c d e", 5, 6)] * 2


def test_multi_turn_carries_history_and_waits() -> None:
    specs = [RequestSpec(id="c0t0", arrival_s=0.0, input_tokens=5, output_tokens=3, conversation=0, turn=0),
             RequestSpec(id="c0t1", arrival_s=0.0, input_tokens=12, output_tokens=3, conversation=0, turn=1)]
    prompts = prompts_from_specs(specs)
    assert len(prompts[1].prompt.split()) == 12 - 5 - 3                   # only the new user words
    with fake_server(FakeServerConfig(ttft_s=0.01, itl_s=0.01)) as srv:
        res = asyncio.run(run_load(prompts, EndpointConfig(base_url=srv.url, endpoint="/v1/chat/completions",
                                                           model="m"), RunOptions(think_time_s=0.05)))
        second = srv.stats.seen_bodies[1]["messages"]
    r0, r1 = sorted(res.records, key=lambda r: r.extra["turn"])
    assert r0.status == r1.status == "ok"
    assert r1.arrival_s >= r0.finish_s + 0.05 - 1e-6                     # waited for turn 0 + think time
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == " w0 w1 w2"                            # turn 0's answer is history


def test_workload_preset_with_shared_prefixes(tmp_path: Path) -> None:
    from servelab.catalog.workloads import generate_requests, get_workload

    specs = generate_requests(get_workload("code"), num_requests=8, seed=5)
    with fake_server(FakeServerConfig(ttft_s=0.001, itl_s=0.0002, fixed_tokens=2)) as srv:
        r = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--workload", "code",
                                     "--num-prompts", "8", "--request-rate", "inf", "--seed", "5",
                                     "--scrape-interval", "0", "--json"])
        bodies = list(srv.stats.seen_bodies)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["offered"] == 8 and s["completed"] == 8
    # the server counted the prompt words: equal to the preset's input lengths
    assert s["total_input_tokens"] == sum(x.input_tokens for x in specs)
    by_len = {len(b["prompt"].split()): b["prompt"] for b in bodies}
    assert len(by_len) == 8                      # seed 5: distinct lengths identify the requests
    groups: dict[int, list[list[str]]] = {}
    for x in specs:
        groups.setdefault(x.prefix_group, []).append(by_len[x.input_tokens].split()[:x.prefix_tokens])
    shared = [v for g, v in groups.items() if g >= 0 and len(v) > 1]
    assert shared                                # seed 5: group 10 has two requests
    for members in shared:                       # same group → same leading words
        assert all(m == members[0] for m in members)
    firsts = [v[0] for g, v in groups.items() if g >= 0]
    assert len({tuple(f) for f in firsts}) == len(firsts)      # different groups → different prefixes


def test_cli_dataset_and_trace_sources(tmp_path: Path) -> None:
    j = tmp_path / "p.jsonl"
    j.write_text('{"prompt": "one two three four", "output_tokens": 3}\n')
    tr = tmp_path / "t.jsonl"
    tr.write_text('{"timestamp": 10.0, "input_tokens": 5, "output_tokens": 2}\n'
                  '{"timestamp": 10.2, "input_tokens": 7, "output_tokens": 4}\n')
    with fake_server(FakeServerConfig(ttft_s=0.001, itl_s=0.0005)) as srv:
        a = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--dataset", str(j),
                                     "--dataset-format", "jsonl", "--num-prompts", "3", "--scrape-interval", "0",
                                     "--percentile-metrics", "ttft,e2el", "--out", str(tmp_path / "a")])
        b = CliRunner().invoke(app, ["bench", "--base-url", srv.url, "--model", "m", "--trace", str(tr),
                                     "--scrape-interval", "0", "--json", "--out", str(tmp_path / "b")])
    assert a.exit_code == 0, a.output
    assert "E2E" in a.output and "TPOT" not in a.output          # --percentile-metrics picks the rows
    sa = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert sa["completed"] == 3 and sa["total_input_tokens"] == 12 and sa["total_output_tokens"] == 9
    assert b.exit_code == 0, b.output
    sb = json.loads(b.stdout)
    assert sb["completed"] == 2 and sb["total_input_tokens"] == 12 and sb["total_output_tokens"] == 6
    recs = sorted((json.loads(x) for x in (tmp_path / "b" / "records.jsonl").read_text().splitlines()),
                  key=lambda r: r["arrival_s"])
    assert [r["arrival_s"] for r in recs] == pytest.approx([0.0, 0.2])   # trace times, shifted to 0
    assert recs[1]["dispatch_s"] >= 0.2
