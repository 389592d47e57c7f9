"""`servelab catalog gpus|models|workloads|prices`: list the catalog (rich tables or ``--json``)."""

from __future__ import annotations

import json
import math

import typer
from rich.console import Console
from rich.table import Table

from ..catalog import list_gpus, list_models, list_workloads
from ..catalog.models import active_param_count, param_count
from ..units import GB, TFLOP

__all__ = ["register"]

catalog_app = typer.Typer(help="List the GPUs, models and workload presets servelab knows, with sources.",
                          no_args_is_help=True)

_JSON_HELP = "Print a JSON list instead of a table."


def _print_json(items: list[dict]) -> None:
    typer.echo(json.dumps(items, indent=2, allow_nan=False))


@catalog_app.command("gpus")
def gpus(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """GPUs: memory, bandwidth, dense peak TFLOP/s, interconnect, price."""
    items = list_gpus()
    if json_out:
        _print_json([g.to_dict() for g in items])
        return
    t = Table(title="GPUs (dense peak rates; prices on-demand per GPU-hour)")
    t.add_column("id", no_wrap=True, min_width=max(len(g.name) for g in items))
    for col in ("memory GB", "HBM GB/s", "BF16 TF", "FP8 TF", "FP4 TF", "link GB/s/dir",
                "PCIe", "TDP W", "$/h", "price date"):
        t.add_column(col, justify="left" if col == "price date" else "right")
    for g in items:
        def tf(d: str) -> str:
            return f"{g.peak_flops[d] / TFLOP:g}" if d in g.peak_flops else "-"
        t.add_row(g.name, f"{g.memory_bytes / GB:g}", f"{g.hbm_bytes_per_s / GB:g}", tf("bf16"), tf("fp8"),
                  tf("fp4"), f"{g.interconnect_bytes_per_s / GB:g}", f"Gen{g.pcie_gen}",
                  f"{g.tdp_w:g}" if g.tdp_w else "-",
                  f"{g.price_per_hour_usd:.2f}" if g.price_per_hour_usd else "-", g.price_date or "-")
    Console().print(t)


@catalog_app.command("models")
def models(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Built-in models: shape, attention layout, parameter counts."""
    items = list_models()
    if json_out:
        _print_json([{**m.to_dict(), "param_count": param_count(m),
                      "active_param_count": active_param_count(m)} for m in items])
        return
    t = Table(title="Models (parameter counts computed from the shapes)")
    t.add_column("id", no_wrap=True, min_width=max(len(m.name) for m in items))
    for col in ("family", "layers", "hidden", "heads/kv", "head dim", "attention", "MoE",
                "params B", "active B", "context"):
        t.add_column(col, justify="left" if col in ("family", "attention", "MoE") else "right")
    for m in items:
        attn = "MLA" if m.mla else ("MHA" if m.num_kv_heads == m.num_attention_heads else "GQA")
        moe = (f"{m.moe.experts_per_token}/{m.moe.num_experts}"
               + (f"+{m.moe.num_shared_experts}s" if m.moe.num_shared_experts else "")) if m.moe else "-"
        t.add_row(m.name, m.family, str(m.num_layers), str(m.hidden_size),
                  f"{m.num_attention_heads}/{m.num_kv_heads}", str(m.head_dim), attn, moe,
                  f"{param_count(m) / 1e9:.2f}", f"{active_param_count(m) / 1e9:.2f}", str(m.max_context))
    Console().print(t)


@catalog_app.command("workloads")
def workloads(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Workload presets: lengths, arrivals, prefix sharing, SLOs."""
    items = list_workloads()
    if json_out:
        _print_json([w.to_dict() for w in items])
        return
    t = Table(title="Workload presets (lengths in tokens)")
    t.add_column("name", no_wrap=True, min_width=max(len(w.name) for w in items))
    for col in ("input", "output", "arrival", "rate/s", "prefix", "turns", "SLO"):
        t.add_column(col)
    for w in items:
        a = w.arrival
        arrival = a.kind + (f"(burstiness={a.burstiness:g})" if a.kind == "gamma" else "")
        p = w.prefix
        prefix = f"{p.prefix_tokens}x{p.num_groups} ({p.fraction:.0%})" if p.num_groups else "-"
        t.add_row(w.name, w.input_len.describe(), w.output_len.describe(), arrival,
                  "inf" if math.isinf(a.rate_rps) else f"{a.rate_rps:g}", prefix, str(w.turns),
                  w.slo.as_text() or "-")
    Console().print(t)


@catalog_app.command("prices")
def prices(gpu: str = typer.Option(None, "--gpu", "-g", help="Only offers of this GPU."),
           prices_file: str = typer.Option(None, "--prices",
                                           help="A price file (CSV or YAML, same columns) instead of the built-in book."),
           json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Price book: instance offers with provider, shape, region, tiers, source and date."""
    from ..catalog.prices import TIERS, load_price_book
    from ..errors import ConfigError
    try:
        items = list(load_price_book(prices_file))
        if gpu:
            from ..catalog import get_gpu
            name = get_gpu(gpu).name
            items = [o for o in items if o.gpu == name]
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        _print_json([o.to_dict() for o in items])
        return
    t = Table(title=f"Instance offers ({prices_file or 'built-in price book'}; USD per instance-hour)")
    short = {"on_demand": "on-demand", "spot": "spot", "reserved_1y": "1 yr", "reserved_3y": "3 yr"}
    for col in ("provider", "instance", "gpu", "GPUs", "region", *short.values(), "$/GPU-h", "date"):
        t.add_column(col, justify="right" if col in (*short.values(), "GPUs", "$/GPU-h") else "left",
                     no_wrap=col in ("gpu", "date", "$/GPU-h", "on-demand"))
    for o in sorted(items, key=lambda o: (o.gpu, o.per_gpu("on_demand") or math.inf, o.provider)):
        t.add_row(o.provider, o.instance_type, o.gpu, str(o.gpus_per_instance), o.region,
                  *(f"{o.prices[k]:,.2f}" if k in o.prices else "-" for k in TIERS),
                  f"{o.per_gpu('on_demand'):,.2f}" if "on_demand" in o.prices else "-", o.source_date)
    Console().print(t)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to app."""
    app.add_typer(catalog_app, name="catalog")
