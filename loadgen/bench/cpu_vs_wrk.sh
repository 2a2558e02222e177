#!/usr/bin/env bash
# CPU time per request of loadgen and wrk against the same `loadgen serve` target.
# Backend pinned to CPU 1, load generator to CPU 0, one thread, 64 connections,
# interleaved rounds. Needs: wrk (apt-get install -y wrk), /usr/bin/time, a release
# build (cargo build --release -p loadgen).
# Usage: loadgen/bench/cpu_vs_wrk.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LOADGEN:-$ROOT/target/release/loadgen}
OUT=$(mktemp -d)
trap 'kill "$SERVE_PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT

taskset -c 1 "$BIN" serve --listen 127.0.0.1:0 --threads 1 > "$OUT/serve.out" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q listening "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$OUT/serve.out")
URL="http://127.0.0.1:$PORT/"

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVE_PID/stat"; }
HZ=$(getconf CLK_TCK)

printf '%-8s %5s %12s %10s %8s %12s %12s\n' tool round requests req/s cpu_s cpu_us/req srv_us/req
for round in $(seq "$ROUNDS"); do
  for tool in loadgen wrk; do
    s0=$(server_ticks)
    if [ "$tool" = loadgen ]; then
      /usr/bin/time -f "%U %S" -o "$OUT/time" taskset -c 0 "$BIN" -t 1 -c 64 -d "${SECS}s" --json "$URL" > "$OUT/run"
      req=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$OUT/run")
    else
      /usr/bin/time -f "%U %S" -o "$OUT/time" taskset -c 0 wrk -t 1 -c 64 -d "${SECS}s" "$URL" > "$OUT/run"
      req=$(awk '/requests in/ {print $1}' "$OUT/run")
    fi
    s1=$(server_ticks)
    read -r u s < <(tail -1 "$OUT/time")
    python3 - "$tool" "$round" "$req" "$u" "$s" "$SECS" "$s0" "$s1" "$HZ" <<'PY'
import sys
tool, rnd, req, u, s, secs, s0, s1, hz = sys.argv[1:]
req = int(req); cpu = float(u) + float(s); srv = (int(s1) - int(s0)) / int(hz)
print(f"{tool:<8} {rnd:>5} {req:>12} {req/float(secs):>10.0f} {cpu:>8.2f} {cpu/req*1e6:>12.3f} {srv/req*1e6:>12.3f}")
PY
  done
done
