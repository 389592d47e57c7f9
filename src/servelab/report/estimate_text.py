"""Terminal tables of ``servelab estimate`` (the dict of :func:`servelab.scenario.estimate.estimate_scenario`):
memory per GPU, KV cache, decode steps by batch, latency and throughput with their error
bands, one replica's cost, and the calibration status of the bands."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..perf.band import DEFAULT_FACTOR, MIN_ROWS
from ..perf.deployment import FIT_NOTE
from ..units import fmt_bytes, fmt_seconds

__all__ = ["print_estimate"]


def print_estimate(r: dict[str, Any], con: Console) -> None:
    """Print the estimate ``r`` on ``con``."""
    head = (f"{r['model']} on {r['num_gpus']}× {r['gpu']} (TP{r['tp']}"
            + (f" PP{r['pp']}" if r["pp"] > 1 else "") + (f" EP{r['ep']}" if r["ep"] > 1 else "")
            + f"), weights {r['weight_dtype']}, KV {r['kv_dtype']}, "
            f"{r['input_tokens']} in / {r['output_tokens']} out"
            + (f", engine {r['engine']}" if r.get("engine") else ""))
    con.print(f"[bold]{head}[/bold]")
    if r.get("calibration"):
        cal = r["calibration"]
        con.print(f"efficiency from calibration {cal['path']} (sha256 {cal['sha256'][:12]}…)")
    for note in r["notes"]:
        con.print(f"[yellow]note:[/yellow] {escape(str(note))}")

    mem = Table(title="Memory per GPU")
    mem.add_column("item")
    mem.add_column("bytes", justify="right")
    for label, key in (("GPU memory", "gpu_memory_bytes"),
                       (f"usable (gpu_memory_utilization {r['gpu_memory_utilization']:g})", "usable_bytes"),
                       ("weights", "weight_bytes"), ("activations (peak)", "activation_bytes"),
                       ("runtime overhead", "overhead_bytes"), ("KV cache", "kv_bytes")):
        mem.add_row(label, fmt_bytes(r[key]))
    con.print(mem)
    if not r["feasible"]:
        con.print(f"[bold red]infeasible:[/bold red] {r['reason']}")
        return

    cap = Table(title="KV cache")
    cap.add_column("quantity")
    cap.add_column("value", justify="right")
    cap.add_row("KV bytes per token (replica / per GPU)",
                f"{r['kv_bytes_per_token']:,.0f} / {r['kv_bytes_per_token_per_gpu']:,.0f}")
    cap.add_row("KV capacity (tokens / blocks)", f"{r['kv_capacity_tokens']:,} / {r['kv_blocks']:,}")
    cap.add_row(f"max concurrency at {r['input_tokens'] + r['output_tokens']} tokens",
                f"{r['max_concurrency']:,}")
    cap.add_row(f"max batch (also ≤ max_num_seqs {r['max_num_seqs']}, max_num_batched_tokens "
                f"{r['max_num_batched_tokens']})", f"{r['max_batch']:,}")
    con.print(cap)

    lat = Table(title=f"Decode steps (each sequence at {r['decode_context_tokens']} tokens of context)")
    for col in ("batch", "step", "tokens/s (replica)", "tokens/s per sequence", "bound"):
        lat.add_column(col, justify="right")
    for batch, step in r["decode_step_s"].items():
        lat.add_row(batch, fmt_seconds(step), f"{r['decode_tokens_per_s'][batch]:,.0f}",
                    f"{1 / step:,.1f}", r["decode_bound"][batch])
    con.print(lat)

    off = r["offline"]
    summary = Table(title="Latency and throughput")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    summary.add_row(f"TTFT, lone request of {r['input_tokens']} tokens ({r['prefill_bound']}-bound)",
                    fmt_seconds(r["ttft_s"]))
    summary.add_row("ridge point (decode batch where GEMMs turn compute-bound)",
                    f"{r['ridge_batch']:,}" if r["ridge_batch"] else "never")
    summary.add_row(f"offline output throughput (batch {off['concurrency']:,}, limited by {off['limited_by']})",
                    f"{r['offline_output_tokens_per_s']:,.0f} tokens/s")
    summary.add_row("  per GPU", f"{off['output_tokens_per_s_per_gpu']:,.0f} tokens/s")
    bands = r.get("bands", {})
    if "ttft_s" in bands:
        t = bands["ttft_s"]
        summary.add_row("  TTFT 80 % band", f"{fmt_seconds(t['lo'])} – {fmt_seconds(t['hi'])}")
    if "offline_output_tokens_per_s" in bands:
        t = bands["offline_output_tokens_per_s"]
        summary.add_row("  throughput 80 % band", f"{t['lo']:,.0f} – {t['hi']:,.0f} tokens/s")
    con.print(summary)
    c = r.get("cost")
    if c:
        per_m = c["cost_per_million_output_tokens_usd"]
        con.print(f"one replica: ${c['cost_per_hour_usd']:,.2f}/h for {c['billed_gpus']} GPU(s), "
                  + (f"${per_m:,.3f} per 1M output tokens at the offline throughput" if per_m is not None
                     else "no offline throughput to spread it over")
                  + f" — {c['price_source']}")
    st = r.get("calibration_status")
    if st:
        for m in ("time", "throughput"):
            b = st[f"{m}_band"]
            con.print(f"{m} band: " + (f"{b['n_rows']} held-out rows ({b['key']})" if b["calibrated"]
                                       else f"UNCALIBRATED (fewer than {MIN_ROWS} held-out rows of this kind): "
                                            f"default ×/÷ {DEFAULT_FACTOR:g}"))
        con.print(f"[dim]{st['family']} family efficiencies fitted on {st['family_fit_rows']} rows "
                  "(perf/data/families.json)[/dim]")
    con.print(f"[dim]{FIT_NOTE}[/dim]")
