"""Out-of-sample check of the roofline model against other published serving results.

Data: ``benchmarks/data/validation_published.csv`` (provenance in
``benchmarks/data/README.md``) — numbers read from sources other than TensorRT-LLM's
performance overview (the calibration set): NVIDIA NIM benchmark tables (genai-perf at
fixed concurrency), LMDeploy's A100 static-inference tables, vLLM's CI latency tests
and two TensorRT-LLM blog posts (static batches). Every row is predicted with the
SHIPPED ``Efficiency`` defaults; nothing here is fitted.

Metrics and how each is predicted (I input, O output tokens, C concurrency):

* ``output_tok_s`` — a closed loop of C clients (NIM, LMDeploy): steady state of
  :func:`offline_throughput` with ``max_num_seqs = C`` (the batch is the smaller of C
  and what the KV cache holds for whole requests).
* ``itl_ms`` — mean inter-token latency (NIM, genai-perf): the steady-state step seen
  by one decoding request — the C-client mix of decode rows plus the prefill rows of the
  *other* C−1 clients (``p·(C−1)/C``); at C = 1 a pure decode step. Median per-token
  latency (LMDeploy ``50%``): a pure decode step of the batch (prefill steps are a
  minority of an O = 2048 run). Context = I + O/2.
* ``ttft_ms`` — a lone request: :func:`ttft_s`.
* ``batch_latency_ms`` (vLLM latency test) and ``static_out_tok_s_per_gpu`` (TensorRT-LLM
  blogs, ``out_tps = O·B/total_latency/tp``) — a static batch of B: one prefill step of
  B·I tokens, then O − 1 decode steps whose contexts grow from I + 1 to I + O − 1,
  summed in closed form with :meth:`StepModel.decode_affine`.

Engine memory semantics (how much KV cache the engine had):

* TensorRT-LLM (and NIM's TensorRT-LLM profiles): ``kv_cache_free_gpu_mem_fraction``
  of the memory FREE after weights, activations and runtime buffers; default 0.9
  (TensorRT-LLM ``KvCacheConfig.free_gpu_memory_fraction``; neither source states
  another value).
* vLLM: ``gpu_memory_utilization`` 0.9 of the device (vLLM's default; the CI latency
  test runs a batch of 8, far below any KV limit).
* LMDeploy: the table's ``mem(GB)`` column is the engine's measured footprint per GPU;
  it is used as the usable memory (read as 1e9 bytes).
* Device capacity: what the engine sees (``GPU.reported_memory_bytes``, nvidia-smi's
  memory.total) — see ``calibrate.engine_gpu``.

    python benchmarks/validate.py --global-defaults   # print per row + MdAPE, write benchmarks/results/validation.json

**Every held-out row** (the default, ``python benchmarks/validate.py``): every row whose
``role`` is ``validate`` in every data file, each GPU with its family's shipped
efficiencies (:mod:`servelab.perf.families`) under its engine; MdAPE overall and per
category (AMD, Blackwell FP4, MoE, long context, vLLM/SGLang, family, source, metric),
leave-one-out coverage of the 80 % error band; writes ``results/validation_all.json`` and
``src/servelab/perf/data/bands.json``. ``--write-docs`` then rewrites the tables between
the markers in README.md and docs/calibration.md.

**Per engine** (``--per-engine``): every row predicted with the efficiency of the
engine profile that ran it (:mod:`servelab.perf.engines`: vLLM rows with ``vllm``,
TensorRT-LLM/NIM and LMDeploy's C++ TurboMind with ``trtllm``), plus the held-out vLLM
rows of ``benchmarks/data/vllm_published.csv``. **vLLM step-overhead fit**
(``--fit-vllm``): the closed-form least squares of :func:`fit_step_overhead` on the
DESIGNATED fit rows (source ``vllm-ci``, H200) and the error on the held-out vLLM rows
(source ``vllm-ci-h100``); never refitted on them.

    python benchmarks/validate.py --per-engine   # writes benchmarks/results/validation_engines.json
    python benchmarks/validate.py --fit-vllm     # prints the fit and the held-out errors
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import calibrate  # noqa: E402  (same folder: the TensorRT-LLM engine memory model)

from servelab.catalog import get_gpu, get_model  # noqa: E402
from servelab.perf import Deployment, Efficiency, StepBatch, StepModel, memory_budget  # noqa: E402
from servelab.perf.answers import offline_throughput, ttft_s  # noqa: E402
from servelab.perf.engines import ENGINE_PROFILES, EngineProfile, get_engine  # noqa: E402

# `make bench` writes to $SERVELAB_BENCH_OUT (outside tracked files); `make bench-record`
# copies those results here, into the committed benchmarks/results/.
_RESULTS = Path(__import__("os").environ.get("SERVELAB_BENCH_OUT") or Path(__file__).resolve().parent / "results")

DATA = HERE / "data" / "validation_published.csv"
VLLM_DATA = HERE / "data" / "vllm_published.csv"     # held-out vLLM rows (never fitted)
SERVING_DATA = HERE / "data" / "published_serving.csv"  # MI300X (OCI) and SGLang (InferenceX) rows
OUT = _RESULTS / "validation.json"
OUT_ENGINES = _RESULTS / "validation_engines.json"
VLLM_FIT_SOURCE = "vllm-ci"          # designated fit rows for the vLLM step overhead
# Which profile runs a row: vLLM rows the vllm profile; TensorRT-LLM, NIM (TensorRT-LLM
# backend) and LMDeploy TurboMind (a C++ runtime like TensorRT-LLM's) the trtllm profile.
# SGLang (Python scheduler, CUDA-graph decode, like vLLM) has no profile of its own: the vllm one.
ROW_ENGINE_PROFILE = {"vllm": "vllm", "trtllm": "trtllm", "nim-trtllm": "trtllm",
                      "lmdeploy-turbomind": "trtllm", "sglang": "vllm"}
# SGLang sizes its KV pool from mem_fraction_static of the whole device; no default is
# assumed here beyond vLLM's 0.9 (the InferenceX rows run at concurrency <= 64, far
# below any KV limit of DeepSeek-V3 on 8 x H200).
SGLANG_GPU_MEMORY_UTILIZATION = 0.9

# TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction default: "The default for
# free_gpu_memory_fraction is 0.9, which means TensorRT LLM will try to allocate 90% of free
# GPU memory for KV cache" (nvidia.github.io/TensorRT-LLM/examples/kvcacheconfig.html).
TRTLLM_KV_FREE_FRACTION = 0.9
# vLLM's gpu_memory_utilization default of the v0.5–v0.6 era (docs.vllm.ai engine args;
# later releases raised it to 0.92). Irrelevant for the batch-8 CI latency rows.
VLLM_GPU_MEMORY_UTILIZATION = 0.9
MAX_NUM_BATCHED_TOKENS = 8192      # TensorRT-LLM max_num_tokens default; vLLM chunked-prefill budget

INT_FIELDS = ("tp", "isl", "osl", "concurrency")


def load_rows(path: Path = DATA) -> list[dict]:
    rows = []
    with path.open() as f:
        for r in csv.DictReader(f):
            for k in INT_FIELDS:
                r[k] = int(r[k])
            r["value"] = float(r["value"])
            r["mem_gb"] = float(r["mem_gb"]) if r["mem_gb"] else None
            rows.append(r)
    return rows


def deployment(row: dict, eff: Efficiency) -> tuple[Deployment, object]:
    """The row's deployment and memory budget under its engine's memory semantics."""
    gpu = calibrate.engine_gpu(get_gpu(row["gpu"]))
    base = Deployment(model=get_model(row["model"]), gpu=gpu, tp=row["tp"],
                      weight_dtype=row["dtype"], kv_dtype=row["kv_dtype"],
                      max_num_seqs=max(1, row["concurrency"]),
                      max_num_batched_tokens=MAX_NUM_BATCHED_TOKENS, efficiency=eff)
    engine = row["engine"]
    if engine in ("trtllm", "nim-trtllm"):
        dep = calibrate.trtllm_deployment(base, TRTLLM_KV_FREE_FRACTION)
    elif engine == "lmdeploy-turbomind":
        dep = dataclasses.replace(base, gpu_memory_utilization=min(1.0, row["mem_gb"] * 1e9 / gpu.memory_bytes))
    elif engine == "vllm":
        dep = dataclasses.replace(base, gpu_memory_utilization=VLLM_GPU_MEMORY_UTILIZATION)
    elif engine == "sglang":
        dep = dataclasses.replace(base, gpu_memory_utilization=SGLANG_GPU_MEMORY_UTILIZATION)
    else:
        raise ValueError(f"unknown engine {engine!r}; known: trtllm, nim-trtllm, lmdeploy-turbomind, vllm, sglang")
    return dep, memory_budget(dep)


def _prefill_rows(rows: int, i: int) -> tuple[tuple[int, int], ...]:
    """``rows`` prefill tokens as whole prompts of ``i`` plus one partial chunk at its mean
    position (the same steady-state picture as ``offline_throughput``)."""
    if rows <= 0:
        return ()
    whole, rest = divmod(rows, i)
    return ((i, 0),) * whole + (((rest, (i - rest) // 2),) if rest else ())


def _static_batch_s(sm: StepModel, b: int, i: int, o: int) -> float:
    """One prefill step of b·i tokens, then o − 1 decode steps (contexts i+1 … i+o−1)."""
    prefill = sm.step_time_s(StepBatch(prefill_chunks=((i, 0),) * b))
    k = o - 1
    if k <= 0:
        return prefill
    t0, t1 = sm.decode_affine(b)
    return prefill + k * t0 + t1 * b * (k * i + k * (k + 1) / 2)


def predict(row: dict, eff: Efficiency | None = None) -> dict:
    """Predicted value of the row's metric (same unit as the published one) and context."""
    eff = eff or Efficiency()
    dep, budget = deployment(row, eff)
    sm = StepModel(dep)
    i, o, c, metric = row["isl"], row["osl"], row["concurrency"], row["metric"]
    info = {"kv_capacity_tokens": budget.kv_capacity_tokens, "feasible": budget.feasible}
    if not budget.feasible:
        return {**info, "predicted": 0.0, "note": budget.reason}
    if metric == "output_tok_s":
        ot = offline_throughput(sm, budget, i, o)
        return {**info, "predicted": ot.output_tokens_per_s, "batch": ot.concurrency,
                "limited_by": ot.limited_by}
    if metric == "itl_ms":
        ot = offline_throughput(sm, budget, i, o)
        b = ot.concurrency
        ctx = int(round(b * (i + o / 2)))
        if row["source"] == "lmdeploy":     # median per-token latency: a pure decode step
            t = sm.step_time_s(StepBatch(num_decode=b, decode_context_sum=ctx))
        else:                               # mean ITL: decode rows + the others' prefill rows
            p_others = int(round(ot.prefill_rows * (b - 1) / b))
            t = sm.step_time_s(StepBatch(prefill_chunks=_prefill_rows(p_others, i),
                                         num_decode=b, decode_context_sum=ctx))
        return {**info, "predicted": 1e3 * t, "batch": b}
    if metric == "ttft_ms":
        return {**info, "predicted": 1e3 * ttft_s(sm, i)}
    if metric in ("batch_latency_ms", "static_out_tok_s_per_gpu"):
        t = _static_batch_s(sm, c, i, o)
        kv_ok = budget.max_concurrency(i + o) >= c
        info = {**info, "kv_holds_batch": kv_ok}
        if metric == "batch_latency_ms":
            return {**info, "predicted": 1e3 * t}
        return {**info, "predicted": o * c / t / dep.tp}
    raise ValueError(f"unknown metric {metric!r}; known: output_tok_s, itl_ms, ttft_ms, "
                     "batch_latency_ms, static_out_tok_s_per_gpu")


