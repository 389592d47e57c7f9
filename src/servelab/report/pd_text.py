"""Terminal table of a disaggregated-vs-aggregated comparison (``plan.pd.compare_pd``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_pd"]


def print_pd(cmp: Any, con: Console) -> None:
    """Candidates side by side (goodput, per GPU, $/h, $/h per req/s), the choice and why."""
    t = Table(title=(f"Aggregated vs disaggregated at TTFT <= {cmp.ttft_s:g} s and TPOT <= "
                     f"{cmp.tpot_s * 1e3:g} ms for {cmp.attainment:.0%} of requests (DistServe goodput)"))
    target = cmp.candidates[0].target_rps if cmp.candidates else 0.0
    for col in ("fleet", "GPUs", "goodput req/s", "req/s per GPU", "$/h", "$/h per req/s",
                f"copies for {target:g} req/s", "GPUs then", "$/h then"):
        t.add_column(col, justify="left" if col == "fleet" else "right")
    for c in cmp.candidates:
        per = c.usd_per_hour_per_rps
        mark = " *" if cmp.best is not None and c.name == cmp.best.name else ""
        k = c.copies
        t.add_row(c.name + mark, str(c.gpus), f"{c.goodput_rps:.2f}", f"{c.per_gpu_rps:.2f}",
                  f"{c.usd_per_hour:.2f}", "—" if per is None else f"{per:.3f}",
                  "—" if k is None else str(k), "—" if k is None else str(k * c.gpus),
                  "—" if k is None else f"{k * c.usd_per_hour:.2f}")
    con.print(t)
    con.print(f"choice: {cmp.best.name if cmp.best else 'none'} — {cmp.reason}")
