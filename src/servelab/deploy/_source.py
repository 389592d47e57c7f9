"""What ``deploy render`` and ``watch`` read: a scenario file, or a plan written by
``servelab plan --json`` (its recommended fleet, ``recommendation.scenario``).

A plan file also carries what the plan decided beyond the scenario: how many of the
replicas are spares for failures (``spare_replicas``, the N+k margin) and the predicted
operating point. :class:`Target` keeps both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["Target", "load_target"]


@dataclass(frozen=True, kw_only=True)
class Target:
    """A scenario to deploy, with what the plan said about it (empty for a bare scenario)."""
    scenario: Any                       # servelab.scenario.Scenario
    source: str                         # the file it came from
    kind: str                           # "scenario" | "plan"
    spare_replicas: int | None = None   # plan: replicas kept for failures (N+k)
    plan: dict[str, Any] = field(default_factory=dict)   # plan: its recommendation (without the scenario)

    @property
    def name(self) -> str:
        """A DNS-1123 name for the fleet's objects: ``<model>-<gpu>``."""
        return dns_name(f"{self.scenario.model.rsplit('/', 1)[-1].removesuffix('.json')}-{self.scenario.gpu}")


def dns_name(text: str) -> str:
    """``text`` as a Kubernetes DNS-1123 label (lowercase alphanumerics and '-', ≤ 63)."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower().replace(".", "-"))
    out = "-".join(p for p in out.split("-") if p)
    return out[:63].strip("-") or "servelab"


def _read(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; expected a scenario (YAML/JSON) or a plan JSON") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def load_target(path: str | Path, *, overrides: Sequence[str] = ()) -> Target:
    """The scenario in ``path`` (scenario file, or ``plan --json`` output), with
    ``--set PATH=VALUE`` overrides applied, validated."""
    from ..scenario import parse_set, resolve

    p = Path(path)
    data = _read(p)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a scenario (a mapping of scenario fields) or a plan "
                          f"(`servelab plan --json`), got {type(data).__name__}")
    kind, spares, plan = "scenario", None, {}
    if "recommendation" in data and "steps" in data:
        rec = data["recommendation"]
        if not rec:
            raise ConfigError(f"plan {p} has no recommendation (no configuration met the SLO); "
                              "nothing to deploy")
        if not isinstance(rec.get("scenario"), Mapping) or not rec["scenario"]:
            raise ConfigError(f"plan {p}: recommendation.scenario is missing; re-run `servelab plan --json` "
                              "with this version of servelab")
        kind, spares = "plan", int(rec.get("spare_replicas") or 0)
        plan = {k: v for k, v in rec.items() if k != "scenario"}
        data = rec["scenario"]
    elif "scenario" in data and isinstance(data["scenario"], Mapping) and len(data) <= 2:
        data = data["scenario"]
    data = {k: v for k, v in dict(data).items() if k != "experiments"}
    sc = resolve(data, parse_set(list(overrides)), source=str(p) + (" and --set" if overrides else ""))
    if sc.disagg is not None:
        raise ConfigError(f"{p}: rendering disaggregated prefill/decode pools (disagg) is not supported; "
                          "deploy renders one aggregated pool — remove 'disagg' or render each pool as its own scenario")
    return Target(scenario=sc, source=str(p), kind=kind, spare_replicas=spares, plan=plan)
