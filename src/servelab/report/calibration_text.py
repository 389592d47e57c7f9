"""Terminal tables of ``servelab calibrate`` (the dict of ``calibrate.calibration_dict``):
prediction error (MdAPE) before and after the fit on the fit and held-out splits, the
efficiency parameters with their bounds, and kernel-derived upper bounds."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["print_fit", "print_bounds"]


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} %"


def _num(name: str, v: float) -> str:
    return f"{v * 1e3:.3f} ms" if name.endswith("_s") else f"{v:.3f}"


def print_fit(d: dict[str, Any], con: Console) -> None:
    """Prediction errors before and after the fit, and the fitted parameters."""
    errs = d["errors_mdape_pct"]
    t = Table(title="prediction error (MdAPE) before → after calibration")
    for col in ("split", "kind", "observations", "before", "after"):
        t.add_column(col, justify="right" if col not in ("split", "kind") else "left")
    counts = d["counts"]
    for split in ("fit", "holdout"):
        for kind in ("tpot", "ttft", "all"):
            n = (counts.get(f"{kind}_{split}") if kind != "all"
                 else counts.get(f"tpot_{split}", 0) + counts.get(f"ttft_{split}", 0))
            t.add_row(split, kind.upper() if kind != "all" else "all", str(n),
                      _pct(errs["before"][split][kind]), _pct(errs["after"][split][kind]))
    con.print(t)
    p = Table(title="efficiency parameters")
    for col in ("parameter", "before", "after", "bounds"):
        p.add_column(col)
    for name in d["params"]:
        lo, hi = d["bounds"][name]
        p.add_row(name, _num(name, d["base_efficiency"][name]), _num(name, d["fitted"][name]),
                  f"[{_num(name, lo)}, {_num(name, hi)}]")
    con.print(p)
    excl = counts.get("excluded") or {}
    con.print(f"records {counts['records']}, ok {counts['ok']}; excluded: "
               + (", ".join(f"{k} {v}" for k, v in excl.items()) or "none"))
    for note in d.get("notes") or []:
        con.print(f"[yellow]note:[/yellow] {escape(str(note))}")


def print_bounds(kb: dict[str, Any], con: Console) -> None:
    """Efficiency upper bounds from the kernel lab's measured peaks."""
    t = Table(title=f"efficiency upper bounds from kernel measurements ({kb['gpu']})")
    for col in ("parameter", "upper bound", "measured", "datasheet", "source"):
        t.add_column(col)
    for name, b in kb["bounds"].items():
        scale, unit = (1e9, "GB/s") if b["unit"] == "bytes/s" else (1e12, "TFLOP/s")
        t.add_row(name, f"{b['upper']:.3f}", f"{b['measured'] / scale:.1f} {unit}",
                  f"{b['datasheet'] / scale:.1f} {unit}", b["source"])
    con.print(t)
    for note in kb.get("notes") or []:
        con.print(f"[yellow]note:[/yellow] {escape(str(note))}")