def profile_for(row: dict) -> EngineProfile:
    """The engine profile that models the row's engine."""
    try:
        return get_engine(ROW_ENGINE_PROFILE[row["engine"]])
    except KeyError:
        raise ValueError(f"no profile for engine {row['engine']!r}; known: "
                         f"{', '.join(ROW_ENGINE_PROFILE)}") from None


def fit_step_overhead(rows: list[dict], base: Efficiency | None = None) -> float:
    """Closed-form least squares (relative errors) of a per-step overhead ``s`` on static-
    batch latency rows: ``L_i ≈ P_i + n_i·s`` with ``P_i`` the prediction at ``s = 0`` and
    ``n_i = O`` engine steps (one prefill step plus O − 1 decode steps)::

        s = Σ n_i (L_i − P_i) / L_i²  /  Σ n_i² / L_i²
    """
    base = base or Efficiency()
    zero = dataclasses.replace(base, step_overhead_s=0.0, seq_overhead_s=0.0)
    num = den = 0.0
    for r in rows:
        if r["metric"] != "batch_latency_ms":
            raise ValueError(f"fit_step_overhead takes batch_latency_ms rows, got {r['metric']!r}")
        p_s = predict(r, zero)["predicted"] / 1e3
        l_s, n = r["value"] / 1e3, r["osl"]
        num += n * (l_s - p_s) / l_s ** 2
        den += n * n / l_s ** 2
    return num / den


