"""`servelab emulate`: an OpenAI-compatible server timed by the simulator."""

from __future__ import annotations

import asyncio
import errno
from typing import Optional

import typer
from rich.markup import escape
from rich.console import Console

from ..errors import ConfigError
from ._scenario import ScenarioArgs, scenario_options

_err = Console(stderr=True)


@scenario_options()
def emulate(
    scn: ScenarioArgs,
    host: str = typer.Option("127.0.0.1", help="Bind address (default loopback only)"),
    port: int = typer.Option(8000),
    speedup: float = typer.Option(1.0, help="Run the modelled time this many times faster"),
    served_model_name: Optional[str] = typer.Option(None, help="Model id reported by /v1/models"),
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models, /health and /metrics
    with vLLM's metric names, token timing from the simulator's replica engine
    (one replica of the scenario: model, GPU, parallelism, dtypes, engine knobs, LoRA,
    speculative decoding, KV tiers, calibration)."""
    from ..emulator import Emulator, EmulatorConfig, one_replica

    from .._limits import check_number, check_port

    try:
        check_number("--speedup", speedup, lo=0, lo_open=True, hi=1e9)
        check_port("--port", port, allow_zero=True)
    except ConfigError as e:
        _err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2)
    try:
        sc = one_replica(scn.resolve())
        cfg = EmulatorConfig(model=sc.model, gpu=sc.gpu, tp=sc.tp, speedup=speedup,
                             served_model_name=served_model_name, engine=sc.engine.profile, scenario=sc)
        emu = Emulator(cfg)                 # builds the replica: a bad scenario exits 2 before serving
    except ConfigError as e:
        _err.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2)

    async def main() -> None:
        try:
            await emu.start(host, port)
        except OSError as e:
            _err.print(f"[red]error:[/red] cannot listen on {host}:{port}: {e.strerror or e}"
                       + (" (the port is in use; pick another with --port, or 0 for any free one)"
                          if e.errno == errno.EADDRINUSE else ""))
            raise typer.Exit(1)
        _err.print(f"servelab emulator: {sc.model} on {sc.gpu} (tp {sc.tp}, engine {sc.engine.profile}, "
                   f"speedup {speedup:g}) at http://{host}:{emu.port}")
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
