"""Property: whatever the flags and files, a command exits 0, 1 or 2 — never with a
traceback — and leaves no half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from servelab.cli import app

_GOOD_NUM = st.sampled_from(["1", "2", "4", "0.5", "7"])
_BAD_NUM = st.sampled_from(["-1", "0", "3.7", "nan", "inf", "-inf", "1e12", "1e-300", "abc", "",
                            "99999999999999999999"])
NUM = st.one_of(_GOOD_NUM, _GOOD_NUM, _BAD_NUM)             # two parts valid, one part not
_JUNK = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def _word(*good: str):
    return st.one_of(st.sampled_from(good), st.sampled_from(good), _JUNK)


WORD = _word("x", "")
MODEL, GPU = _word("llama-3.1-8b", "qwen2.5-7b"), _word("h100-sxm", "h200", "a100-80g")
FILE_BODY = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                 max_leaves=8).map(lambda o: json.dumps(o)),
    st.sampled_from(['{"id": "r", "arrival_s": 0, "input_tokens": 1}\n', "name: x\nscenarios: {}\nclaims: []\n",
                     "{}", "[]", ""]),
)
_SCENARIO = (Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "llama70b-fp8-h100.yaml").read_text()
SCENARIO_FILE = st.one_of(st.just(_SCENARIO), st.just(_SCENARIO), FILE_BODY)
# where an output goes: a new path, an existing folder, an existing regular file, a FIFO,
# a path below a regular file
OUT = st.sampled_from(["new", "dir", "file", "fifo", "under-file"])

COMMANDS = {
    "estimate": {"--model": MODEL, "--gpu": GPU, "--tp": NUM, "--pp": NUM, "--dtype": _word("bf16", "fp8"),
                 "--kv-dtype": _word("bf16", "fp8"), "--input": NUM, "--output": NUM, "--engine": _word("vllm"), "--gpu-memory-utilization": NUM,
                 "--max-num-seqs": NUM, "--max-num-batched-tokens": NUM},
    "simulate": {"--model": MODEL, "--gpu": GPU, "--workload": _word("chat", "rag"), "--rate": NUM,
                 "--duration": NUM, "--replicas": NUM, "--tp": NUM, "--max-queue": NUM,
                 "--router": _word("round_robin", "least_loaded"), "--timeout": NUM, "--max-num-seqs": NUM,
                 "--seed": NUM, "--slo": _word("ttft_p95<2s", "tpot_p50<50ms"), "--out": OUT},
    "bench": {"--base-url": _word("http://127.0.0.1:9", "http://127.0.0.1:9/v1", "127.0.0.1:9"), "--request-rate": NUM, "--num-prompts": NUM, "--max-concurrency": NUM,
              "--timeout": NUM, "--burstiness": NUM, "--random-input-len": NUM, "--random-output-len": NUM,
              "--duration": NUM, "--extra-body": FILE_BODY.map(lambda b: b if isinstance(b, str) else "x"),
              "--header": _word("X-A: b", "bad"), "--dataset": FILE_BODY, "--max-failure-rate": NUM, "--workers": NUM,
              "--out": OUT},
    "report": {"_arg": FILE_BODY, "--html": OUT},
    "compare": {"_arg": FILE_BODY, "--confidence": NUM, "--resamples": NUM, "--html": OUT},
    "decide": {"_arg": FILE_BODY, "--ledger": FILE_BODY},
    "calibrate": {"_arg": FILE_BODY, "--model": MODEL, "--gpu": GPU, "--holdout": NUM, "--out": OUT},
    "kernels report": {"_arg": FILE_BODY, "--html": OUT},
    "ledger runs": {"--ledger": FILE_BODY},
    "deploy render": {"_arg": SCENARIO_FILE, "--target": _word("kubernetes", "prometheus", "grafana", "ray-serve"),
                      "--out": OUT, "--set": _word("autoscaler.max_replicas=8", "x=y")},
}


def _materialize(flag: str, value, work: Path, i: int) -> str:
    """Turn a drawn value into the command-line string (writing files as needed)."""
    if value in ("new", "dir", "file", "fifo", "under-file") and flag in ("--out", "--html"):
        p = work / f"out{i}"
        if value == "dir":
            p.mkdir()
        elif value == "file":
            p.write_text("previous content")
        elif value == "fifo":
            os.mkfifo(p)
        elif value == "under-file":
            p.write_text("x")
            p = p / "below"
        return str(p)
    if flag in ("_arg", "--dataset", "--ledger"):
        p = work / f"in{i}{'.jsonl' if flag == '--dataset' else ''}"
        p.write_bytes(value if isinstance(value, bytes) else value.encode())
        return str(p)
    return value


def _snapshot(work: Path) -> dict[str, bytes | None]:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in work.rglob("*")
            if not p.is_fifo()}


@st.composite
def command_lines(draw):
    name = draw(st.sampled_from(sorted(COMMANDS)))
    flags = COMMANDS[name]
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), unique=True, max_size=4))
    if "_arg" in flags and "_arg" not in chosen:
        chosen.append("_arg")
    return name, [(f, draw(flags[f])) for f in chosen]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_cli_never_tracebacks_and_never_leaves_partial_files(cmd) -> None:
    name, flags = cmd
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        args: list[str] = name.split()
        positional = []
        for i, (flag, value) in enumerate(flags):
            s = _materialize(flag, value, work, i)
            if flag == "_arg":
                positional.append(s)
            else:
                args += [flag, s]
        if name == "bench":
            args += ["--ready-timeout", "0.2", "--model", "m", "--scrape-interval", "0"]
            if "--base-url" not in dict(flags):
                args += ["--base-url", "http://127.0.0.1:9"]
        if name == "deploy render":
            for req, default in (("--target", "kubernetes"), ("--out", str(work / "deploy-out"))):
                if req not in dict(flags):
                    args += [req, default]
        if name in ("decide", "ledger runs") and "--ledger" not in dict(flags):
            args += ["--ledger", str(work / "ledger.sqlite")]
        before = _snapshot(work)
        r = CliRunner().invoke(app, args + positional, catch_exceptions=True)
        shown = f"{args + positional}\n{r.output[-2000:]}"
        assert r.exit_code in (0, 1, 2), shown
        assert r.exception is None or isinstance(r.exception, SystemExit), (shown, repr(r.exception))
        assert "Traceback" not in r.output, shown
        assert "SERVELAB_DEBUG" not in r.output, shown      # no error fell through to the last guard
        after = _snapshot(work)
        assert not [p for p in after if p.endswith(".tmp")], shown          # no temporary left over
        for p, content in after.items():
            if content is None or p in before and before[p] == content:
                continue
            if p.endswith(".json"):                                          # whatever was written is whole
                json.loads(content)
            if p.endswith(".html"):
                assert content.rstrip().endswith(b"</html>"), shown
        for p, content in before.items():                                    # inputs and refused outputs kept
            if content is not None and r.exit_code != 0 and "out" in Path(p).name:
                assert after.get(p) == content, shown
