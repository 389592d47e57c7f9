"""Workloads: arrival statistics, lengths, determinism, prefixes, multi-turn, SLO parsing."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servelab.catalog import (
    ArrivalSpec,
    LengthDist,
    PrefixSpec,
    Workload,
    generate_requests,
    get_workload,
    list_workloads,
    parse_slo,
)
from servelab.catalog.lengths import empirical_from_file, read_lengths
from servelab.catalog.requests import interarrival_times
from servelab.catalog.workloads import load_workload
from servelab.errors import ConfigError

N = 200_000  # inter-arrival samples for the statistical checks


def _gaps(kind: str, rate: float, burstiness: float = 1.0, seed: int = 7) -> np.ndarray:
    return interarrival_times(ArrivalSpec(kind=kind, rate_rps=rate, burstiness=burstiness),  # type: ignore[arg-type]
                              np.random.default_rng(seed), N)


@pytest.mark.parametrize("burstiness", [0.25, 0.5, 1.0, 4.0])
def test_gamma_mean_and_cv(burstiness: float) -> None:
    rate = 8.0
    g = _gaps("gamma", rate, burstiness)
    # mean 1/rate; CV = 1/sqrt(shape). Standard error of the mean ~ CV/(rate*sqrt(N)) < 0.5%.
    assert g.mean() == pytest.approx(1 / rate, rel=0.02)
    assert g.std() / g.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.03)


def test_poisson_cv_is_one_and_constant_cv_zero() -> None:
    g = _gaps("poisson", 3.0)
    assert g.mean() == pytest.approx(1 / 3.0, rel=0.02)
    assert g.std() / g.mean() == pytest.approx(1.0, rel=0.02)
    c = _gaps("constant", 4.0)
    assert np.all(c == 0.25)


def test_generated_arrivals_follow_rate() -> None:
    w = Workload(name="t", input_len=LengthDist(mean=10), output_len=LengthDist(mean=5),
                 arrival=ArrivalSpec(kind="gamma", rate_rps=20.0, burstiness=0.5))
    reqs = generate_requests(w, duration_s=500.0, seed=3)
    assert len(reqs) == pytest.approx(20 * 500, rel=0.05)
    t = np.array([r.arrival_s for r in reqs])
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0) and t[-1] < 500.0
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(math.sqrt(2), rel=0.06)


def test_rate_override_and_num_requests() -> None:
    w = get_workload("chat")
    reqs = generate_requests(w, rate_rps=50.0, num_requests=5000, seed=1)
    assert len(reqs) == 5000
    assert reqs[-1].arrival_s == pytest.approx(5000 / 50.0, rel=0.05)


def test_determinism_and_seed_sensitivity() -> None:
    for w in list_workloads():
        a = generate_requests(w, num_requests=300, seed=11)
        b = generate_requests(w, num_requests=300, seed=11)
        assert a == b
    w = get_workload("chat")
    assert generate_requests(w, num_requests=50, seed=1) != generate_requests(w, num_requests=50, seed=2)


def test_ids_unique_and_ordered() -> None:
    reqs = generate_requests(get_workload("agentic"), duration_s=120.0, seed=5)
    assert [r.id for r in reqs] == [f"r{i}" for i in range(len(reqs))]
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:]))


def test_offline_all_at_zero_with_default_count() -> None:
    reqs = generate_requests(get_workload("offline"))
    assert len(reqs) == 1000
    assert {r.arrival_s for r in reqs} == {0.0}
    assert {(r.input_tokens, r.output_tokens) for r in reqs} == {(1024, 1024)}
    with pytest.raises(ConfigError, match="num_requests"):
        generate_requests(get_workload("offline"), duration_s=10.0)


def test_rag_preset_is_8192_in_300_out() -> None:
    w = get_workload("rag")
    assert w.expected_input_tokens == 8192 and w.expected_output_tokens == 300
    reqs = generate_requests(w, num_requests=4000, seed=2)
    assert np.mean([r.input_tokens for r in reqs]) == pytest.approx(8192, rel=0.01)
    assert np.mean([r.output_tokens for r in reqs]) == pytest.approx(300, rel=0.02)


def test_prefix_groups() -> None:
    w = Workload(name="p", input_len=LengthDist(mean=100), output_len=LengthDist(mean=10),
                 arrival=ArrivalSpec(kind="poisson", rate_rps=10),
                 prefix=PrefixSpec(num_groups=5, prefix_tokens=40, fraction=0.6))
    reqs = generate_requests(w, num_requests=20_000, seed=4)
    with_prefix = [r for r in reqs if r.prefix_group >= 0]
    assert len(with_prefix) / len(reqs) == pytest.approx(0.6, abs=0.02)
    assert {r.prefix_group for r in with_prefix} == set(range(5))
    assert all(r.prefix_tokens == 40 and r.input_tokens == 140 for r in with_prefix)
    assert all(r.prefix_tokens == 0 and r.input_tokens == 100 for r in reqs if r.prefix_group < 0)


def test_multi_turn_history() -> None:
    w = Workload(name="mt", input_len=LengthDist(kind="uniform", low=10, high=50),
                 output_len=LengthDist(kind="uniform", low=5, high=20),
                 arrival=ArrivalSpec(kind="poisson", rate_rps=4), turns=3, think_time_s=1.0,
                 prefix=PrefixSpec(num_groups=1, prefix_tokens=100))
    reqs = generate_requests(w, num_requests=600, seed=9)
    convs: dict[int, list] = {}
    for r in reqs:
        convs.setdefault(r.conversation, []).append(r)
    complete = [c for c in convs.values() if len(c) == 3]
    assert len(complete) > 150
    for turns in complete:
        turns.sort(key=lambda r: r.turn)
        assert [r.turn for r in turns] == [0, 1, 2]
        assert turns[0].history_tokens == 0
        for prev, cur in zip(turns, turns[1:]):
            assert cur.arrival_s > prev.arrival_s
            # turn k's prompt = everything of turn k-1 (prompt + answer) + a new message
            new = cur.input_tokens - (prev.input_tokens + prev.output_tokens)
            assert 10 <= new <= 50
            assert cur.history_tokens == prev.history_tokens + (prev.input_tokens - 100 - prev.history_tokens) \
                + prev.output_tokens
    # request rate stays the offered rate: conversations start at rate / turns
    long = generate_requests(w, duration_s=600.0, seed=9)
    assert len(long) == pytest.approx(4 * 600, rel=0.08)


def test_priorities_and_adapters_by_share() -> None:
    w = Workload(name="pa", input_len=LengthDist(mean=10), output_len=LengthDist(mean=10),
                 priorities=((0, 0.2), (1, 0.8)), adapters=(("a", 1.0), ("b", 3.0)))
    reqs = generate_requests(w, num_requests=20_000, seed=1)
    assert np.mean([r.priority == 0 for r in reqs]) == pytest.approx(0.2, abs=0.015)
    assert np.mean([r.adapter == "b" for r in reqs]) == pytest.approx(0.75, abs=0.015)
    # independent streams: changing the shares does not move the arrivals
    other = generate_requests(replace(w, priorities=((0, 0.5), (1, 0.5))), num_requests=20_000, seed=1)
    assert [r.arrival_s for r in other] == [r.arrival_s for r in reqs]


@pytest.mark.parametrize("dist,mean,std", [
    (LengthDist(kind="lognormal", mean=300, std=450), 300, 450),
    (LengthDist(kind="normal", mean=1000, std=100), 1000, 100),
    (LengthDist(kind="uniform", low=100, high=300), 200, math.sqrt((201**2 - 1) / 12)),
])
def test_length_moments(dist: LengthDist, mean: float, std: float) -> None:
    x = dist.sample(np.random.default_rng(0), 200_000)
    assert x.dtype.kind == "i"
    assert x.mean() == pytest.approx(mean, rel=0.02)
    assert x.std() == pytest.approx(std, rel=0.04)


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(["fixed", "uniform", "normal", "lognormal"]),
       mean=st.floats(1, 5000), std=st.floats(0, 5000),
       low=st.integers(1, 100), span=st.integers(0, 5000), seed=st.integers(0, 2**32 - 1))
def test_lengths_always_within_bounds(kind: str, mean: float, std: float, low: int, span: int, seed: int) -> None:
    d = LengthDist(kind=kind, mean=mean, std=std, low=low, high=low + span)  # type: ignore[arg-type]
    x = d.sample(np.random.default_rng(seed), 500)
    assert len(x) == 500 and x.min() >= low and x.max() <= low + span


def test_empirical_from_files(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("# lengths\n10\n20\n\n30\n")
    (tmp_path / "l.csv").write_text("prompt_tokens,completion_tokens\n5,50\n7,70\n")
    (tmp_path / "l.jsonl").write_text('{"input_tokens": 3, "output_tokens": 9}\n{"input_tokens": 4, "output_tokens": 8}\n')
    assert read_lengths(tmp_path / "l.txt") == (10, 20, 30)
    assert read_lengths(tmp_path / "l.csv", column="completion_tokens") == (50, 70)
    assert read_lengths(tmp_path / "l.csv") == (5, 7)
    assert read_lengths(tmp_path / "l.jsonl", column="output_tokens") == (9, 8)
    d = empirical_from_file(tmp_path / "l.txt")
    x = d.sample(np.random.default_rng(0), 3000)
    assert set(np.unique(x)) == {10, 20, 30}
    (tmp_path / "bad.txt").write_text("10\nabc\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2"):
        read_lengths(tmp_path / "bad.txt")
    with pytest.raises(ConfigError, match="no column 'x'"):
        read_lengths(tmp_path / "l.csv", column="x")


def test_workload_file_with_empirical_lengths(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("100\n200\n")
    (tmp_path / "w.yaml").write_text(
        "input_len: {kind: empirical, file: in.txt}\noutput_len: 64\n"
        "arrival: {kind: gamma, rate_rps: 2, burstiness: 0.5}\nslo: ttft_p99=1s\n")
    w = load_workload(tmp_path / "w.yaml")
    assert w.name == "w" and w.input_len.values == (100, 200) and w.slo.targets[0].key == "ttft_p99"
    assert get_workload(str(tmp_path / "w.yaml")) == w
    (tmp_path / "bad.yaml").write_text("arrival: {kind: weibull}\n")
    with pytest.raises(ConfigError, match="weibull"):
        load_workload(tmp_path / "bad.yaml")


def test_presets_complete_and_sourced() -> None:
    names = [w.name for w in list_workloads()]
    assert names == ["chat", "rag", "code", "summarization", "agentic", "offline"]
    for w in list_workloads():
        assert w.source and w.arrival.rate_rps > 0
    assert get_workload("agentic").turns > 1
    with pytest.raises(ConfigError, match="known: chat, rag"):
        get_workload("chatt")


def test_parse_slo() -> None:
    slo = parse_slo("ttft_p95=2s, tpot_p95=50ms,e2e_p99=10s,itl_p99.9=300us")
    assert [(t.metric, t.percentile, t.threshold_s) for t in slo.targets] == [
        ("ttft", 95.0, 2.0), ("tpot", 95.0, 0.05), ("e2e", 99.0, 10.0), ("itl", 99.9, 300e-6)]
    assert slo.as_text() == "ttft_p95=2s,tpot_p95=50ms,e2e_p99=10s,itl_p99.9=300us"
    assert parse_slo(slo.as_text()) == slo


@pytest.mark.parametrize("text,needle", [
    ("ttft_p95=2", "ttft_p95=2"),
    ("ttft=2s", "ttft=2s"),
    ("latency_p95=2s", "unknown metric 'latency'"),
    ("ttft_p95=2h", "unknown unit 'h'"),
    ("ttft_p95=2s,ttft_p95=3s", "given twice"),
    ("ttft_p0=2s", "percentile"),
    ("", "empty SLO"),
])
def test_parse_slo_errors_name_term_and_form(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_slo(text)
    assert needle in str(e.value)
    if text:
        assert "expected" in str(e.value) or "twice" in str(e.value)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["constant", "poisson", "gamma"]), rate=st.floats(0.1, 200),
       burst=st.floats(0.1, 5), turns=st.integers(1, 4), n=st.integers(1, 300),
       groups=st.integers(0, 3), seed=st.integers(0, 2**31))
def test_request_list_invariants(kind: str, rate: float, burst: float, turns: int, n: int,
                                 groups: int, seed: int) -> None:
    w = Workload(name="h", input_len=LengthDist(kind="uniform", low=1, high=50),
                 output_len=LengthDist(kind="uniform", low=1, high=20),
                 arrival=ArrivalSpec(kind=kind, rate_rps=rate, burstiness=burst),  # type: ignore[arg-type]
                 prefix=PrefixSpec(num_groups=groups, prefix_tokens=7), turns=turns, think_time_s=0.5)
    reqs = generate_requests(w, num_requests=n, seed=seed)
    assert len(reqs) == n
    assert len({r.id for r in reqs}) == n
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:]))
    for r in reqs:
        assert 1 <= r.input_tokens - r.prefix_tokens - r.history_tokens <= 50
        assert (r.prefix_group >= 0) == (r.prefix_tokens == 7)
        assert (r.conversation >= 0) == (turns > 1)
    assert generate_requests(w, num_requests=n, seed=seed) == reqs
