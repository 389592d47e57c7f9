"""Catalog: GPUs, models, workloads and the price book, each entry with its source.

Data lives in ``catalog/data/`` (one file per kind); this package loads it into
frozen dataclasses and resolves names case-insensitively with clear errors.
"""

from __future__ import annotations

from .gpus import GPU, get_gpu, list_gpus
from .models import (
    MLASpec,
    MoESpec,
    ModelSpec,
    active_param_count,
    get_model,
    list_models,
    load_hf_config,
    param_count,
)
from .prices import Offer, PriceFileError, cheapest_offer, cheapest_packing, load_price_book, read_price_file
from .workloads import (
    SLO,
    ArrivalSpec,
    LengthDist,
    PrefixSpec,
    RequestSpec,
    SLOTarget,
    Workload,
    generate_requests,
    get_workload,
    list_workloads,
    load_workload,
    parse_slo,
)

__all__ = [
    "GPU", "get_gpu", "list_gpus",
    "Offer", "PriceFileError", "load_price_book", "read_price_file", "cheapest_packing", "cheapest_offer",
    "ModelSpec", "MoESpec", "MLASpec", "get_model", "list_models", "load_hf_config",
    "param_count", "active_param_count", "load_workload",
    "Workload", "LengthDist", "ArrivalSpec", "PrefixSpec", "SLO", "SLOTarget",
    "RequestSpec", "generate_requests", "get_workload", "list_workloads", "parse_slo",
]
