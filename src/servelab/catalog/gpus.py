"""GPU catalog: datasheet figures (dense, not sparse) and on-demand prices.

Data: ``catalog/data/gpus.yaml`` — every entry names its datasheet source and the
source and date of its price. Units: bytes, bytes/s, FLOP/s, watts, USD/hour.
``interconnect_bytes_per_s`` is the per-GPU intra-node bandwidth in ONE direction
(NVLink "900 GB/s" on H100 SXM is 450 GB/s each way); 0 for GPUs without a
peer-to-peer link, where PCIe is used (see ``pcie_bytes_per_s``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["GPU", "get_gpu", "list_gpus"]


@dataclass(frozen=True, kw_only=True)
class GPU:
    name: str                      # canonical id, e.g. "h100-sxm"
    display_name: str              # e.g. "NVIDIA H100 SXM5 80GB"
    vendor: str                    # "nvidia" | "amd"
    memory_bytes: float            # usable HBM/GDDR capacity
    hbm_bytes_per_s: float         # peak memory bandwidth
    peak_flops: Mapping[str, float] = field(default_factory=dict)  # dtype -> dense FLOP/s
    interconnect_bytes_per_s: float = 0.0   # per GPU, one direction (see module doc)
    pcie_gen: int = 4
    pcie_bytes_per_s: float = 0.0  # one direction, x16
    tdp_w: float = 0.0
    gpus_per_node: int = 8         # largest node size sold (instances come in 1/2/4/8)
    price_per_hour_usd: float = 0.0  # on-demand, per GPU
    price_source: str = ""
    price_date: str = ""
    source: str = ""
    aliases: tuple[str, ...] = ()

    def flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (``int8`` counts ops); ConfigError if absent."""
        raise NotImplementedError


def get_gpu(name: str) -> GPU:
    """Look a GPU up by id or alias (case-insensitive); ConfigError lists the known ids."""
    raise NotImplementedError


def list_gpus() -> list[GPU]:
    raise NotImplementedError
