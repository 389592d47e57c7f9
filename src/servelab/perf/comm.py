"""Communication inside one replica: TP all-reduce, PP point-to-point, EP all-to-all.

Ring all-reduce of S bytes over n GPUs (Patarasuk & Yuan 2009; NCCL's algorithm):
each GPU sends and receives ``2(n−1)/n · S`` bytes, so

    t_allreduce(S) = 2(n−1)/n · S / (link · comm_eff) + latency

with ``link`` the per-GPU one-direction bandwidth (NVLink, or PCIe where the GPU has no
peer link). A decoder layer does two (after attention, after the MLP), on the bf16
hidden states of every token in the step (``S = N·h·2``).

Pipeline parallelism sends the hidden states once per stage boundary per step:
``t_p2p(S) = S / (link · comm_eff) + latency``; boundaries inside a node use the GPU
link, boundaries across nodes a 400 Gb/s InfiniBand NIC per GPU (DGX H100/B200
reference design: one ConnectX-7 NDR 400 Gb/s per GPU).

Expert parallelism (idealized DeepEP-style dispatch): each GPU owns ``N/ep`` tokens;
each token goes to k experts, a fraction ``(ep−1)/ep`` of them on other GPUs, so one
all-to-all moves ``(N/ep)·k·h·2·(ep−1)/ep`` bytes per GPU; dispatch and combine make
two per MoE layer, replacing that layer's MLP all-reduce.
"""

from __future__ import annotations

from ..catalog.gpus import GPU
from ..units import GB

__all__ = ["link_bytes_per_s", "inter_node_bytes_per_s", "PCIE_FALLBACK_BYTES_PER_S",
           "INTER_NODE_BYTES_PER_S", "allreduce_bytes_factor", "alltoall_bytes_factor"]

# PCIe Gen4 x16, one direction (PCI-SIG: 16 GT/s × 16 lanes, 128b/130b ≈ 31.5 GB/s).
PCIE_FALLBACK_BYTES_PER_S = 31.5 * GB
# One ConnectX-7 NDR InfiniBand NIC per GPU: 400 Gb/s = 50 GB/s per direction.
INTER_NODE_BYTES_PER_S = 50 * GB


def link_bytes_per_s(gpu: GPU) -> float:
    """Per-GPU one-direction bandwidth to its peers in the node."""
    if gpu.interconnect_bytes_per_s > 0:
        return gpu.interconnect_bytes_per_s
    if gpu.pcie_bytes_per_s > 0:
        return gpu.pcie_bytes_per_s
    return PCIE_FALLBACK_BYTES_PER_S


def inter_node_bytes_per_s(gpu: GPU) -> float:
    """Per-GPU one-direction bandwidth to another node (never above the node link)."""
    return min(INTER_NODE_BYTES_PER_S, link_bytes_per_s(gpu))


def allreduce_bytes_factor(n: int) -> float:
    """Bytes each GPU sends per byte all-reduced on a ring of n GPUs: 2(n−1)/n."""
    return 0.0 if n <= 1 else 2.0 * (n - 1) / n


def alltoall_bytes_factor(ep: int, experts_per_token: int) -> float:
    """Bytes each GPU sends per byte of one token's hidden state, per all-to-all."""
    return 0.0 if ep <= 1 else experts_per_token * (ep - 1) / ep / ep
