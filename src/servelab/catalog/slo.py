"""SLO strings: ``"ttft_p95=2s,tpot_p95=50ms,e2e_p99=10s"`` <-> :class:`SLO`.

Grammar: comma-separated terms ``<metric>_p<percentile>=<number><unit>`` with metric in
ttft, tpot, itl, e2e; percentile in (0, 100] (decimals allowed: ``p99.9``); unit in
s, ms, us (``µs`` also accepted). Whitespace around terms is ignored. A metric and
percentile may appear once.
"""

from __future__ import annotations

import re

from ..errors import ConfigError
from ..units import MS, S, US
from ._workload_types import SLO, SLOTarget

__all__ = ["parse_slo", "SLO_METRICS", "SLO_UNITS"]

SLO_METRICS = ("ttft", "tpot", "itl", "e2e")
SLO_UNITS = {"s": S, "ms": MS, "us": US, "µs": US}
_FORM = "<metric>_p<percentile>=<number><unit>, e.g. ttft_p95=2s,tpot_p95=50ms (metrics: " \
    + ", ".join(SLO_METRICS) + "; units: s, ms, us)"
_TERM = re.compile(r"^(?P<metric>[a-z0-9]+)_p(?P<pct>\d+(?:\.\d+)?)\s*=\s*"
                   r"(?P<num>\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*(?P<unit>[a-zµ]+)$")


def parse_slo(text: str) -> SLO:
    """Parse ``"ttft_p95=2s,tpot_p95=50ms"``; ConfigError names the bad term."""
    targets: list[SLOTarget] = []
    seen: set[str] = set()
    terms = [t.strip() for t in str(text).split(",")]
    if not any(terms):
        raise ConfigError(f"empty SLO {text!r}; expected {_FORM}")
    for term in terms:
        if not term:
            continue
        m = _TERM.match(term.lower())
        if not m:
            raise ConfigError(f"bad SLO term {term!r}; expected {_FORM}")
        metric, unit = m["metric"], m["unit"]
        if metric not in SLO_METRICS:
            raise ConfigError(f"bad SLO term {term!r}: unknown metric {metric!r}; expected {_FORM}")
        if unit not in SLO_UNITS:
            raise ConfigError(f"bad SLO term {term!r}: unknown unit {unit!r}; expected {_FORM}")
        pct = float(m["pct"])
        if not 0 < pct <= 100:
            raise ConfigError(f"bad SLO term {term!r}: percentile must be in (0, 100]; expected {_FORM}")
        number = term.lower().split("=", 1)[1].strip()[: -len(unit)]
        threshold_s = float(number) * SLO_UNITS[unit]
        if threshold_s <= 0:
            raise ConfigError(f"bad SLO term {term!r}: threshold must be > 0; expected {_FORM}")
        target = SLOTarget(metric=metric, percentile=pct, threshold_s=threshold_s)  # type: ignore[arg-type]
        if target.key in seen:
            raise ConfigError(f"bad SLO term {term!r}: {target.key} given twice")
        seen.add(target.key)
        targets.append(target)
    return SLO(targets=tuple(targets))
