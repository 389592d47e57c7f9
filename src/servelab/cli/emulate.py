"""`servelab emulate`: an OpenAI-compatible server timed by the simulator."""

from __future__ import annotations

import asyncio
import errno
from typing import Optional

import typer
from rich.console import Console

from ..errors import ConfigError

_err = Console(stderr=True)


def emulate(
    model: str = typer.Option("llama-3.1-8b", help="Catalog model"),
    gpu: str = typer.Option("h100-sxm", help="Catalog GPU"),
    tp: int = typer.Option(1, help="Tensor-parallel degree"),
    host: str = typer.Option("127.0.0.1", help="Bind address (default loopback only)"),
    port: int = typer.Option(8000),
    speedup: float = typer.Option(1.0, help="Run the modelled time this many times faster"),
    max_queue: Optional[int] = typer.Option(None, help="Waiting-queue bound; beyond it requests get 503"),
    max_num_seqs: int = typer.Option(256),
    max_num_batched_tokens: int = typer.Option(8192),
    served_model_name: Optional[str] = typer.Option(None, help="Model id reported by /v1/models"),
    engine: str = typer.Option("vllm", "--engine",
                               help="Engine profile whose efficiencies and KV memory rule time the "
                                    "replica: vllm | trtllm"),
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models, /health and /metrics
    with vLLM's metric names, token timing from the simulator's replica engine."""
    from ..emulator import Emulator, EmulatorConfig

    from .._limits import check_number, check_port

    try:
        check_number("--speedup", speedup, lo=0, lo_open=True, hi=1e9)
        check_port("--port", port, allow_zero=True)
        check_number("--tp", tp, lo=1, hi=1024, integer=True)
        if max_queue is not None:
            check_number("--max-queue", max_queue, lo=0, hi=10_000_000, integer=True)
        check_number("--max-num-seqs", max_num_seqs, lo=1, hi=1_000_000, integer=True)
        check_number("--max-num-batched-tokens", max_num_batched_tokens, lo=1, hi=100_000_000, integer=True)
    except ConfigError as e:
        _err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    try:
        cfg = EmulatorConfig(model=model, gpu=gpu, tp=tp, speedup=speedup, max_queue=max_queue,
                             max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                             served_model_name=served_model_name, engine=engine)
        from ..perf import get_engine
        get_engine(engine)                       # unknown name: exit 2 before serving
    except ConfigError as e:
        _err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)

    async def main() -> None:
        try:
            emu = Emulator(cfg)
        except ConfigError as e:
            _err.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2)
        try:
            await emu.start(host, port)
        except OSError as e:
            _err.print(f"[red]error:[/red] cannot listen on {host}:{port}: {e.strerror or e}"
                       + (" (the port is in use; pick another with --port, or 0 for any free one)"
                          if e.errno == errno.EADDRINUSE else ""))
            raise typer.Exit(1)
        _err.print(f"servelab emulator: {model} on {gpu} (tp {tp}, engine {engine}, speedup {speedup:g}) at http://{host}:{emu.port}")
        try:
            await asyncio.Event().wait()
        finally:
            await emu.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        _err.print("stopped")


def register(app: typer.Typer) -> None:
    """Add `emulate` to app."""
    app.command("emulate")(emulate)
