"""Inputs, outputs, providers and fp32 references of every kernel, for one shape.

A :class:`Case` is everything the harness needs for one (kernel, shape, dtype): freshly
drawn inputs, the output buffers to allocate (the harness poisons them with NaN before
each run), ``run(provider, outputs)`` and ``reference()`` (fp32 math on the same rounded
inputs). Inputs are drawn so outputs are O(1): matmul B is scaled by 1/sqrt(K), attention
queries by 2 (peaked softmax, so a wrong weighting shows), layer weights by 1/sqrt(fan_in).

Providers (defined exactly in docs/kernels.md): ``triton`` (this lab), ``eager`` (naive
PyTorch eager), ``functional`` (``F.rms_norm``), ``compile`` (``torch.compile`` of the
eager function, GPU only), ``cublas`` (``torch.matmul``), ``sdpa`` (gather pages into
dense KV, then ``F.scaled_dot_product_attention``), ``sdpa_dense`` (SDPA on KV that is
already dense: the gather is not timed). Imports torch and triton.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from ..errors import ConfigError
from .counts import PAGE_TOKENS
from .specs import Shape, get_spec, layer_dims

__all__ = ["Case", "build_case", "TORCH_DTYPES", "torch_dtype"]

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OutSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]


def torch_dtype(name: str) -> torch.dtype:
    try:
        return TORCH_DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; known: {', '.join(TORCH_DTYPES)}") from None


@dataclass(frozen=True, kw_only=True)
class Case:
    kernel: str
    shape: Shape
    dtype: str
    outputs: OutSpec
    run: Callable[[str, dict[str, torch.Tensor]], None]
    reference: Callable[[], dict[str, torch.Tensor]]
    input_bytes: int

    def alloc(self, device) -> dict[str, torch.Tensor]:
        return {k: torch.empty(s, dtype=dt, device=device) for k, (s, dt) in self.outputs.items()}


def _compiler(fn: Callable) -> Callable[[], Callable]:
    """A per-case ``torch.compile`` of ``fn``, made on first use. Dynamo's caches are
    reset first: its recompile limit (8 per code object) would otherwise silently fall
    back to eager after a few shapes and the ``compile`` rows would time eager code."""
    made: list[Callable] = []

    def get() -> Callable:
        if not made:
            torch._dynamo.reset()
            made.append(torch.compile(fn, dynamic=False))
        return made[0]
    return get


def _unknown(kernel: str, provider: str) -> ConfigError:
    return ConfigError(f"unknown provider {provider!r} for {kernel}; known: "
                       f"{', '.join(get_spec(kernel).providers)}")


def _nbytes(*ts: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in ts)


def _rmsnorm_case(kernel, shape, dt, device, gen) -> Case:
    from . import rmsnorm as K

    rows, hidden = shape["rows"], shape["hidden"]
    x = torch.randn(rows, hidden, generator=gen, device=device).to(dt)
    w = (1 + 0.1 * torch.randn(hidden, generator=gen, device=device)).to(dt)
    res = kernel == "rmsnorm_residual"
    r = torch.randn(rows, hidden, generator=gen, device=device).to(dt) if res else None
    outs: OutSpec = {"y": ((rows, hidden), dt)}
    if res:
        outs["residual_out"] = ((rows, hidden), dt)
    eager = K.rmsnorm_residual_eager if res else K.rmsnorm_eager
    compiled = _compiler(eager)

    def run(provider, o):
        kw: dict[str, Any] = {"out": o["y"]}
        if res:
            kw.update(residual=r, residual_out=o["residual_out"])
        fns = {"triton": K.rmsnorm, "eager": eager, "functional": K.rmsnorm_functional}
        if provider == "compile":
            y = compiled()(x, w, 1e-5, **({"residual": r} if res else {}))
            o["y"].copy_(y)
            if res:
                o["residual_out"].copy_(x + r)
            return
        if provider not in fns:
            raise _unknown(kernel, provider)
        fns[provider](x, w, 1e-5, **kw)

    def reference():
        y, s = K.rmsnorm_reference(x, w, 1e-5, residual=r)
        return {"y": y, "residual_out": s} if res else {"y": y}

    return Case(kernel=kernel, shape=shape, dtype="", outputs=outs, run=run, reference=reference,
                input_bytes=_nbytes(x, w, *([r] if res else [])))


def _matmul_case(kernel, shape, dt, device, gen) -> Case:
    from . import matmul as K

    m, n, k = shape["m"], shape["n"], shape["k"]
    a = torch.randn(m, k, generator=gen, device=device).to(dt)
    b = (torch.randn(k, n, generator=gen, device=device) / k ** 0.5).to(dt)
    tri = K.matmul_persistent if kernel == "matmul_persistent" else K.matmul

    def run(provider, o):
        if provider == "triton":
            tri(a, b, out=o["c"])
        elif provider == "cublas":
            torch.matmul(a, b, out=o["c"])
        else:
            raise _unknown(kernel, provider)

    return Case(kernel=kernel, shape=shape, dtype="", outputs={"c": ((m, n), dt)}, run=run,
                reference=lambda: {"c": K.matmul_reference(a, b)}, input_bytes=_nbytes(a, b))


def _paged_tables(context_lens: list[int], gen, device) -> tuple[torch.Tensor, int]:
    pages_per = [-(-c // PAGE_TOKENS) for c in context_lens]
    n_pages = sum(pages_per)
    perm = torch.randperm(n_pages, generator=gen, device=gen.device).cpu()
    table = torch.zeros(len(context_lens), max(pages_per), dtype=torch.int32)
    i = 0
    for row, p in enumerate(pages_per):
        table[row, :p] = perm[i:i + p]
        i += p
    return table.to(device), n_pages


def _attention_case(kernel, shape, dt, device, gen) -> Case:
    from . import decode_attention as K

    batch, ctx = shape["batch"], shape["context"]
    hq, hkv, d = shape["heads_q"], shape["heads_kv"], shape["head_dim"]
    if shape.get("ragged"):
        lens = torch.randint(1, ctx + 1, (batch,), generator=gen, device=gen.device).tolist()
        lens[int(torch.randint(0, batch, (1,), generator=gen, device=gen.device))] = ctx
    else:
        lens = [ctx] * batch
    table, n_pages = _paged_tables(lens, gen, device)
    kc = torch.randn(n_pages, PAGE_TOKENS, hkv, d, generator=gen, device=device).to(dt)
    vc = torch.randn(n_pages, PAGE_TOKENS, hkv, d, generator=gen, device=device).to(dt)
    q = (2 * torch.randn(batch, hq, d, generator=gen, device=device)).to(dt)
    cl = torch.tensor(lens, dtype=torch.int32, device=device)
    args = (q, kc, vc, table, cl)
    dense: list[tuple[torch.Tensor, torch.Tensor]] = []
    compiled = _compiler(K.decode_attention_eager)

    def run(provider, o):
        kw = {"max_context": ctx, "out": o["out"]}
        if provider == "triton":
            K.decode_attention(*args, **kw)
        elif provider == "eager":
            K.decode_attention_eager(*args, **kw)
        elif provider == "sdpa":
            K.decode_attention_sdpa(*args, **kw)
        elif provider == "sdpa_dense":
            if not dense:   # built once, outside any timed call
                dense.append((K.gather_kv(kc, table, ctx).contiguous(), K.gather_kv(vc, table, ctx).contiguous()))
            K.decode_attention_sdpa(*args, dense_kv=dense[0], **kw)
        elif provider == "compile":
            o["out"].copy_(compiled()(*args, max_context=ctx))
        else:
            raise _unknown(kernel, provider)

    return Case(kernel=kernel, shape=shape, dtype="", outputs={"out": ((batch, hq, d), dt)}, run=run,
                reference=lambda: {"out": K.decode_attention_reference(*args, max_context=ctx)},
                input_bytes=_nbytes(q, kc, vc))


def _step_case(kernel, shape, dt, device, gen) -> Case:
    from . import decode_step as K

    dims = layer_dims(shape)
    batch, ctx = shape["batch"], shape["context"]
    weights = K.make_layer(dims, dt, device, gen)
    lens = [ctx] * batch
    if shape.get("layer") == "tiny":   # ragged for checks
        lens = torch.randint(1, ctx + 1, (batch,), generator=gen, device=gen.device).tolist()
    state = K.make_state(dims, lens, dt, device, gen)
    ref_out = K.decode_step_reference(weights, dims, state)   # before any step writes the cache

    def run(provider, o):
        if provider not in K.PROVIDERS:
            raise _unknown(kernel, provider)
        K.decode_step(weights, dims, state, provider=provider, out=o["out"])

    return Case(kernel=kernel, shape=shape, dtype="", outputs={"out": ((batch, dims.hidden), dt)},
                run=run, reference=lambda: {"out": ref_out},
                input_bytes=_nbytes(state.k_cache, state.v_cache, weights.wqkv, weights.wo,
                                    weights.w_gate_up, weights.w_down))


_BUILDERS = {"rmsnorm": _rmsnorm_case, "rmsnorm_residual": _rmsnorm_case, "matmul": _matmul_case,
             "matmul_persistent": _matmul_case, "decode_attention": _attention_case,
             "decode_step": _step_case}


def build_case(kernel: str, shape: Shape, dtype: str, device, seed: int) -> Case:
    """Draw fresh inputs for ``kernel`` at ``shape`` in ``dtype`` from ``seed``."""
    get_spec(kernel)
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    return replace(_BUILDERS[kernel](kernel, shape, torch_dtype(dtype), dev, gen), dtype=dtype)
