"""Terminal output of ``servelab simulate``: the run's summary table titled with the
fleet (shape, or prefill/decode pools), engine, workload and rate; the calibration used;
the error-band intervals when the run was repeated at the band's edges."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from .tables import summary_table

__all__ = ["print_simulation"]


def print_simulation(sc: Any, summary: dict[str, Any], con: Console, *, cal: Any = None, bands: bool = False,
                     out: str | None = None) -> None:
    """Print the summary of a simulated run of ``sc`` (``scenario.simrun.simulation_summary``)."""
    from ..scenario import build
    shape = f"TP{sc.tp}" + (f" PP{sc.pp}" if sc.pp > 1 else "") + (f" EP{sc.ep}" if sc.ep > 1 else "")
    fleet = f"{sc.replicas}× {sc.gpu} {shape}"
    if sc.disagg is not None:
        d = sc.disagg
        fleet = (f"{d.prefill.replicas}× prefill {d.prefill.gpu or sc.gpu} TP{d.prefill.tp or sc.tp} + "
                 f"{d.decode.replicas}× decode {d.decode.gpu or sc.gpu} TP{d.decode.tp or sc.tp}, KV over {d.link}")
    con.print(summary_table(summary, f"{sc.model} on {fleet} ({summary['engine']}) — "
                                     f"{sc.workload} at {build.rate_rps(sc):g} req/s for {sc.duration_s:g} s "
                                     f"(simulated)"))
    if cal is not None:
        con.print(f"efficiency from calibration {cal.path} (sha256 {cal.sha256[:12]}…)")
    if bands:
        b, bd = summary["band"], summary["bands"]
        status = (f"{b['n_rows']} held-out rows ({b['key']})" if b["calibrated"]
                  else f"UNCALIBRATED ({b['key']}: default band)")
        for m in ("ttft_s", "tpot_s", "e2e_s"):
            if "p95" in bd.get(m, {}):
                x = bd[m]["p95"]
                con.print(f"{m[:-2].upper()} p95 80 % band: {x['lo'] * 1e3:,.1f} – {x['hi'] * 1e3:,.1f} ms")
        if "throughput_tokens_per_s" in bd:
            x = bd["throughput_tokens_per_s"]
            con.print(f"output throughput 80 % band: {x['lo']:,.0f} – {x['hi']:,.0f} tokens/s")
        con.print(f"[dim]bands: the run repeated with step times ×{b['lo_factor']:.2f} and ×{b['hi_factor']:.2f}; "
                  f"{status}[/dim]")
    if out:
        con.print(f"[dim]wrote {out}/ (meta, records, summary, timeseries)[/dim]")
