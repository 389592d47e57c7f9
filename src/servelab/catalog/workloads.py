"""Workload catalog: length distributions, arrival processes, prefix sharing, SLOs.

Data: ``catalog/data/workloads.yaml`` (presets with the source of their shapes).
Arrival semantics follow ``vllm bench serve``: Poisson at rate r, or gamma
inter-arrival times with shape = burstiness and mean 1/r (burstiness < 1 is
burstier than Poisson, 1 is Poisson; coefficient of variation = 1/sqrt(burstiness)).

Modules: value objects in ``_workload_types``, sampling of request lists in
:mod:`.requests`, SLO strings in :mod:`.slo`, empirical lengths from files in
:mod:`.lengths`. A workload is also readable from a user's YAML/JSON file with the
same keys as a preset (:func:`load_workload`); ``get_workload`` accepts such a path.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping


from ..errors import ConfigError
from ._data import load_yaml, normalize, read_user_data
from ._workload_types import (
    SLO,
    ArrivalSpec,
    LengthDist,
    PrefixSpec,
    RequestSpec,
    SLOTarget,
    Workload,
)
from .lengths import empirical_from_file
from .requests import generate_requests
from .slo import parse_slo

__all__ = [
    "LengthDist", "ArrivalSpec", "PrefixSpec", "SLOTarget", "SLO", "Workload",
    "RequestSpec", "generate_requests", "get_workload", "list_workloads", "parse_slo",
    "load_workload", "workload_from_dict",
]

_LENGTH_KINDS = ("fixed", "uniform", "normal", "lognormal", "empirical")
_ARRIVAL_KINDS = ("constant", "poisson", "gamma")
_WORKLOAD_KEYS = {"name", "description", "input_len", "output_len", "arrival", "prefix", "slo",
                  "turns", "think_time_s", "priorities", "adapters", "source", "num_requests"}


def _num(value: Any, where: str, field: str, conv: type = float, *, low: float | None = 0.0) -> Any:
    """``conv(value)``; ConfigError naming ``field`` when it is not a number or below ``low``."""
    try:
        out = conv(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: {field} must be a number, got {value!r}") from None
    if low is not None and not out >= low:
        raise ConfigError(f"{where}: {field} must be >= {low:g}, got {value!r}")
    return out


def _length(spec: Any, where: str, base: Path | None) -> LengthDist:
    if isinstance(spec, (int, float)):
        return LengthDist(kind="fixed", mean=float(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a number or a mapping with 'kind', got {spec!r}")
    d = dict(spec)
    kind = d.pop("kind", "fixed")
    if kind not in _LENGTH_KINDS:
        raise ConfigError(f"{where}: unknown length kind {kind!r}; known: {', '.join(_LENGTH_KINDS)}")
    src = str(d.pop("source", ""))
    if kind == "empirical":
        file = d.pop("file", None)
        if file is None:
            raise ConfigError(f"{where}: empirical lengths need 'file' (JSONL, CSV or one number per line)")
        path = Path(file) if base is None or Path(file).is_absolute() else base / file
        dist = empirical_from_file(path, column=d.pop("column", None),
                                   low=_num(d.pop("low", 1), where, "low", int),
                                   high=_num(d.pop("high", 1 << 20), where, "high", int))
    else:
        allowed = {"mean", "std", "low", "high"}
        if set(d) - allowed:
            raise ConfigError(f"{where}: unknown keys {sorted(set(d) - allowed)}; known: kind, "
                              + ", ".join(sorted(allowed)) + ", source")
        dist = LengthDist(kind=kind, **{k: _num(v, where, k, int if k in ("low", "high") else float)
                                       for k, v in d.items()})
        if kind in ("normal", "lognormal") and not dist.mean > 0:
            raise ConfigError(f"{where}: {kind} length needs mean > 0")
        if dist.low > dist.high:
            raise ConfigError(f"{where}: low {dist.low} > high {dist.high}")
        d = {}
    if d:
        raise ConfigError(f"{where}: unknown keys {sorted(d)}")
    return LengthDist(kind=dist.kind, mean=dist.mean, std=dist.std, low=dist.low, high=dist.high,
                      values=dist.values, source=src or dist.source)


def _rate(value: Any, where: str) -> float:
    rate = float("inf") if str(value).lower() in ("inf", ".inf", "infinity") \
        else _num(value, where, "rate_rps", low=None)
    if not rate > 0:
        raise ConfigError(f"{where}: rate_rps must be > 0 (or 'inf'), got {value!r}")
    return rate


def workload_from_dict(d: Mapping[str, Any], *, base: Path | None = None) -> Workload:
    """A Workload from a mapping with the preset keys (see ``data/workloads.yaml``)."""
    name = str(d.get("name", "custom"))
    where = f"workload {name!r}"
    unknown = set(d) - _WORKLOAD_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {', '.join(sorted(_WORKLOAD_KEYS))}")
    arr = dict(d.get("arrival") or {})
    kind = arr.get("kind", "poisson")
    if kind not in _ARRIVAL_KINDS:
        raise ConfigError(f"{where}: unknown arrival kind {kind!r}; known: {', '.join(_ARRIVAL_KINDS)}")
    burst = _num(arr.get("burstiness", 1.0), where, "burstiness", low=None)
    if not burst > 0:
        raise ConfigError(f"{where}: burstiness must be > 0, got {burst}")
    pre = dict(d.get("prefix") or {})
    prefix = PrefixSpec(num_groups=_num(pre.get("num_groups", 0), where, "num_groups", int),
                        prefix_tokens=_num(pre.get("prefix_tokens", 0), where, "prefix_tokens", int),
                        fraction=_num(pre.get("fraction", 1.0), where, "prefix fraction", low=None))
    if not 0 <= prefix.fraction <= 1:
        raise ConfigError(f"{where}: prefix fraction must be in [0, 1], got {prefix.fraction}")
    slo = d.get("slo") or ""
    return Workload(
        name=name, description=str(d.get("description", "")),
        input_len=_length(d.get("input_len", 1), f"{where} input_len", base),
        output_len=_length(d.get("output_len", 1), f"{where} output_len", base),
        arrival=ArrivalSpec(kind=kind, rate_rps=_rate(arr.get("rate_rps", 1.0), where), burstiness=burst),
        prefix=prefix,
        slo=parse_slo(slo) if slo else SLO(),
        turns=_num(d.get("turns", 1), where, "turns", int, low=1),
        think_time_s=_num(d.get("think_time_s", 0.0), where, "think_time_s"),
        priorities=tuple((int(k), float(v)) for k, v in (d.get("priorities") or {}).items()),
        adapters=tuple((str(k), float(v)) for k, v in (d.get("adapters") or {}).items()),
        source=str(d.get("source", "")).strip(),
        num_requests=_num(d.get("num_requests", 0), where, "num_requests", int),
    )


def load_workload(path: str | Path) -> Workload:
    """A workload from a YAML or JSON file with the preset keys; relative files resolve next to it."""
    p, data = read_user_data(path, "workload file")
    if not isinstance(data, Mapping):
        raise ConfigError(f"workload file {str(p)!r}: expected a mapping of workload keys")
    data = dict(data)
    data.setdefault("name", p.stem)
    return workload_from_dict(data, base=p.parent)


@lru_cache(maxsize=1)
def _presets() -> tuple[Workload, ...]:
    return tuple(workload_from_dict(e) for e in load_yaml("workloads.yaml")["workloads"])


def get_workload(name: str) -> Workload:
    """A preset by name (case-insensitive), or a path to a workload YAML/JSON file."""
    if isinstance(name, Workload):
        return name
    for w in _presets():
        if normalize(w.name) == normalize(str(name)):
            return w
    if Path(str(name)).expanduser().is_file():
        return load_workload(name)
    raise ConfigError(f"unknown workload {name!r}; known: {', '.join(w.name for w in _presets())} "
                      "(or a path to a workload YAML/JSON file)")


def list_workloads() -> list[Workload]:
    """Every preset, in data-file order."""
    return list(_presets())