def vllm_fit_report() -> dict:
    """The vLLM step-overhead fit on the designated rows and its error on held-out rows."""
    fit_rows = [r for r in load_rows() if r["source"] == VLLM_FIT_SOURCE]
    held = load_rows(VLLM_DATA)
    s = fit_step_overhead(fit_rows)
    shipped = get_engine("vllm").efficiency
    out: dict = {"fitted_step_overhead_s": s, "shipped_step_overhead_s": shipped.step_overhead_s,
                 "fit_rows": [], "held_out_rows": []}
    for key, rows in (("fit_rows", fit_rows), ("held_out_rows", held)):
        for r in rows:
            with_p = predict(r, shipped)["predicted"]
            without = predict(r, get_engine("trtllm").efficiency)["predicted"]
            out[key].append({"model": r["model"], "gpu": r["gpu"], "tp": r["tp"], "published": r["value"],
                             "predicted_vllm": with_p, "predicted_trtllm": without,
                             "error_vllm": (with_p - r["value"]) / r["value"],
                             "error_trtllm": (without - r["value"]) / r["value"]})
    for key in ("fit_rows", "held_out_rows"):
        rs = out[key]
        out[key + "_mdape_pct"] = {p: 100 * statistics.median(abs(x[f"error_{p}"]) for x in rs)
                                   for p in ("vllm", "trtllm")}
    return out


