"""GPU timing with CUDA events: warm-up, cold L2, many repetitions, per-call percentiles.

Each repetition: (1) unless ``l2="warm"``, write a buffer of 2× the L2 size (``flush``,
as Triton's ``do_bench`` does), so the timed call finds none of its inputs in L2 — this
happens *before* the start event and is not timed; (2) spin the stream ~50 µs
(``torch.cuda._sleep``) so the host can enqueue the call before the GPU gets to it,
keeping one-call launch overhead out of the timed region; (3) record a start event, run
the call once (or replay its CUDA graph), record an end event. All events are read after
one final synchronize, so the host never stalls the stream between repetitions.
Per-call times are the event differences; p50/p95/p99 use numpy's linear-interpolation
percentile. With ``graph=True`` the call is captured once in a CUDA graph (after warm-up
on a side stream, as graph capture requires) and the graph is replayed, which removes
CPU launch overhead from the timed region.

The pure helper :func:`percentiles` runs anywhere; :func:`time_cuda` needs a CUDA GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["Timing", "percentiles", "time_cuda", "L2_MODES"]

L2_MODES: tuple[str, ...] = ("flush", "warm")


@dataclass(frozen=True, kw_only=True)
class Timing:
    times_s: tuple[float, ...]
    warmup: int
    l2: str
    graph: bool

    @property
    def p50_s(self) -> float:
        return percentiles(self.times_s)[0]

    @property
    def p95_s(self) -> float:
        return percentiles(self.times_s)[1]

    @property
    def p99_s(self) -> float:
        return percentiles(self.times_s)[2]


def percentiles(times_s: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p95, p99) with linear interpolation between order statistics."""
    if len(times_s) == 0:
        raise ValueError("no timings")
    p = np.percentile(np.asarray(times_s, dtype=float), [50, 95, 99])
    return float(p[0]), float(p[1]), float(p[2])


# GPU clock cycles the stream spins before each start event (≈ 50 µs at ~2 GHz), so the
# host has enqueued the timed call before the GPU reaches it (host launch overhead of a
# single call is then not timed; overhead *between* an eager baseline's kernels is).
SPIN_CYCLES = 100_000


def _spin(torch) -> None:
    sleep = getattr(torch.cuda, "_sleep", None)
    if sleep is not None:
        sleep(SPIN_CYCLES)


def time_cuda(fn: Callable[[], None], *, reps: int = 100, warmup: int = 10, l2: str = "flush",
              graph: bool = False) -> Timing:
    """Time ``fn`` on the current CUDA stream; see the module docstring."""
    import torch

    if l2 not in L2_MODES:
        raise ValueError(f"unknown l2 mode {l2!r}; known: {', '.join(L2_MODES)}")
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    flush_buf = None
    if l2 == "flush":
        flush_buf = torch.empty(2 * int(props.L2_cache_size) // 4 + 1, dtype=torch.int32, device="cuda")
    call = fn
    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(max(3, warmup)):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        call = g.replay
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if flush_buf is not None:
            flush_buf.zero_()
        _spin(torch)
        starts[i].record()
        call()
        ends[i].record()
    torch.cuda.synchronize()
    times = tuple(s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends, strict=True))   # ms → s
    return Timing(times_s=times, warmup=warmup, l2=l2, graph=graph)
