"""Fault injection: `servelab bench` against a misbehaving server, and killed mid-run.

For each server fault (``servelab.load.fakeserver`` modes, the server in a thread of
this process so it counts what it received) the real command line runs in a child
process: ``servelab bench --num-prompts N --out DIR``. Columns:

- ``planned``: requests the schedule held (N);
- ``received``: POST requests the server read (0 when nothing listens: ``refuse``);
- ``records``: readable lines in the run's ``records.jsonl``;
- ``not offered``: requests never sent because the run was stopped first (summary);
- ``lost``: planned − not offered − records — requests sent (or due) without a record;
  the goal is 0 in every mode;
- ``exit``: the command's exit code (1 when failures exceed ``--max-failure-rate 0``,
  or the run was killed); ``complete``: ``meta.json``'s flag;
- ``statuses``: record statuses and counts.

Signal rows: 20 req/s, 30 tokens 0.2 s apart (6 s per request, so many are in flight),
the signal sent once 5 records are on disk. SIGINT/SIGTERM stop dispatch, cancel what
is in flight after ``--drain-timeout 0.2`` and write everything. SIGKILL cannot be
handled: requests in flight at that instant have no record (counted in ``lost``,
against ``received``), and ``meta.json`` — written first with ``complete: false`` —
says so; ``servelab bench recover DIR`` then turns the dispatch journal's in-flight
requests into ``cancelled`` records (row "SIGKILL + recover"). Bounded: about a minute. Prints the table; writes
benchmarks/results/faults.json. Exit 1 if any row but the bare SIGKILL one lost a request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from servelab.load.fakeserver import FakeServer, FakeServerConfig

N = 50
RESULTS = Path(__file__).parent / "results" / "faults.json"
MODES = [  # (row name, fake-server mode, extra bench flags)
    ("ok", "ok", []),
    ("refuse", None, ["--ready-timeout", "0"]),
    ("5xx", "http500", []),
    ("429", "http429", []),
    ("malformed SSE", "broken_sse", []),
    ("truncated chunk", "truncated_chunk", []),
    ("invalid JSON", "invalid_json", []),
    ("stall", "stall", ["--timeout", "1"]),
    ("drop mid-stream", "cut", []),
    ("huge line (8 MiB)", "long_line", []),
    ("wrong-typed usage", "bad_usage", []),
]


class ServerThread:
    def __init__(self, cfg: FakeServerConfig) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.t = threading.Thread(target=self._run, args=(cfg, ready), daemon=True)
        self.t.start()
        ready.wait(10)

    def _run(self, cfg: FakeServerConfig, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.srv = self.loop.run_until_complete(FakeServer(cfg).start())
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.srv.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(10)


def _cmd(url: str, out: Path, n: int, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from servelab.cli import main; main()", "bench", "--base-url", url,
            "--model", "m", "--num-prompts", str(n), "--random-input-len", "4", "--scrape-interval", "0",
            "--drain-timeout", "0.2", "--out", str(out), "--json", *extra]


def _records(out: Path) -> list[dict]:
    recs = []
    p = out / "records.jsonl"
    if p.exists():
        for line in p.read_text(errors="replace").splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


def _row(name: str, planned: int, received: int | None, out: Path, rc: int, stdout: bytes) -> dict:
    recs = _records(out)
    try:
        s = json.loads(stdout)
        not_offered = int(s.get("not_offered", 0))
    except ValueError:
        s, not_offered = {}, None
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    statuses: dict[str, int] = {}
    for r in recs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    lost = planned - (not_offered or 0) - len(recs) if not_offered is not None else \
        (received or 0) - len(recs)
    return {"case": name, "planned": planned, "received": received, "records": len(recs),
            "not_offered": not_offered, "lost": lost, "exit": rc, "complete": meta.get("complete"),
            "statuses": statuses}


def fault_rows(work: Path) -> list[dict]:
    rows = []
    for name, mode, extra in MODES:
        out = work / name.replace(" ", "_")
        if mode is None:
            url, srv = "http://127.0.0.1:9", None
        else:
            srv = ServerThread(FakeServerConfig(ttft_s=0.002, itl_s=0.001, mode=mode,
                                                long_line_bytes=8 * 2**20))
            url = srv.srv.url
        p = subprocess.run(_cmd(url, out, N, "--request-rate", "200", "--random-output-len", "8", *extra),
                           capture_output=True, timeout=120)
        received = srv.srv.stats.requests if srv is not None else 0
        if srv is not None:
            srv.stop()
        rows.append(_row(name, N, received, out, p.returncode, p.stdout))
    return rows


def signal_rows(work: Path) -> list[dict]:
    rows = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        srv = ServerThread(FakeServerConfig(ttft_s=0.01, itl_s=0.2))
        out = work / sig.name
        proc = subprocess.Popen(_cmd(srv.srv.url, out, 400, "--request-rate", "20", "--random-output-len", "30"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        end = time.monotonic() + 60
        while time.monotonic() < end and len(_records(out)) < 5:
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=60)
        received = srv.srv.stats.requests
        srv.stop()
        row = _row(sig.name, 400, received, out, proc.returncode, stdout)
        if row["not_offered"] is None:            # killed: no summary; sent = what the server received
            row["lost"] = received - row["records"]
        rows.append(row)
        if sig == signal.SIGKILL:                 # then `servelab bench recover DIR` reads the journal
            subprocess.run([sys.executable, "-c", "from servelab.cli import main; main()", "bench", "recover",
                            str(out)], capture_output=True, timeout=60, check=True)
            row = _row("SIGKILL + recover", 400, received, out, proc.returncode, b"")
            row["lost"] = received - row["records"]
            rows.append(row)
    return rows


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        rows = fault_rows(Path(d)) + signal_rows(Path(d))
    head = f"{'case':<20} {'planned':>7} {'received':>8} {'records':>7} {'not offered':>11} {'lost':>4} " \
           f"{'exit':>4} {'complete':>8}  statuses"
    print(head)
    print("-" * len(head))
    for r in rows:
        st = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        no = "-" if r["not_offered"] is None else r["not_offered"]
        print(f"{r['case']:<20} {r['planned']:>7} {r['received']:>8} {r['records']:>7} {no:>11} {r['lost']:>4} "
              f"{r['exit']:>4} {str(r['complete']):>8}  {st}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "python": sys.version.split()[0]}, indent=2) + "\n")
    lost = [r["case"] for r in rows if r["lost"] and r["case"] != "SIGKILL"]   # SIGKILL alone: before recovery
    if lost:
        print(f"requests without a record in: {', '.join(lost)}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
