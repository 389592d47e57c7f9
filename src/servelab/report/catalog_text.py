"""Terminal tables of the catalog: GPUs, models, workload presets and price-book offers."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from ..catalog.models import active_param_count, param_count
from ..catalog.prices import TIERS
from ..units import GB, TFLOP

__all__ = ["gpus_table", "models_table", "workloads_table", "offers_table"]


def gpus_table(items: list[Any]) -> Table:
    """GPUs: memory, bandwidth, dense peak TFLOP/s, interconnect, price."""
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
    return t


def models_table(items: list[Any]) -> Table:
    """Built-in models: shape, attention layout, parameter counts."""
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
    return t


def workloads_table(items: list[Any]) -> Table:
    """Workload presets: lengths, arrivals, prefix sharing, SLOs."""
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
    return t


def offers_table(items: list[Any], prices_file: str | None) -> Table:
    """Price book offers, cheapest per GPU first."""
    t = Table(title=f"Instance offers ({prices_file or 'built-in price book'}; USD per instance-hour)")
    short = {"on_demand": "on-demand", "spot": "spot", "reserved_1y": "1 yr", "reserved_3y": "3 yr"}
    for col in ("provider", "instance", "gpu", "GPUs", "region", *short.values(), "$/GPU-h", "date"):
        t.add_column(col, justify="right" if col in (*short.values(), "GPUs", "$/GPU-h") else "left",
                     no_wrap=col in ("gpu", "date", "$/GPU-h", "on-demand"))
    for o in sorted(items, key=lambda o: (o.gpu, o.per_gpu("on_demand") or math.inf, o.provider)):
        t.add_row(o.provider, o.instance_type, o.gpu, str(o.gpus_per_instance), o.region,
                  *(f"{o.prices[k]:,.2f}" if k in o.prices else "-" for k in TIERS),
                  f"{o.per_gpu('on_demand'):,.2f}" if "on_demand" in o.prices else "-", o.source_date)
    return t
