"""GPU catalog: datasheet figures (dense, not sparse) and on-demand prices.

Data: ``catalog/data/gpus.yaml`` — every entry names its datasheet source and the
source and date of its price. Units: bytes, bytes/s, FLOP/s, watts, USD/hour.
``interconnect_bytes_per_s`` is the per-GPU intra-node bandwidth in ONE direction
(NVLink "900 GB/s" on H100 SXM is 450 GB/s each way); 0 for GPUs without a
peer-to-peer link, where PCIe is used (see ``pcie_bytes_per_s``).

Conventions:

* Peak FLOP/s are *dense* tensor-core rates. Datasheets print sparse rates with an
  asterisk; dense = sparse / 2 (2:4 structured sparsity doubles the quoted figure).
* ``memory_bytes`` is the datasheet capacity in decimal GB (80 GB -> 80e9 bytes).
  ``reported_memory_bytes`` is what ``nvidia-smi --query-gpu=memory.total`` prints on
  the device (MiB, binary), read from public run logs; e.g. H100 SXM: 81,559 MiB =
  85.52e9 bytes, 6.9 % above the 80e9 datasheet figure (the HBM is 80 GiB physical
  less a driver reservation). The planner and perf model use ``memory_bytes`` (the
  conservative, datasheet figure); ``memory_note`` flags other differences.
* ``int8`` is in OP/s (integer operations), stored in the same map for uniformity.
* PCIe bandwidth per direction, x16: Gen4 32 GB/s, Gen5 64 GB/s (NVIDIA datasheets
  quote the bidirectional 64 / 128 GB/s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from ..errors import ConfigError
from ..units import GB, TFLOP, MiB
from ._data import build_index, load_yaml, resolve

__all__ = ["GPU", "get_gpu", "list_gpus", "ARCHITECTURES"]

# Dtypes that share a tensor-core rate: the name on the left falls back to the right.
_DTYPE_ALIASES = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float8": "fp8",
                  "fp8_e4m3": "fp8", "fp8_e5m2": "fp8", "nvfp4": "fp4", "mxfp4": "fp4"}


@dataclass(frozen=True, kw_only=True)
class GPU:
    name: str                      # canonical id, e.g. "h100-sxm"
    display_name: str              # e.g. "NVIDIA H100 SXM5 80GB"
    vendor: str                    # "nvidia" | "amd"
    architecture: str = ""         # "ampere" | "ada" | "hopper" | "blackwell" | "cdna3" (perf.families)
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
    memory_note: str = ""          # how memory_bytes relates to what the device reports
    reported_memory_bytes: float = 0.0  # nvidia-smi memory.total (MiB * 2**20); 0 = not sourced
    interconnect: str = ""         # link technology, e.g. "NVLink 4 (18 links)"
    notes: str = ""                # absent dtypes, unverified figures, caveats

    def flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (``int8`` counts ops); ConfigError if absent."""
        key = dtype.strip().lower()
        key = _DTYPE_ALIASES.get(key, key)
        try:
            return self.peak_flops[key]
        except KeyError:
            raise ConfigError(
                f"GPU {self.name!r} has no dense {dtype!r} rate in the catalog; "
                f"known for it: {', '.join(self.peak_flops) or 'none'}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for ``--json`` output and run metadata)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["peak_flops"] = dict(self.peak_flops)
        d["aliases"] = list(self.aliases)
        return d


def _from_entry(entry: Mapping[str, Any]) -> GPU:
    e = dict(entry)
    return GPU(
        name=e.pop("name"),
        display_name=e.pop("display_name"),
        vendor=e.pop("vendor"),
        architecture=_architecture(e.pop("architecture", ""), entry),
        memory_bytes=float(e.pop("memory_gb")) * GB,
        hbm_bytes_per_s=float(e.pop("memory_bandwidth_gb_s")) * GB,
        peak_flops={k: float(v) * TFLOP for k, v in (e.pop("dense_tflops") or {}).items()},
        interconnect_bytes_per_s=float(e.pop("interconnect_gb_s_per_direction")) * GB,
        pcie_gen=int(e.pop("pcie_gen")),
        pcie_bytes_per_s=float(e.pop("pcie_gb_s_per_direction")) * GB,
        tdp_w=float(e.pop("tdp_w", 0.0) or 0.0),
        gpus_per_node=int(e.pop("gpus_per_node", 8)),
        price_per_hour_usd=float(e.pop("price_per_gpu_hour_usd", 0.0) or 0.0),
        price_source=e.pop("price_source", ""),
        price_date=str(e.pop("price_date", "")),
        source=e.pop("source", ""),
        aliases=tuple(e.pop("aliases", ())),
        memory_note=e.pop("memory_note", ""),
        reported_memory_bytes=float(e.pop("reported_memory_mib", 0) or 0) * MiB,
        interconnect=e.pop("interconnect", ""),
        notes=e.pop("notes", ""),
        **_no_extra(e),
    )


ARCHITECTURES = {"nvidia": ("ampere", "ada", "hopper", "blackwell"), "amd": ("cdna3",)}


def _architecture(value: str, entry: Mapping[str, Any]) -> str:
    """The entry's architecture, checked against its vendor's known architectures."""
    vendor = entry.get("vendor", "")
    valid = ARCHITECTURES.get(vendor, ())
    if value not in valid:
        raise ConfigError(f"GPU {entry.get('name')!r}: architecture {value!r} is not one of "
                          f"vendor {vendor!r}'s: {', '.join(valid) or 'none known'}")
    return value


def _no_extra(rest: Mapping[str, Any]) -> dict[str, Any]:
    if rest:
        raise AssertionError(f"unknown keys in gpus.yaml entry: {sorted(rest)}")
    return {}


@lru_cache(maxsize=1)
def _catalog() -> tuple[tuple[GPU, ...], dict[str, GPU]]:
    gpus = tuple(_from_entry(e) for e in load_yaml("gpus.yaml")["gpus"])
    return gpus, build_index(gpus, "GPU")


def get_gpu(name: str) -> GPU:
    """Look a GPU up by id or alias (case-insensitive); ConfigError lists the known ids."""
    if isinstance(name, GPU):
        return name
    gpus, index = _catalog()
    return resolve(index, name, "GPU", (g.name for g in gpus))


def list_gpus() -> list[GPU]:
    """Every GPU in the catalog, in data-file order."""
    return list(_catalog()[0])