def run_engines() -> tuple[list[dict], list[dict], dict]:
    """Every row (validation set + held-out vLLM rows) with its engine's profile."""
    rows = load_rows() + load_rows(VLLM_DATA)
    results = [{**predict(r, profile_for(r).efficiency), "profile": profile_for(r).name} for r in rows]
    return rows, results, summarize(rows, [x["predicted"] for x in results])


def ape(pred: float, pub: float) -> float:
    return abs(pred - pub) / pub


def mdape(pairs: list[tuple[float, float]]) -> float:
    return 100 * statistics.median(ape(p, q) for p, q in pairs) if pairs else float("nan")


def summarize(rows: list[dict], preds: list[float]) -> dict:
    """MdAPE per source×metric, per source, per metric and over all rows."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for r, p in zip(rows, preds):
        for key in ("all", f"source:{r['source']}", f"metric:{r['metric']}",
                    f"{r['source']}:{r['metric']}"):
            groups.setdefault(key, []).append((p, r["value"]))
    out = {}
    for k, v in groups.items():
        signed = statistics.median((p - q) / q for p, q in v)
        out[k] = {"rows": len(v), "mdape_pct": round(mdape(v), 2),
                  "median_signed_error_pct": round(100 * signed, 2)}
    return out


def run(eff: Efficiency | None = None) -> tuple[list[dict], list[dict], dict]:
    rows = load_rows()
    results = [predict(r, eff) for r in rows]
    summary = summarize(rows, [x["predicted"] for x in results])
    return rows, results, summary


# -- every held-out row, each GPU with its family's fit ------------------------------------
OUT_ALL = _RESULTS / "validation_all.json"
LONG_CONTEXT_TOKENS = 8192
CATEGORIES = ("all", "amd", "blackwell-fp4", "moe", "long-context", "vllm-sglang")


def categories(o) -> list[str]:
    """Report categories of one observation (``calibrate_families.Obs``)."""
    r = o.row
    cats = ["all", f"family:{o.family}", f"metric:{r.get('metric', 'output_tok_s')}"]
    if o.family == "cdna3":
        cats.append("amd")
    if r["gpu"] == "b200" and r["dtype"] == "fp4":
        cats.append("blackwell-fp4")
    if get_model(r["model"]).moe is not None:
        cats.append("moe")
    if r["isl"] >= LONG_CONTEXT_TOKENS:
        cats.append("long-context")
    if r.get("engine") in ("vllm", "sglang"):
        cats.append("vllm-sglang")
    cats.append("source:" + (r["source"] if o.kind == "serving" else f"trtllm-perf-overview-{r['trtllm_version']}"))
    return cats


def band_key(o) -> dict:
    """What the error band of a prediction is keyed on (servelab.perf.band.BandKey fields)."""
    from servelab.perf.band import metric_kind
    r = o.row
    engine = "trtllm" if o.kind == "trtllm" else profile_for(r).name
    return {"family": o.family, "metric": metric_kind(r.get("metric", "output_tok_s")),
            "moe": get_model(r["model"]).moe is not None, "engine": engine}


def run_all(role: str = "validate") -> tuple[list, list[float], dict]:
    """Every row with ``role`` in every data file, predicted with its GPU family's shipped
    efficiencies under its engine; MdAPE per category."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import calibrate_families as cf
    from servelab.perf.families import family_efficiency
    obs = [o for o in cf.observations() if o.role == role]
    preds = [cf.predict(o, family_efficiency(get_gpu(o.row["gpu"]))) for o in obs]
    groups: dict[str, list[tuple[float, float]]] = {}
    for o, p in zip(obs, preds):
        for c in categories(o):
            groups.setdefault(c, []).append((p, o.published))
    summary = {}
    for k, v in sorted(groups.items()):
        summary[k] = {"rows": len(v), "mdape_pct": round(mdape(v), 1),
                      "median_signed_error_pct": round(100 * statistics.median((p - q) / q for p, q in v), 1)}
    return obs, preds, summary


