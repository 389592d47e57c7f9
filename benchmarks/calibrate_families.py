"""Fit the roofline's efficiencies per GPU family on the rows whose role is ``fit``.

Rows (``benchmarks/data/README.md``): the TensorRT-LLM perf-overview tables
(``trtllm_throughput.csv``) and the published serving results
(``validation_published.csv``, ``vllm_published.csv``, ``published_serving.csv``), each
with a ``role`` column. Only ``fit`` rows enter a fit; ``validate`` rows are read by
``benchmarks/validate.py`` alone. ``tests/test_perf_families.py`` checks that handing the
fitter the validate rows (or changing their values) changes no fitted parameter.

Each family (the GPU catalog's ``architecture``) is fitted by coordinate descent from
the global fit over ``calibrate.GRIDS``, minimising the mean |log(predicted/published)|
of its fit rows; every row is predicted under its own engine (a vLLM row keeps vLLM's
step overhead). The shipped values are shrunk toward the global fit
(:func:`servelab.perf.families.shrink`). Writes ``src/servelab/perf/data/families.json``.

    python benchmarks/calibrate_families.py
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import calibrate  # noqa: E402
import validate  # noqa: E402

from servelab.catalog import get_gpu  # noqa: E402
from servelab.perf import Efficiency  # noqa: E402
from servelab.perf.families import FAMILIES, FITTED_FIELDS, SHRINK_ROWS, shrink  # noqa: E402

OUT = HERE.parent / "src" / "servelab" / "perf" / "data" / "families.json"
DATA_FILES = (calibrate.DATA, validate.DATA, validate.VLLM_DATA, validate.SERVING_DATA)


@dataclass
class Obs:
    """One published number, ready to predict."""
    kind: str            # "trtllm" (perf-overview row) | "serving" (validation-format row)
    row: dict
    family: str
    role: str
    published: float
    prepared: object = None


def observations() -> list[Obs]:
    out = []
    for r in calibrate.load_rows():
        out.append(Obs("trtllm", r, get_gpu(r["gpu"]).architecture, r["role"], r["output_tokens_per_s"],
                       calibrate.prepare(r)))
    for path in (validate.DATA, validate.VLLM_DATA, validate.SERVING_DATA):
        for r in validate.load_rows(path):
            out.append(Obs("serving", r, get_gpu(r["gpu"]).architecture, r["role"], r["value"]))
    return out


def predict(o: Obs, eff: Efficiency) -> float:
    """Prediction of ``o`` with kernel efficiencies ``eff`` under the row's engine."""
    if o.kind == "trtllm":
        return calibrate.predict(o.prepared, o.row, eff)
    return validate.predict(o.row, validate.profile_for(o.row).apply(eff))["predicted"]


def _loss(obs: list[Obs], eff: Efficiency) -> float:
    return calibrate.log_loss([predict(o, eff) for o in obs], [o.published for o in obs])


def fit_family(obs: list[Obs], start: Efficiency, passes: int = 3) -> Efficiency:
    """Coordinate descent over ``calibrate.GRIDS`` (fitted fields only) from ``start``."""
    eff, best = start, _loss(obs, start)
    for _ in range(passes):
        changed = False
        for name in FITTED_FIELDS:
            for v in calibrate.GRIDS[name]:
                cand = dataclasses.replace(eff, **{name: v})
                val = _loss(obs, cand)
                if val < best - 1e-12:
                    best, eff, changed = val, cand, True
        if not changed:
            break
    return eff


def fit_families(obs: list[Obs], families=FAMILIES) -> dict:
    """Per family: the raw fit on its ``fit`` rows, their count and sources. Rows whose
    role is not ``fit`` are dropped here, before anything is computed."""
    fit_obs = [o for o in obs if o.role == "fit"]
    start = Efficiency()
    out = {}
    for fam in families:
        # perf-overview rows the memory model cannot fit carry no efficiency information
        rows = [o for o in fit_obs if o.family == fam and (o.kind != "trtllm" or o.prepared is not None)]
        if not rows:
            out[fam] = {"fit_rows": 0, "raw": {}, "sources": []}
            continue
        raw = fit_family(rows, start)
        out[fam] = {"fit_rows": len(rows), "raw": {k: getattr(raw, k) for k in FITTED_FIELDS},
                    "sources": sorted({o.row.get("source", "trtllm-perf-overview")
                                       if o.kind == "serving" else f"trtllm-perf-overview {o.row['trtllm_version']}"
                                       for o in rows}),
                    "loss_global": round(_loss(rows, start), 4), "loss_fit": round(_loss(rows, raw), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args()
    t0 = time.time()
    fams = fit_families(observations())
    glob = Efficiency()
    for fam, f in fams.items():
        shipped = shrink(glob, f["raw"], f["fit_rows"]) if f["fit_rows"] else glob
        print(f"{fam:9s} {f['fit_rows']:4d} fit rows  raw {f['raw']}\n{'':9s} shipped "
              f"{ {k: round(getattr(shipped, k), 6) for k in FITTED_FIELDS} }  "
              f"loss {f.get('loss_global')} -> {f.get('loss_fit')}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "roofline efficiencies per GPU family, fitted on rows with role 'fit' "
                "(benchmarks/calibrate_families.py); shipped = global + n/(n+N0)*(raw - global)",
        "shrink_rows": SHRINK_ROWS,
        "global": {k: getattr(glob, k) for k in FITTED_FIELDS},
        "data_sha256": {str(p.relative_to(HERE.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in DATA_FILES},
        "families": fams,
        "elapsed_s": round(time.time() - t0, 1),
    }, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
