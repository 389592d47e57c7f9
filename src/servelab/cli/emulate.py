"""`servelab emulate`: an OpenAI-compatible server timed by the simulator."""

from __future__ import annotations

import asyncio
from typing import Optional

import typer
from rich.markup import escape
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

    if speedup <= 0:
        _err.print(f"[red]error:[/red] --speedup must be > 0, got {speedup}")
        raise typer.Exit(2)
    try:
        cfg = EmulatorConfig(model=model, gpu=gpu, tp=tp, speedup=speedup, max_queue=max_queue,
                             max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                             served_model_name=served_model_name, engine=engine)
        from ..perf import get_engine
        get_engine(engine)                       # unknown name: exit 2 before serving
    except ConfigError as e:
        _err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)

    async def main() -> None:
        try:
            emu = Emulator(cfg)
        except ConfigError as e:
            _err.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(2)
        await emu.start(host, port)
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