def band_residuals(obs, preds) -> dict[str, list[float]]:
    """ln(published / predicted) of every row, grouped by its band key."""
    from servelab.perf.band import BandKey
    table: dict[str, list[float]] = {}
    for o, p in zip(obs, preds):
        if p > 0:
            table.setdefault(BandKey(**band_key(o)).label(), []).append(round(math.log(o.published / p), 6))
    return table


def loo_coverage(obs, preds) -> dict:
    """Leave-one-out coverage of the 80 % band: each row's band is built from the other
    validation rows, and the row counts as covered when its published value lies inside."""
    from servelab.perf.band import BandKey, band_for
    table = band_residuals(obs, preds)
    hits: dict[str, list[bool]] = {}
    for o, p in zip(obs, preds):
        if p <= 0:
            continue
        k = BandKey(**band_key(o))
        own = round(math.log(o.published / p), 6)
        rest = dict(table)
        lst = list(rest[k.label()])
        lst.remove(own)
        rest[k.label()] = lst
        b = band_for(p, k, rest)
        inside = b.lo <= o.published <= b.hi
        for g in ("all", "calibrated" if b.calibrated else "uncalibrated", f"level:{b.level}"):
            hits.setdefault(g, []).append(inside)
    return {g: {"rows": len(v), "coverage_pct": round(100 * sum(v) / len(v), 1)} for g, v in sorted(hits.items())}


BANDS_OUT = HERE.parent / "src" / "servelab" / "perf" / "data" / "bands.json"
FAMILIES_JSON = HERE.parent / "src" / "servelab" / "perf" / "data" / "families.json"
README = HERE.parent / "README.md"
CALIBRATION_DOC = HERE.parent / "docs" / "calibration.md"
# block name -> files it appears in (between <!-- validate.py:NAME:begin/end --> markers)
DOC_BLOCKS = {"accuracy": (README, CALIBRATION_DOC), "families": (CALIBRATION_DOC,)}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- validate.py:{name}:begin -->", f"<!-- validate.py:{name}:end -->"


