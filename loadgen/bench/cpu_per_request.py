#!/usr/bin/env python3
"""CPU time per request of load generators and of backends, interleaved rounds.

  clients: loadgen vs wrk (-t1 -c64) against the same `loadgen serve` (CPU 1); the
           client's CPU is its rusage (utime + stime, from wait4), the backend's is
           /proc/PID/stat before and after the run.
  servers: `loadgen serve` (each --idle mode) vs nginx `return 200`, both on CPU 1,
           each driven by the same client (CPU 0); server CPU from /proc/PID/stat.

Usage (repository root, after `cargo build --release -p loadgen`):
  loadgen/bench/cpu_per_request.py clients|servers [--rounds 3] [--secs 10]
        [--driver wrk|loadgen] [--loadgen PATH]
"""
import argparse, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

HZ = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)


def start_serve(binary, extra):
    p = subprocess.Popen(["taskset", "-c", "1", binary, "serve", "--listen", "127.0.0.1:0",
                          "--threads", "1", "--body-size", "12", *extra],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        sys.exit(f"serve did not start: {line!r}")
    return p, int(m.group(1))


def start_nginx(tmp):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    conf = os.path.join(tmp, "nginx.conf")
    open(conf, "w").write(f"""worker_processes 1;
master_process off;
daemon off;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello world!"; }}
  }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", conf])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port


def drive(tool, binary, port, secs):
    """Runs the client on CPU 0; returns (requests, client CPU seconds)."""
    url = f"http://127.0.0.1:{port}/"
    if tool == "wrk":
        cmd = ["taskset", "-c", "0", "wrk", "-t", "1", "-c", "64", "-d", f"{secs}s", url]
    else:
        cmd = ["taskset", "-c", "0", binary, "-t", "1", "-c", "64", "-d", f"{secs}s", "--json", url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{cmd} failed: {out}")
    if tool == "wrk":
        req = int(re.search(r"(\d+) requests in", out).group(1))
    else:
        req = json.loads(out)["requests"]
    return req, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["clients", "servers"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--driver", default="wrk", choices=["wrk", "loadgen"])
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "target/release/loadgen"))
    ap.add_argument("--serve-args", default="", help="extra args of the clients-mode backend")
    ap.add_argument("--servers", default="serve-park,serve-task,nginx")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    procs = {}
    rows = []
    try:
        if a.mode == "clients":
            srv, port = start_serve(a.loadgen, a.serve_args.split())
            procs["serve"] = srv
            time.sleep(0.5)
            print(f"{'tool':<10}{'round':>6}{'requests':>10}{'req/s':>9}{'cpu_us/req':>12}{'srv_us/req':>12}")
            for r in range(1, a.rounds + 1):
                for tool in ["loadgen", "wrk"]:
                    t0 = ticks(srv.pid)
                    req, cpu = drive(tool, a.loadgen, port, a.secs)
                    t1 = ticks(srv.pid)
                    row = (tool, r, req, req / a.secs, cpu / req * 1e6, (t1 - t0) / HZ / req * 1e6)
                    rows.append(row)
                    print(f"{row[0]:<10}{r:>6}{req:>10}{row[3]:>9.0f}{row[4]:>12.2f}{row[5]:>12.2f}", flush=True)
        else:
            targets = {}
            for name in a.servers.split(","):
                if name == "nginx":
                    procs[name], port = start_nginx(tmp)
                else:
                    procs[name], port = start_serve(a.loadgen, ["--idle", name.split("-", 1)[1]])
                targets[name] = port
            time.sleep(0.5)
            print(f"{'server':<12}{'round':>6}{'requests':>10}{'req/s':>9}{'srv_us/req':>12}{'drv_us/req':>12}")
            for r in range(1, a.rounds + 1):
                for name, port in targets.items():
                    t0 = ticks(procs[name].pid)
                    req, cpu = drive(a.driver, a.loadgen, port, a.secs)
                    t1 = ticks(procs[name].pid)
                    row = (name, r, req, req / a.secs, (t1 - t0) / HZ / req * 1e6, cpu / req * 1e6)
                    rows.append(row)
                    print(f"{name:<12}{r:>6}{req:>10}{row[3]:>9.0f}{row[4]:>12.2f}{row[5]:>12.2f}", flush=True)
        print("medians (cpu us/request):")
        for name in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == name]
            col = 4
            print(f"  {name:<12} {statistics.median(x[col] for x in mine):8.2f}"
                  f"   other side {statistics.median(x[5] for x in mine):8.2f}"
                  f"   req/s {statistics.median(x[3] for x in mine):9.0f}")
    finally:
        for p in procs.values():
            p.kill(); p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
