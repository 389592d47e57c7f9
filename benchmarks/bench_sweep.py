"""`servelab bench --sweep` against the emulator vs the same sweep on the simulator.

The scenario of ``tests/test_sweep.py`` (Llama-3.1-8B on one H100, ``--max-num-seqs 8``,
256 → 64 tokens, 60 requests per point, SLO TTFT p95 0.5 s of modelled time, emulator
at speed-up 4): prints and writes both sweeps' ends and the highest rate meeting the
SLO, in modelled req/s, to ``benchmarks/results/sweep.json`` (or ``$SERVELAB_BENCH_OUT``).
About 40 s.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from typer.testing import CliRunner  # noqa: E402

import test_sweep as scenario  # noqa: E402  (the scenario and the simulator side live with the test)
from servelab.cli import app  # noqa: E402

# `make bench` writes to $SERVELAB_BENCH_OUT (outside tracked files); `make bench-record`
# copies those results here, into the committed benchmarks/results/.
_RESULTS = Path(os.environ.get("SERVELAB_BENCH_OUT") or HERE / "results")


def main() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    k = scenario.SPEEDUP
    proc = subprocess.Popen([sys.executable, "-c", "from servelab.cli import main; main()", "emulate",
                             "--port", str(port), "--speedup", f"{k:g}", "--max-num-seqs", str(scenario.SEQS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter()
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as d:
            r = CliRunner().invoke(app, ["bench", "--base-url", f"http://127.0.0.1:{port}",
                                         "--num-prompts", str(scenario.N), "--random-input-len", str(scenario.IN),
                                         "--random-output-len", str(scenario.OUT), "--ignore-eos", "--sweep",
                                         "--sweep-rates", "6", "--sweep-refine", "3",
                                         "--slo", f"ttft_p95={scenario.SLO_TTFT_S / k * 1000:g}ms",
                                         "--scrape-interval", "0.5", "--out", d, "--json"])
    finally:
        proc.terminate()
        proc.wait(10)
    if r.exit_code != 0:
        print(r.output)
        return 1
    emu = json.loads(r.stdout)
    sim = scenario._simulator_sweep()
    out = {
        "what": "bench --sweep against the emulator vs the same sweep on the simulator (modelled req/s)",
        "scenario": {"model": "llama-3.1-8b", "gpu": "h100-sxm", "max_num_seqs": scenario.SEQS,
                     "input_tokens": scenario.IN, "output_tokens": scenario.OUT, "requests_per_point": scenario.N,
                     "slo": f"ttft_p95={scenario.SLO_TTFT_S:g}s", "emulator_speedup": k},
        "emulator": {"max_rate_met_rps": emu["max_rate_met_rps"] / k, "throughput_rps": emu["throughput_rps"] / k,
                     "sync_rps": emu["sync_rps"] / k, "points": len(emu["points"])},
        "simulator": {"max_rate_met_rps": sim.max_rate_met_rps, "throughput_rps": sim.throughput_rps,
                      "sync_rps": sim.sync_rps, "points": len(sim.points)},
        "wall_s": time.perf_counter() - t, "python": platform.python_version(), "cpus": os.cpu_count(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out["ratio_max_rate_met"] = out["emulator"]["max_rate_met_rps"] / out["simulator"]["max_rate_met_rps"]
    out["ratio_throughput"] = out["emulator"]["throughput_rps"] / out["simulator"]["throughput_rps"]
    print(f"highest rate meeting the SLO: emulator {out['emulator']['max_rate_met_rps']:.3f}, simulator "
          f"{out['simulator']['max_rate_met_rps']:.3f} req/s (ratio {out['ratio_max_rate_met']:.3f}); throughput "
          f"end {out['emulator']['throughput_rps']:.3f} vs {out['simulator']['throughput_rps']:.3f} "
          f"(ratio {out['ratio_throughput']:.3f})")
    _RESULTS.mkdir(parents=True, exist_ok=True)
    (_RESULTS / "sweep.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
