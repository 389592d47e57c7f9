"""A plan request from a scenario and the plan's own search lists (``servelab plan``).

The plan searches some scenario fields instead of taking one value (:data:`SEARCHED`):
GPU, TP, PP and the weight and KV dtypes come from the search lists (comma-separated, as
typed: ``--gpus``, ``--tp`` …); when a list is not given, a value the scenario was given
(by file, flag or ``--set``) restricts the search to it, else the defaults apply (every
catalog GPU, bf16 and fp8, TP 1, 2, 4, 8, PP auto). EP and the replica count are chosen by
the search. A calibration applies to candidates on the GPU it was fitted on only; the
notices returned say so.
"""

from __future__ import annotations

from typing import Any, Collection

from ..errors import ConfigError
from .evaluate import SearchSettings
from .request import PlanRequest

__all__ = ["SEARCHED", "plan_request", "check_search_options", "parse_csv", "parse_ints", "parse_confidence", "compare_recommended"]

# Scenario fields the plan searches over instead of taking one value.
SEARCHED = ("gpu", "tp", "pp", "ep", "weight_dtype", "kv_dtype", "replicas")


def parse_csv(text: str | None) -> tuple[str, ...]:
    """``"a, B,,c"`` → ``("a", "b", "c")`` (lower case, blanks dropped)."""
    return tuple(x.strip().lower() for x in (text or "").split(",") if x.strip())


def parse_ints(text: str, name: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1 of the option ``--name``."""
    try:
        vals = tuple(int(x) for x in parse_csv(text))
    except ValueError:
        raise ConfigError(f"--{name} takes comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise ConfigError(f"--{name} needs integers >= 1, got {text!r}")
    return vals


def parse_confidence(v: str) -> str:
    """An edge of the error band (``perf.band.CONFIDENCES``), case-insensitive."""
    from ..perf.band import CONFIDENCES
    c = v.strip().lower()
    if c not in CONFIDENCES:
        raise ConfigError(f"--confidence {v!r}; valid: {', '.join(CONFIDENCES)}")
    return c


def check_search_options(*, headroom: float = 1.1, spares: int = 1, jobs: int | None = None,
                         max_requests: int = 3000) -> None:
    """``ConfigError`` naming the first bad value: headroom >= 1, spares >= 0, jobs >= 1
    (or None: one per CPU), max_requests >= 1."""
    if headroom < 1.0:
        raise ConfigError(f"--headroom must be >= 1, got {headroom:g}")
    if spares < 0:
        raise ConfigError(f"--spares must be >= 0, got {spares}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be >= 1 (parallel workers; leave it out for one per CPU), got {jobs}")
    if max_requests < 1:
        raise ConfigError(f"--max-requests must be >= 1, got {max_requests}")


def plan_request(sc: Any, given: Collection[str], *, gpus: str | None = None, precisions: str | None = None,
                 kv_precisions: str | None = None, tp: str | None = None, pp: str | None = None,
                 headroom: float = 1.1, spares: int = 1, executor: str = "local", jobs: int | None = None,
                 max_requests: int = 3000, heterogeneous: bool = True, sensitivity: bool = True,
                 confidence: str = "pessimistic") -> tuple[PlanRequest, list[str]]:
    """The plan request for scenario ``sc`` (``given``: the fields its source set) and the
    notices about its calibration; ``ConfigError`` naming a bad value and the valid ones."""
    check_search_options(headroom=headroom, spares=spares, jobs=jobs, max_requests=max_requests)
    if sc.disagg is not None:
        raise ConfigError("plan searches aggregated fleets; compare a disaggregated fleet (disagg) with "
                          "`servelab simulate` or `servelab decide` (docs/sim.md, disaggregation)")
    gpu_list = parse_csv(gpus) or ((sc.gpu,) if "gpu" in given else ())
    weight_dtypes = parse_csv(precisions) or ((sc.weight_dtype,) if "weight_dtype" in given else ("bf16", "fp8"))
    kv_dtypes = parse_csv(kv_precisions) or ((sc.kv_dtype,) if "kv_dtype" in given else ())
    tps = parse_ints(tp, "tp") if tp else ((sc.tp,) if "tp" in given else (1, 2, 4, 8))
    pps = ((() if pp.strip().lower() == "auto" else parse_ints(pp, "pp")) if pp
           else ((sc.pp,) if "pp" in given else ()))
    cal, cal_gpu, notices = None, None, []
    if sc.calibration:
        from ..calibrate.applied import load_applied
        cal = load_applied(sc.calibration)
        cal_gpu = cal.gpu
        if not cal_gpu:
            raise ConfigError(f"calibration {sc.calibration!r} does not name the GPU it was fitted on "
                              "('deployment.gpu'); the plan cannot tell which candidates it describes")
        if gpu_list and cal_gpu not in gpu_list:
            raise ConfigError(f"calibration {sc.calibration!r} was fitted on {cal_gpu}, which --gpus "
                              f"({','.join(gpu_list)}) leaves out: it would change nothing")
        notices.append(f"calibration {sc.calibration} (fitted on {cal_gpu}) applies to candidates on "
                       f"{cal_gpu} only; candidates on other GPUs use the {sc.engine.profile} engine profile, "
                       "so comparisons across GPUs mix calibrated and uncalibrated efficiencies")
        cal_model = (cal.deployment or {}).get("model")
        if cal_model and cal_model != sc.model:
            notices.append(f"calibration was fitted on model {cal_model}, the plan is for {sc.model}: "
                           "its efficiencies may not carry over")
    req = PlanRequest(
        model=sc.model, workload=sc.workload, rate_rps=sc.rate_rps, slo=sc.slo, gpus=gpu_list,
        weight_dtypes=weight_dtypes, kv_dtypes=kv_dtypes, tps=tps, pps=pps, headroom=headroom,
        spares=spares, node_sizes=sc.prices.node_sizes,
        search=SearchSettings(seed=sc.seed, max_requests=max_requests,
                              min_requests=min(SearchSettings().min_requests, max_requests),
                              max_num_seqs=sc.engine.max_num_seqs,
                              max_num_batched_tokens=sc.engine.max_num_batched_tokens),
        fleet_duration_s=sc.duration_s, heterogeneous=heterogeneous, sensitivity=sensitivity,
        executor=executor, jobs=jobs, engine=sc.engine.profile, scenario=sc,
        confidence=parse_confidence(confidence),
        calibration=cal.efficiency if cal is not None else None, calibration_gpu=cal_gpu,
        calibration_info={"path": cal.path, "sha256": cal.sha256, "deployment": cal.deployment,
                          "notices": notices} if cal is not None else None)
    return req, notices


def compare_recommended(scenario: dict[str, Any]) -> Any:
    """``plan --disagg``: the recommended fleet's scenario aggregated vs prefill/decode
    splits (``plan.pd.compare_pd``), decode at its TP and at twice it when that fits a node."""
    from ..catalog import get_gpu
    from ..scenario import resolve
    from .pd import compare_pd
    rsc = resolve(scenario)
    twice = rsc.tp * 2
    return compare_pd(rsc, decode_tps=(twice,) if twice * rsc.pp <= get_gpu(rsc.gpu).gpus_per_node else ())
