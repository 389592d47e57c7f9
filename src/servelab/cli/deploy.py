"""`servelab deploy render` and `servelab watch`: from a plan to a running fleet and back."""

from __future__ import annotations

import json
from typing import List, Optional

import typer
from rich.console import Console

from ..errors import ConfigError
from ..report.watch_text import watch_report

__all__ = ["register", "render_cmd", "watch_cmd", "EXIT_OK", "EXIT_ALERT", "EXIT_USAGE", "EXIT_SOURCE"]

EXIT_OK, EXIT_ALERT, EXIT_USAGE, EXIT_SOURCE = 0, 1, 2, 3

_err = Console(stderr=True)
deploy_app = typer.Typer(help="Render a plan or scenario into what operators run (Kubernetes, Ray Serve, "
                              "Prometheus, Grafana) with a decision file of drills.", no_args_is_help=True)


@deploy_app.command("render")
def render_cmd(
    source: str = typer.Argument(..., help="Scenario file (YAML/JSON) or a `servelab plan --json` output."),
    target: str = typer.Option(..., "--target", help="kubernetes, ray-serve, prometheus or grafana."),
    out: str = typer.Option(..., "--out", help="Directory to write (created; must be empty unless --overwrite)."),
    sets: List[str] = typer.Option([], "--set", help="Scenario override PATH=VALUE (e.g. autoscaler.max_replicas=8)."),
    image: Optional[str] = typer.Option(None, help="vLLM container image (default: vllm/vllm-openai:latest for "
                                                     "NVIDIA GPUs, rocm/vllm:latest for AMD; pin a tag)."),
    namespace: str = typer.Option("default", help="Kubernetes namespace."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Hugging Face repository to serve "
                                                                    "(default: the catalog model's)."),
    prometheus_url: str = typer.Option("http://prometheus-operated.monitoring.svc:9090", "--prometheus-url",
                                       help="Prometheus the KEDA trigger queries."),
    node_class: str = typer.Option("default", "--node-class", help="Karpenter EC2NodeClass name."),
    spot: bool = typer.Option(False, "--spot/--on-demand", help="Let the NodePool use spot capacity too."),
    spot_replicas: int = typer.Option(1, "--spot-replicas", help="Replicas the spot-reclaim drill loses at once."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Write manifests/configs for the fleet, plus drills.yaml for `servelab decide`."""
    from ..deploy import RenderOptions, load_target, render_files, write_render

    try:
        if spot_replicas < 1:
            raise ConfigError(f"--spot-replicas must be >= 1, got {spot_replicas}")
        t = load_target(source, overrides=sets)
        files, notes = render_files(t, target, RenderOptions(image=image, namespace=namespace, model_id=model_id,
                                                             prometheus_url=prometheus_url, node_class=node_class,
                                                             spot=spot), spot_replicas=spot_replicas)
        path = write_render(files, out, overwrite=overwrite)
    except ConfigError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    for n in notes:
        _err.print(f"[yellow]note:[/] {n}")
    _err.print(f"wrote {', '.join(sorted(files))} to {path}/")


def watch_cmd(
    source: str = typer.Argument(..., help="Scenario file or `servelab plan --json` output the fleet runs."),
    urls: List[str] = typer.Option([], "--url", help="A vLLM server's /metrics (repeat per replica)."),
    prometheus: Optional[str] = typer.Option(None, "--prometheus", help="Prometheus base URL (PromQL over its API)."),
    sets: List[str] = typer.Option([], "--set", help="Scenario override PATH=VALUE."),
    interval: float = typer.Option(15.0, help="Seconds between samples."),
    window: float = typer.Option(60.0, help="Seconds of fleet time the operating point covers."),
    count: Optional[int] = typer.Option(None, help="Stop after this many reports (default: run until interrupted)."),
    load_tolerance: float = typer.Option(1.1, help="Warn above this × the planned rate."),
    drift_tolerance: float = typer.Option(1.5, help="Warn when a percentile exceeds this × the prediction."),
    speedup: float = typer.Option(1.0, help="The emulator's --speedup: rates ÷ it, latencies × it."),
    fail_on: str = typer.Option("alert", "--fail-on", help="Exit 1 when any report reaches: alert or warn."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per report on stdout."),
) -> None:
    """Compare a live fleet's metrics with the scenario's prediction at the observed load.

    Exit codes: 0 no report reached --fail-on; 1 one did; 2 bad input;
    3 the metrics source cannot be read or lacks vLLM's series."""
    from ..deploy import load_target
    from ..deploy.live import DirectSource, PrometheusSource, SourceError
    from ..deploy.watch import STATUS_ORDER, Predictor, WatchSettings, check_watch_options, watch

    try:
        check_watch_options(urls=urls, prometheus=prometheus, interval=interval, window=window, speedup=speedup,
                            fail_on=fail_on, count=count)
        t = load_target(source, overrides=sets)
        settings = WatchSettings(interval_s=interval, window_s=window, load_tolerance=load_tolerance,
                                 drift_tolerance=drift_tolerance, time_scale=speedup)
        predictor = Predictor(t)
    except ConfigError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    src = DirectSource(urls) if urls else PrometheusSource(prometheus or "", model=t.scenario.model)
    worst = "idle"
    out = Console()
    try:
        from contextlib import nullcontext

        from rich.live import Live

        live = nullcontext() if as_json or not out.is_terminal else Live(console=out, auto_refresh=False)
        with live as lv:
            for rep in watch(src, t, settings, count=count, predictor=predictor):
                worst = max(worst, rep.status, key=STATUS_ORDER.index)
                if as_json:
                    typer.echo(json.dumps(rep.to_dict(), allow_nan=False, default=str))
                elif lv is not None:
                    lv.update(watch_report(rep, predictor.planned_rps), refresh=True)
                else:
                    out.print(watch_report(rep, predictor.planned_rps))
    except SourceError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_SOURCE) from None
    except KeyboardInterrupt:
        pass
    finally:
        src.close()
    if STATUS_ORDER.index(worst) >= STATUS_ORDER.index(fail_on):
        raise typer.Exit(EXIT_ALERT)


def register(app: typer.Typer) -> None:
    """Add ``deploy`` and ``watch`` to the app."""
    app.add_typer(deploy_app, name="deploy")
    app.command("watch")(watch_cmd)
