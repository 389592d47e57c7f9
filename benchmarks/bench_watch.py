"""`servelab watch` in real time: an emulated replica under the planned load and twice it.

``servelab emulate``'s replica of the scenario in tests/test_deploy_watch_e2e.py (one
replica of Llama-3.1-8B on an H100 SXM, 4 sequences, 256 in / 72 out, run 2× faster than
modelled) is driven by the load client at the planned 4 req/s and at 8 req/s, and
watched through its /metrics directly and — where a ``prometheus`` binary is installed —
through a real Prometheus server. Rates are measured over wall-clock intervals, so this
lives here and not in the test suite (which keeps the speed-independent parts).

What must hold (the checks are the test module's ``_check_planned``/``_check_overload``):
at the planned rate no report raises load or SLO findings and the exit code is 0; at
twice the rate the last report alerts, naming the load and the predicted SLO miss at
that load, with exit code 1. The scenario's capacity is ≈6.3 req/s (4 sequences of 72
output tokens at ≈8.7 ms per step): simulated p95 TTFT is 0.02 s up to 6 req/s, 3.9 s at
6.8 req/s and 14.5 s at 8 req/s against an SLO of 2 s, so 4 req/s is comfortable and
8 req/s alerts even if the client sends 15 % late. On a host short of CPU the emulator,
the client and watch share one process and fall behind real time (p95 TTFT at the
planned rate was seen at 1.38 s with two busy processes beside it): that is what can
make this benchmark fail, and why it is not a test.

Usage: ``python benchmarks/bench_watch.py`` (≈ 40 s; ≈ 80 s with Prometheus). Prints one
line per case, writes ``benchmarks/results/watch.json``, exits 1 when a check fails.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "watch.json"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import yaml

    from servelab.emulator import EmulatorConfig
    from servelab.scenario import resolve
    from tests import test_deploy_watch_e2e as w
    from tests.load_fixtures import emulator_server

    sc = resolve(yaml.safe_load(w.SCENARIO))
    cases: list[dict] = []

    def run_case(name: str, via: str, rps: float, check, tmp: Path) -> None:
        scen = tmp / "planned.yaml"
        scen.write_text(w.SCENARIO)
        prom = w.Prometheus(tmp)
        try:
            with emulator_server(EmulatorConfig(speedup=w.SPEEDUP, scenario=sc)) as emu:
                source = ("--url", f"http://127.0.0.1:{emu.port}") if via == "direct" \
                    else ("--prometheus", prom.start(emu.port))
                th = w._bench(emu.port, rps, wall_s=w.REPORTS + 2)
                code, reports, out = w._watch(scen, *source)
                th.join(60)
            ok, err = True, ""
            try:
                check(code, reports, out)
            except AssertionError:
                ok, err = False, traceback.format_exc(limit=1)
        finally:
            prom.close()
        last = reports[-1] if reports else {}
        cases.append({"case": name, "via": via, "model_rps": rps, "exit_code": code, "reports": len(reports),
                      "last_status": last.get("status"), "last_load_factor": last.get("load_factor"),
                      "last_reasons": last.get("reasons"), "ok": ok, "error": err})
        print(f"{name:28s} via {via:10s} exit {code}  last {last.get('status')!s:6s} "
              f"load {last.get('load_factor', float('nan')):.2f}×  {'ok' if ok else 'FAILED'}")
        if err:
            print(err)

    vias = ["direct"] + (["prometheus"] if w.PROMETHEUS else [])
    for via in vias:
        for name, rps, check in (("planned rate", w.PLANNED_RPS, w._check_planned),
                                 ("twice the planned rate", 2 * w.PLANNED_RPS, w._check_overload)):
            with tempfile.TemporaryDirectory() as tmp:
                run_case(name, via, rps, check, Path(tmp))
    if not w.PROMETHEUS:
        print("prometheus not installed: the cases through Prometheus were not run")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"loadavg_1min_at_end": round(os.getloadavg()[0], 2),
                                   "prometheus": bool(w.PROMETHEUS), "cases": cases}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if all(c["ok"] for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
