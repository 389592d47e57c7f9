#!/usr/bin/env bash
# The tutorial's measured half in one go (docs/tutorial.md, sections 5-7):
# emulate -> bench -> simulate -> compare -> decide -> calibrate -> simulate calibrated.
# Usage: examples/drill/run-drill.sh [OUT_DIR]   (default ./drill-out; needs port 8000 free)
# Everything binds 127.0.0.1; the emulator is stopped on exit. About 40 s on a laptop.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-drill-out}"
mkdir -p "$out"
cd "$out"

servelab emulate --model llama-3.1-8b --gpu h100-sxm --host 127.0.0.1 --port 8000 > emulate.log 2>&1 &
emu_pid=$!
trap 'kill "$emu_pid" 2>/dev/null || true; wait "$emu_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:8000/health > /dev/null && break
  kill -0 "$emu_pid" 2>/dev/null || { cat emulate.log; exit 1; }
  sleep 0.2
done

servelab bench --base-url http://127.0.0.1:8000 --workload chat --request-rate 10 \
  --num-prompts 54 --seed 0 --out runs/measured
servelab simulate --model llama-3.1-8b --gpu h100-sxm --workload chat --rate 10 --duration 6 \
  --seed 0 --out runs/predicted
servelab compare runs/measured runs/predicted --label measured --label predicted \
  --metrics ttft_p50,ttft_p95,tpot_p50,tpot_p95,e2e_p50
python "$here/agreement.py" runs/measured runs/predicted
servelab decide "$here/emulated-vs-simulated.yaml" --ledger ledger.sqlite
servelab calibrate runs/measured --model llama-3.1-8b --gpu h100-sxm --out calib.json
servelab simulate --model llama-3.1-8b --gpu h100-sxm --workload chat --rate 10 --duration 6 \
  --seed 0 --calibration calib.json --out runs/predicted-calibrated
servelab compare runs/measured runs/predicted runs/predicted-calibrated \
  --label measured --label predicted --label calibrated --metrics ttft_p50,tpot_p50
