"""From a plan to what operators run, and back.

:mod:`.render` writes a scenario's fleet as Kubernetes manifests (:mod:`.kubernetes`),
a Ray Serve config (:mod:`.ray_serve`), Prometheus rules (:mod:`.prometheus`) and a
Grafana dashboard (:mod:`.grafana`), each with a decision file of drills
(:mod:`.drills`). :mod:`.live` reads a running fleet's vLLM metrics (``/metrics`` or a
Prometheus server) into an operating point; :mod:`.watch` compares it with the
scenario's prediction at the observed load and says what is at risk and why.

The input is a scenario file or a ``servelab plan --json`` file (:mod:`._source`).
"""

from __future__ import annotations

from ._source import Target, dns_name, load_target
from .kubernetes import RenderOptions, gpu_resource, manifests, vllm_args
from .render import TARGETS, render_files, write_render

__all__ = ["Target", "load_target", "dns_name", "RenderOptions", "gpu_resource", "manifests", "vllm_args",
           "TARGETS", "render_files", "write_render"]
