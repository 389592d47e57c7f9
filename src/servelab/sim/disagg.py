"""Disaggregated prefill/decode (P/D): prefill replicas and decode replicas, KV moved between.

Flow of one request (after vLLM's disaggregated-prefill proxy and NIXL connector, NVIDIA
Dynamo, llm-d):

1. Admission and the fleet router (``SimConfig.router``) pick a *prefill* replica. There
   the request runs as a prefill-only request (one output token: the prompt's KV is
   computed, chunked as usual, prefix cache included).
2. When its prefill step ends, a *decode* replica is chosen (fewest outstanding requests,
   counting transfers on their way to it; ties: lowest index) and the prompt's KV moves
   over the link:

       transfer_s = latency_s + kv_bytes_per_token · input_tokens / pair_bytes_per_s

   ``pair_bytes_per_s = link bytes/s per GPU · min(TP_prefill, TP_decode)``: each GPU of
   the prefill replica sends its KV shard over its own NIC / link (GPUDirect RDMA), in
   parallel. ``kv_bytes_per_token`` is the prefill deployment's (all layers, its KV dtype).
   A prefill replica runs at most ``max_transfers`` transfers at once, each at the full
   pair rate; further ones wait in FIFO order (with 1, the link is used one request at
   a time, which for a shared link gives the same completion times as fair sharing for
   the last of a batch and is conservative for the first).
3. When the transfer ends the request enters the decode replica's queue with its prompt's
   KV present (``input − 1`` tokens count as computed, its blocks are allocated when
   admitted; decode admission therefore waits for both the transfer and free blocks). Its
   first scheduled step computes the last prompt token and emits the first output token
   (vLLM's decode instance recomputes that token; the prefill's token is not sent), then
   it decodes as usual. So TTFT = prefill queue + prefill + transfer + decode queue + one
   decode step.

Failures: a fault on a prefill replica fails (or retries from scratch) the requests
queued or running there and those whose KV it is sending; on a decode replica, those
queued or running there and those being sent to it. A retried request starts again at
a prefill replica. A client timeout during a transfer cancels it.

The prefill replica keeps the request's KV blocks until the transfer has ended (or is
cancelled): they count against its memory meanwhile, as NIXL reads them from there.

Approximations: the decode side's receiving capacity is not a limit; a request that gets
preempted on the decode side recomputes its whole prompt there (vLLM's behaviour).

Link rates per GPU, one direction (``LINKS``; latency: fixed cost per transfer):

- ``nvlink``: the GPU's NVLink rate from the catalog (``interconnect_bytes_per_s``, e.g.
  H100 SXM 450 GB/s = 900 GB/s bidirectional / 2, NVIDIA H100 datasheet); for P and D
  in the same NVLink domain.
- ``ib-ndr``: InfiniBand NDR, 400 Gb/s per port = 50 GB/s (NVIDIA ConnectX-7 / Quantum-2
  NDR; DGX H100 has one 400 Gb/s ConnectX-7 port per GPU for the compute fabric).
- ``ib-hdr``: InfiniBand HDR, 200 Gb/s = 25 GB/s (ConnectX-6).
- ``roce-400``: RoCE v2 over 400 GbE (IEEE 802.3bs), 50 GB/s.
- ``roce-200``: RoCE v2 over 200 GbE, 25 GB/s.
- ``pcie``: through host memory over PCIe, the GPU's x16 rate one direction from the
  catalog (e.g. Gen5 64 GB/s).

Latencies are order-of-magnitude assumptions, not measurements (RDMA verbs round trips
are a few µs; a transfer also carries a completion notification): 10 µs for network
links and PCIe, 5 µs for NVLink. Set ``KVLink(latency_s=…)`` from a measurement of your
connector (NIXL, Mooncake) when you have one; sequential link rate is assumed reached.

Units: seconds, bytes, bytes/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..units import GB

__all__ = ["KVLink", "DisaggConfig", "LINKS", "link_for", "transfer_s"]


@dataclass(frozen=True, kw_only=True)
class KVLink:
    """The path KV takes from a prefill GPU to a decode GPU (per GPU, one direction)."""
    name: str
    bytes_per_s: float
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if self.bytes_per_s <= 0 or self.latency_s < 0:
            raise ConfigError(f"KV link {self.name!r}: need bytes_per_s > 0 and latency_s >= 0, got "
                              f"{self.bytes_per_s!r}, {self.latency_s!r}")


# name -> (bytes/s per GPU or None = from the GPU catalog, latency_s, catalog field)
LINKS: dict[str, tuple[float | None, float, str]] = {
    "nvlink": (None, 5e-6, "interconnect_bytes_per_s"),
    "ib-ndr": (400e9 / 8, 10e-6, ""),     # 400 Gb/s NDR port (ConnectX-7)
    "ib-hdr": (200e9 / 8, 10e-6, ""),     # 200 Gb/s HDR port (ConnectX-6)
    "roce-400": (400e9 / 8, 10e-6, ""),   # 400 GbE (IEEE 802.3bs)
    "roce-200": (200e9 / 8, 10e-6, ""),   # 200 GbE
    "pcie": (None, 10e-6, "pcie_bytes_per_s"),
}


def link_for(name: str, gpu: Any = None, *, latency_s: float | None = None,
             gb_per_s: float | None = None) -> KVLink:
    """A named link (``LINKS``); ``gpu`` (catalog GPU) supplies NVLink / PCIe rates;
    ``gb_per_s`` / ``latency_s`` override the defaults."""
    if name not in LINKS:
        raise ConfigError(f"unknown KV link {name!r}; known: {', '.join(LINKS)}")
    bw, lat, field_name = LINKS[name]
    if gb_per_s is not None:
        bw = gb_per_s * GB
    if bw is None:
        if gpu is None:
            raise ConfigError(f"KV link {name!r} takes its rate from the GPU; give the GPU or gb_per_s")
        bw = float(getattr(gpu, field_name, 0.0) or 0.0)
        if bw <= 0:
            raise ConfigError(f"GPU {getattr(gpu, 'name', gpu)!r} has no {name} rate in the catalog; "
                              f"choose another link ({', '.join(LINKS)}) or give gb_per_s")
    return KVLink(name=name, bytes_per_s=bw, latency_s=lat if latency_s is None else latency_s)


@dataclass(frozen=True, kw_only=True)
class DisaggConfig:
    """Which ``SimConfig.replicas`` entries prefill and which decode, and the KV link."""
    prefill: int = 0                        # index in SimConfig.replicas
    decode: int = 1
    link: KVLink = KVLink(name="ib-ndr", bytes_per_s=LINKS["ib-ndr"][0] or 0.0,  # type: ignore[arg-type]
                          latency_s=LINKS["ib-ndr"][1])
    max_transfers: int = 1                  # concurrent transfers per prefill replica
    kv_bytes_per_token: float | None = None  # None: from the prefill deployment (all layers)

    def __post_init__(self) -> None:
        if self.prefill == self.decode or self.prefill < 0 or self.decode < 0:
            raise ConfigError(f"disaggregation needs two different replica indices, got prefill="
                              f"{self.prefill!r}, decode={self.decode!r}")
        if self.max_transfers < 1:
            raise ConfigError(f"max_transfers must be >= 1, got {self.max_transfers!r}")
        if self.kv_bytes_per_token is not None and self.kv_bytes_per_token <= 0:
            raise ConfigError(f"kv_bytes_per_token must be > 0, got {self.kv_bytes_per_token!r}")


def _tp(spec: Any) -> int:
    dep = getattr(spec, "deployment", None)
    return int(getattr(dep, "tp", 1) or 1)


def kv_bytes_per_token_of(cfg: DisaggConfig, prefill_spec: Any) -> float:
    if cfg.kv_bytes_per_token is not None:
        return cfg.kv_bytes_per_token
    dep = getattr(prefill_spec, "deployment", None)
    if dep is None:
        raise ConfigError("DisaggConfig.kv_bytes_per_token is needed when the prefill replicas "
                          "have no deployment")
    from ..perf import memory_budget
    return memory_budget(dep).kv_bytes_per_token


def transfer_s(cfg: DisaggConfig, prefill_spec: Any, decode_spec: Any, input_tokens: int) -> float:
    """Time to move one request's prompt KV: latency + bytes / (link rate · min TP)."""
    pair = cfg.link.bytes_per_s * min(_tp(prefill_spec), _tp(decode_spec))
    return cfg.link.latency_s + kv_bytes_per_token_of(cfg, prefill_spec) * input_tokens / pair
