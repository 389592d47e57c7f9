"""Per-request agreement between a measured run and a prediction of the same requests.

Usage:
    python examples/drill/agreement.py MEASURED_DIR PREDICTED_DIR [--scale K]

Both folders are run folders written with ``--out`` (``servelab bench``/``simulate``).
Records are paired by request id (the same workload preset, rate and seed give the same
ids, prompt and output lengths on both sides). For TTFT, TPOT and E2E it prints the
median, min and max of measured − predicted in milliseconds, and the medians of each.

``--scale K`` multiplies the measured times by K first: an emulator started with
``--speedup K`` and loaded at K× the rate runs the model's time K times faster, and its
records are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import median


def _records(run_dir: Path) -> dict[str, dict]:
    with open(run_dir / "records.jsonl", encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f) if r["status"] == "ok"}


def _metrics(r: dict, scale: float) -> dict[str, float | None]:
    ttft = (r["first_token_s"] - r["arrival_s"]) * scale
    e2e = (r["finish_s"] - r["arrival_s"]) * scale
    n = r["output_tokens"]
    tpot = (r["finish_s"] - r["first_token_s"]) * scale / (n - 1) if n > 1 else None
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("measured", type=Path)
    ap.add_argument("predicted", type=Path)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply measured times by this (emulator speed-up)")
    a = ap.parse_args()
    meas, pred = _records(a.measured), _records(a.predicted)
    ids = sorted(set(meas) & set(pred))
    lost = len(set(meas) ^ set(pred))
    print(f"{len(ids)} requests paired by id ({lost} only on one side)")
    print(f"{'metric':<6} {'measured p50':>13} {'predicted p50':>14} {'diff p50':>9} {'diff min':>9} {'diff max':>9}  (ms)")
    for m in ("ttft", "tpot", "e2e"):
        pairs = [(_metrics(meas[i], a.scale)[m], _metrics(pred[i], 1.0)[m]) for i in ids]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        d = [(x - y) * 1e3 for x, y in pairs]
        print(f"{m:<6} {median(x for x, _ in pairs) * 1e3:>13.2f} {median(y for _, y in pairs) * 1e3:>14.2f} "
              f"{median(d):>+9.2f} {min(d):>+9.2f} {max(d):>+9.2f}")


if __name__ == "__main__":
    main()
