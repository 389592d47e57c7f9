"""``deploy render``: one target's files written into a directory, all or nothing.

Targets and files:

* ``kubernetes`` — ``fleet.yaml`` (Deployment, Service, PodDisruptionBudget, KEDA
  ScaledObject when the scenario has an autoscaler, Karpenter NodePool), ``NOTES.md``;
* ``ray-serve`` — ``serve-config.yaml``, ``NOTES.md``;
* ``prometheus`` — ``rules.yaml``;
* ``grafana`` — ``dashboard.json``;

and for every target ``drills.yaml`` (a ``servelab decide`` file, :mod:`.drills`).

The files are written into a new temporary directory next to ``out`` which is renamed
to ``out`` once complete; an existing non-empty ``out`` is refused unless ``overwrite``
(then it is replaced the same way). On any error nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ._source import Target
from .kubernetes import RenderOptions

__all__ = ["TARGETS", "render_files", "write_render"]

TARGETS = ("kubernetes", "ray-serve", "prometheus", "grafana")


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:   # every object written out in full, no &anchors
        return True


def _yaml(docs: list[Any], header: str) -> str:
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120,
                         allow_unicode=True)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def render_files(t: Target, target: str, opts: RenderOptions | None = None, *,
                 spot_replicas: int = 1) -> tuple[dict[str, str], list[str]]:
    """``{file name: text}`` for ``target`` and notes for the operator."""
    from . import drills, grafana, kubernetes, prometheus, ray_serve

    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    opts = opts or RenderOptions()
    sc = t.scenario
    head = (f"servelab deploy render {t.source} --target {target}\n"
            f"{sc.replicas} x {sc.model} on {sc.gpu} (tp{sc.tp} pp{sc.pp}, weights {sc.weight_dtype}, "
            f"KV {sc.kv_dtype})")
    files: dict[str, str] = {}
    notes: list[str] = []
    if target == "kubernetes":
        objs, notes = kubernetes.manifests(t, opts)
        files["fleet.yaml"] = _yaml(objs, head)
    elif target == "ray-serve":
        cfg, notes = ray_serve.ray_serve_config(t, opts)
        files["serve-config.yaml"] = _yaml([cfg], head)
    elif target == "prometheus":
        files["rules.yaml"] = _yaml([prometheus.rules(t)], head)
    else:
        files["dashboard.json"] = json.dumps(grafana.dashboard(t), indent=2) + "\n"
    files["drills.yaml"] = _yaml([drills.drill_file(t, spot_replicas=spot_replicas)],
                                 head + f"\njudge with: servelab decide drills.yaml")
    if notes:
        files["NOTES.md"] = "# Notes\n\n" + "".join(f"- {n}\n" for n in notes)
    return files, notes


def write_render(files: dict[str, str], out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``files`` into ``out`` atomically (temporary directory, then rename)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; pass --overwrite to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)     # mkdtemp makes it 0700; the result is an ordinary directory
    except OSError as exc:
        raise ConfigError(f"cannot write into {parent}: {exc.strerror or exc}") from None
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            os.rename(out, old / out.name)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
