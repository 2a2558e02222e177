#!/usr/bin/env bash
# Server CPU time per request: `loadgen serve` against nginx `return 200`, both on
# CPU 1 with one worker, driven by wrk on CPU 0 (-t 1 -c 64), interleaved rounds.
# Usage: loadgen/bench/serve_vs_nginx.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LOADGEN:-$ROOT/target/release/loadgen}
OUT=$(mktemp -d)
cat > "$OUT/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
error_log $OUT/error.log;
pid $OUT/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:0;
    location / { return 200 "Hello world\n"; }
  }
}
CONF
# nginx cannot listen on port 0: pick a free port first.
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/listen 127.0.0.1:0;/listen 127.0.0.1:$NPORT;/" "$OUT/nginx.conf"
taskset -c 1 nginx -c "$OUT/nginx.conf" &
NGINX_PID=$!
taskset -c 1 "$BIN" serve --listen 127.0.0.1:0 --threads 1 > "$OUT/serve.out" &
SERVE_PID=$!
trap 'kill "$SERVE_PID" "$NGINX_PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
SPORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$OUT/serve.out")
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
printf '%-8s %5s %12s %10s %14s\n' server round requests req/s server_us/req
for round in $(seq "$ROUNDS"); do
  for target in serve nginx; do
    if [ "$target" = serve ]; then pid=$SERVE_PID; port=$SPORT; else pid=$NGINX_PID; port=$NPORT; fi
    t0=$(ticks "$pid")
    taskset -c 0 wrk -t 1 -c 64 -d "${SECS}s" "http://127.0.0.1:$port/" > "$OUT/run"
    t1=$(ticks "$pid")
    req=$(awk '/requests in/ {print $1}' "$OUT/run")
    python3 -c "import sys; t,r,q,a,b,hz,s=sys.argv[1:]; q=int(q); print(f'{t:<8} {r:>5} {q:>12} {q/float(s):>10.0f} {(int(b)-int(a))/int(hz)/q*1e6:>14.3f}')" \
      "$target" "$round" "$req" "$t0" "$t1" "$HZ" "$SECS"
  done
done