def families_table(table: dict) -> str:
    """The fitted efficiencies per family (from perf/data/families.json)."""
    from servelab.perf.families import FITTED_FIELDS
    g = table["global"]
    head = "| family | fit rows | " + " | ".join(FITTED_FIELDS) + " | fit-row mean abs log error (global → family) |"
    lines = [head, "|---|---:|" + "---:|" * len(FITTED_FIELDS) + "---:|",
             "| global fit | 131 | " + " | ".join(_fmt_field(k, g[k]) for k in FITTED_FIELDS) + " | |"]
    for fam, f in table["families"].items():
        lines.append(f"| {fam} | {f['fit_rows']} | "
                     + " | ".join(_fmt_field(k, f["raw"][k]) + ("" if f["raw"][k] == g[k] else " *")
                                  for k in FITTED_FIELDS)
                     + f" | {f.get('loss_global', '')} → {f.get('loss_fit', '')} |")
    lines.append("")
    lines.append("`*`: moved from the global fit. Written by `python benchmarks/validate.py --write-docs` "
                 "from `src/servelab/perf/data/families.json`.")
    return "\n".join(lines)


def _fmt_field(k: str, v: float) -> str:
    if k.endswith("_s"):
        return f"{v * 1e6:g} µs"
    return f"{v:g}"


def accuracy_table(result: dict) -> str:
    """The Markdown accuracy table written between the markers (from validation_all.json)."""
    s, cov = result["mdape"], result["coverage"]
    lines = ["| held-out rows | rows | MdAPE | median signed error |", "|---|---:|---:|---:|"]
    names = {"all": "all", "amd": "AMD (CDNA3)", "blackwell-fp4": "Blackwell FP4", "moe": "MoE",
             "long-context": f"long context (input ≥ {LONG_CONTEXT_TOKENS})",
             "vllm-sglang": "vLLM / SGLang"}
    for c in CATEGORIES:
        if c in s:
            v = s[c]
            lines.append(f"| {names[c]} | {v['rows']} | {v['mdape_pct']:.1f} % | {v['median_signed_error_pct']:+.1f} % |")
    for k in sorted(s):
        if k.startswith("family:"):
            v = s[k]
            lines.append(f"| family {k[7:]} | {v['rows']} | {v['mdape_pct']:.1f} % | {v['median_signed_error_pct']:+.1f} % |")
    if "fit_mdape" in result:
        v = result["fit_mdape"]
        lines.append(f"| *fit rows (for comparison)* | {v['rows']} | {v['mdape_pct']:.1f} % | "
                     f"{v['median_signed_error_pct']:+.1f} % |")
    c = cov["all"]
    lines.append("")
    lines.append(f"80 % error band, leave-one-out coverage on these rows: {c['coverage_pct']:.1f} % of {c['rows']}"
                 + "".join(f"; {g} {cov[g]['coverage_pct']:.1f} % of {cov[g]['rows']}"
                           for g in ("calibrated", "uncalibrated") if g in cov)
                 + ". Written by `python benchmarks/validate.py --write-docs`.")
    return "\n".join(lines)


def replace_between_markers(text: str, table: str, name: str = "accuracy") -> str:
    """``text`` with the block between the ``name`` markers replaced by ``table``."""
    begin, end = markers(name)
    a, b = text.find(begin), text.find(end)
    if a < 0 or b < a:
        raise ValueError(f"markers {begin} … {end} not found")
    return text[:a + len(begin)] + "\n" + table + "\n" + text[b:]


def between_markers(text: str, name: str) -> str:
    """The block between the ``name`` markers (without the surrounding newlines)."""
    begin, end = markers(name)
    a, b = text.find(begin), text.find(end)
    if a < 0 or b < a:
        raise ValueError(f"markers {begin} … {end} not found")
    return text[a + len(begin):b].strip("\n")


