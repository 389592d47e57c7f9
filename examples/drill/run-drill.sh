#!/usr/bin/env bash
# The tutorial's measured half in one go (docs/tutorial.md, sections 5-7 and the
# emulator speed-up): emulate -> bench -> simulate -> compare -> decide -> calibrate ->
# simulate calibrated; then the emulator at speed-up 4.
# Usage: examples/drill/run-drill.sh [OUT_DIR]   (default ./drill-out; needs ports 8000 and 8001 free)
# Prints a transcript ("$ command" then its output, at 110 columns); the tutorial's
# timing-dependent numbers come from the committed one:
#   examples/drill/run-drill.sh /tmp/drill > examples/drill/transcript.txt
# Everything binds 127.0.0.1; the emulators are stopped on exit. About 45 s.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-drill-out}"
mkdir -p "$out"
cd "$out"
export COLUMNS=110
command -v servelab > /dev/null || {
  echo "servelab: command not found; activate the environment first (source .venv/bin/activate, or make shell)" >&2
  exit 1
}

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done' EXIT

start_emulator() {   # PORT SPEEDUP
  servelab emulate --model llama-3.1-8b --gpu h100-sxm --host 127.0.0.1 --port "$1" --speedup "$2" \
    > "emulate-$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$1/health" > /dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "emulate-$1.log"; exit 1; }
    sleep 0.2
  done
  echo "emulator on port $1 did not answer" >&2
  exit 1
}

run() {              # echo the command, then run it (stderr too: progress and notes)
  echo "\$ ${*//$here/examples/drill}"
  "$@" 2>&1
}

start_emulator 8000 1
run servelab bench --base-url http://127.0.0.1:8000 --workload chat --request-rate 10 \
  --num-prompts 54 --seed 0 --out runs/measured
run servelab simulate --model llama-3.1-8b --gpu h100-sxm --workload chat --request-rate 10 --duration 6 \
  --seed 0 --out runs/predicted
run servelab compare runs/measured runs/predicted --label measured --label predicted \
  --metrics ttft_p50,ttft_p95,tpot_p50,tpot_p95,e2e_p50
run python "$here/agreement.py" runs/measured runs/predicted
run servelab decide "$here/emulated-vs-simulated.yaml" --ledger ledger.sqlite
run servelab calibrate runs/measured --model llama-3.1-8b --gpu h100-sxm --out calib.json
run servelab simulate --model llama-3.1-8b --gpu h100-sxm --workload chat --request-rate 10 --duration 6 \
  --seed 0 --calibration calib.json --out runs/predicted-calibrated
run servelab compare runs/measured runs/predicted runs/predicted-calibrated \
  --label measured --label predicted --label calibrated --metrics ttft_p50,tpot_p50

# The same requests against an emulator running the model's time 4x faster.
start_emulator 8001 4
run servelab bench --base-url http://127.0.0.1:8001 --workload chat --request-rate 40 \
  --num-prompts 54 --seed 0 --out runs/measured-x4
run python "$here/agreement.py" runs/measured-x4 runs/predicted --scale 4
