"""Which scenarios the emulator serves: one replica of the scenario's engine.

A scenario for a fleet (replicas, autoscaler, faults, prefill/decode pools), one that
holds requests for their KV prefetch, or one with admission rate limits or client
timeouts (the load client's business) is refused, naming what to change; a fleet-wide
waiting-queue bound becomes the replica's (the smaller of the two when both are set).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["one_replica"]


def one_replica(sc: Any) -> Any:
    """The emulator is one replica: a scenario for a fleet is refused, naming what to change;
    a fleet-wide queue bound becomes the replica's."""
    from ..scenario import build

    if sc.replicas != 1:
        raise ConfigError(f"emulate serves one replica; the scenario has replicas={sc.replicas} (valid: 1)")
    for name in ("autoscaler", "faults", "disagg"):
        if getattr(sc, name):
            raise ConfigError(f"emulate serves one replica without {name}; remove '{name}' from the scenario")
    if sc.kv_policy is not None and sc.kv_policy.prefetch_wait:
        raise ConfigError("emulate does not hold requests for their KV prefetch; set kv_policy.prefetch_wait: false")
    if sc.admission.rate_limit_rps is not None or sc.admission.timeout_s is not None:
        raise ConfigError("emulate does not apply admission rate limits or client timeouts "
                          "(admission.rate_limit_rps, admission.timeout_s); set them on the load client")
    q = [x for x in (sc.engine.max_queue, sc.admission.max_queue) if x is not None]
    if q:
        sc = build.derive(sc, engine={**sc.engine.model_dump(), "max_queue": min(q)},
                          admission={**sc.admission.model_dump(), "max_queue": None})
    return sc