def doc_blocks() -> dict[str, str]:
    """What each generated block must contain, from the results files."""
    return {"accuracy": accuracy_table(json.loads(OUT_ALL.read_text())),
            "families": families_table(json.loads(FAMILIES_JSON.read_text()))}


def all_report() -> dict:
    obs, preds, summary = run_all()
    return {"what": "every held-out (role validate) row, each GPU with its family's shipped efficiencies",
            "data_sha256": {str(p.relative_to(HERE.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
                            for p in (calibrate.DATA, DATA, VLLM_DATA, SERVING_DATA)},
            "mdape": summary, "coverage": loo_coverage(obs, preds),
            "fit_mdape": run_all("fit")[2]["all"],
            "rows": [{"source": o.row.get("source", "trtllm-perf-overview"), "metric": o.row.get("metric", "output_tok_s"),
                      "model": o.row["model"], "gpu": o.row["gpu"], "tp": o.row["tp"], "isl": o.row["isl"],
                      "osl": o.row["osl"], "published": o.published, "predicted": round(p, 3)}
                     for o, p in zip(obs, preds)],
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    ap.add_argument("--device-memory", choices=("reported", "datasheet"), default=calibrate.DEVICE_MEMORY,
                    help="device capacity the engine starts from (default: %(default)s)")
    ap.add_argument("--efficiency", nargs="*", default=[], metavar="NAME=VALUE",
                    help="override Efficiency fields (e.g. to reproduce earlier defaults); "
                         "default: the shipped defaults")
    ap.add_argument("--per-engine", action="store_true",
                    help="predict each row with its engine's profile (servelab.perf.engines)")
    ap.add_argument("--fit-vllm", action="store_true",
                    help="fit vLLM's per-step overhead on the designated rows; report held-out errors")
    ap.add_argument("--held-out", action="store_true",
                    help="(the default) every validate row of every data file with per-family "
                         "efficiencies; writes results/validation_all.json and perf/data/bands.json")
    ap.add_argument("--global-defaults", action="store_true",
                    help="the 76 rows of validation_published.csv with the global defaults only "
                         "(writes results/validation.json)")
    ap.add_argument("--write-docs", action="store_true",
                    help="rewrite the accuracy tables in README.md and docs/calibration.md "
                         "from results/validation_all.json")
    args = ap.parse_args()
    calibrate.set_device_memory(args.device_memory)
    legacy = (args.global_defaults or args.efficiency or args.device_memory != calibrate.DEVICE_MEMORY
              or args.quiet)
    if args.held_out or not (legacy or args.write_docs or args.fit_vllm or args.per_engine):
        rep = all_report()
        for k, v in rep["mdape"].items():
            print(f"MdAPE {k:42s} {v['mdape_pct']:6.1f}%  (median signed {v['median_signed_error_pct']:+6.1f}%, "
                  f"{v['rows']} rows)")
        for k, v in rep["coverage"].items():
            print(f"80% band coverage {k:20s} {v['coverage_pct']:5.1f}%  ({v['rows']} rows)")
        OUT_ALL.write_text(json.dumps(rep, indent=1) + "\n")
        obs, preds, _ = run_all()
        BANDS_OUT.write_text(json.dumps({
            "what": "ln(published/predicted) of the held-out rows per (family/metric/dense|moe/engine); "
                    "written by benchmarks/validate.py --held-out",
            "residuals": dict(sorted(band_residuals(obs, preds).items()))}, indent=1) + "\n")
        print(f"wrote {OUT_ALL} and {BANDS_OUT}")
        return
    if args.write_docs:
        blocks = doc_blocks()
        for name, paths in DOC_BLOCKS.items():
            for path in paths:
                path.write_text(replace_between_markers(path.read_text(), blocks[name], name))
                print(f"wrote {name} table in {path}")
        return
    if args.fit_vllm:
        rep = vllm_fit_report()
        print(f"vLLM step overhead fitted on {len(rep['fit_rows'])} '{VLLM_FIT_SOURCE}' rows: "
              f"{1e3 * rep['fitted_step_overhead_s']:.3f} ms (shipped {1e3 * rep['shipped_step_overhead_s']:.3f} ms)")
        for key in ("fit_rows", "held_out_rows"):
            for x in rep[key]:
                print(f"{key:14s} {x['model']:14s} {x['gpu']:8s} TP{x['tp']} published {x['published']:8.1f} ms  "
                      f"vllm {x['predicted_vllm']:8.1f} ({100 * x['error_vllm']:+5.1f}%)  "
                      f"trtllm {x['predicted_trtllm']:8.1f} ({100 * x['error_trtllm']:+5.1f}%)")
            m = rep[key + "_mdape_pct"]
            print(f"{key:14s} MdAPE vllm {m['vllm']:.1f}%  trtllm {m['trtllm']:.1f}%")
        return
    if args.per_engine:
        rows, results, summary = run_engines()
        for k, v in sorted(summary.items()):
            print(f"MdAPE {k:42s} {v['mdape_pct']:6.1f}%  (median signed {v['median_signed_error_pct']:+6.1f}%, "
                  f"{v['rows']} rows)")
        OUT_ENGINES.parent.mkdir(parents=True, exist_ok=True)
        OUT_ENGINES.write_text(json.dumps({
            "what": "published serving results, each predicted with its engine's profile",
            "profiles": {k: p.to_dict() for k, p in ENGINE_PROFILES.items()},
            "vllm_fit": vllm_fit_report(), "mdape": summary,
            "rows": [{"source": r["source"], "engine": r["engine"], "metric": r["metric"], "model": r["model"],
                      "gpu": r["gpu"], "tp": r["tp"], "published": r["value"], "profile": x["profile"],
                      "predicted": round(x["predicted"], 3)} for r, x in zip(rows, results)],
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=1))
        print(f"wrote {OUT_ENGINES}")
        return
    t_start = time.time()
    eff = Efficiency(**{k: float(v) for k, v in (a.split("=", 1) for a in args.efficiency)})
    rows, results, summary = run(eff)
    if not args.quiet:
        print(f"{'source':11s} {'metric':24s} {'model':14s} {'gpu':8s} {'tp':>2s} {'dt':4s} "
              f"{'isl':>5s} {'osl':>5s} {'C':>4s} {'published':>10s} {'predicted':>10s} {'error':>7s}")
        for r, x in zip(rows, results):
            q, p = r["value"], x["predicted"]
            print(f"{r['source']:11s} {r['metric']:24s} {r['model']:14s} {r['gpu']:8s} {r['tp']:2d} "
                  f"{r['dtype']:4s} {r['isl']:5d} {r['osl']:5d} {r['concurrency']:4d} {q:10.2f} "
                  f"{p:10.2f} {100 * (p - q) / q:+6.1f}%")
        print()
    for k, v in sorted(summary.items()):
        print(f"MdAPE {k:42s} {v['mdape_pct']:6.1f}%  (median signed {v['median_signed_error_pct']:+6.1f}%, "
              f"{v['rows']} rows)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "servelab roofline vs published serving results other than TensorRT-LLM's perf overview",
        "data": str(DATA.relative_to(HERE.parent)),
        "data_sha256": hashlib.sha256(DATA.read_bytes()).hexdigest(),
        "efficiency": dataclasses.asdict(eff),
        "fitted_on_these_rows": False,
        "efficiency_is_default": eff == Efficiency(),
        "settings": {"trtllm_kv_free_fraction": TRTLLM_KV_FREE_FRACTION,
                     "vllm_gpu_memory_utilization": VLLM_GPU_MEMORY_UTILIZATION,
                     "max_num_batched_tokens": MAX_NUM_BATCHED_TOKENS,
                     "device_memory": calibrate.DEVICE_MEMORY},
        "mdape": summary,
        "rows": [{**{k: r[k] for k in ("source", "engine", "engine_version", "metric", "model", "gpu",
                                       "tp", "dtype", "kv_dtype", "isl", "osl", "concurrency", "unit")},
                  "published": r["value"],
                  **{k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v) for k, v in x.items()}}
                 for r, x in zip(rows, results)],
        "elapsed_s": round(time.time() - t_start, 2),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
