"""Runs scenarios: interleaved rounds of loadgen against every target, CPU per request
from /proc, open-loop latency at a fixed rate, RSS with idle connections, and the
loadgen-vs-wrk comparison."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .procs import (Proc, cpu_busy, cpu_seconds, log, process_tree, quote, rss_kib, socket_fds,
                    loadavg)
from .scenarios import Scenario
from .targets import (ALL_TARGETS, TARGET_CLASSES, Direct, Env, Target, TargetFailed,
                      start_backend)

PCTS = ["p50", "p90", "p99", "p999", "p9999"]

# A run is disturbed when processes other than the target, the backend and loadgen used
# more than this share of the proxy core or of the load core (from /proc/stat). A round
# with a disturbed run is left out of the medians and replaced, up to --extra-rounds.
DISTURBED = 0.10

# Steal time (the hypervisor ran something else while one of our cores had work) above
# this share of the proxy core or of the load core is listed for open-loop runs, but it
# never makes a round disturbed: Portico's runs draw more of it than nginx's on this
# machine, whichever runs first (see perf/README.md), so leaving those rounds out would
# favour Portico.
STOLEN = 0.03

# Fewer clean rounds than this and the medians use every round (and the report says so).
MIN_CLEAN = 3

# Probes of the open-loop rate on the direct path (see Bench._cap_rate): how many at most,
# and how long each measures.
PROBES = 3
PROBE_S = 3.0


def other_load(x: dict, core: str) -> float:
    """The share of a core ("proxy" or "load") that processes other than ours used during a
    run. The stored share is read from busy time, which includes steal; steal is taken out."""
    return max(0.0, (x.get(f"{core}_core_other") or 0.0) - (x.get(f"{core}_core_stolen") or 0.0))


def disturbance(target: str, x: dict) -> str | None:
    """Why a run counts as disturbed, or None. For `direct` nothing of ours runs on the
    proxy core, so only the load core is judged. Steal never disturbs a round (`other_load`)."""
    if not x or "error" in x:
        return None
    p = other_load(x, "proxy") if target != "direct" else 0.0
    lo = other_load(x, "load")
    if p > DISTURBED or lo > DISTURBED:
        return f"other processes used {p * 100:.0f}% of the proxy core, {lo * 100:.0f}% of the load core"
    return None


def stolen(target: str, x: dict, mode: str) -> str | None:
    """A note when the hypervisor took more than STOLEN of a core during an open-loop run."""
    if not x or "error" in x or mode != "open":
        return None
    ps = x.get("proxy_core_stolen", 0.0) if target != "direct" else 0.0
    ls = x.get("load_core_stolen", 0.0)
    if ps > STOLEN or ls > STOLEN:
        return f"the hypervisor took {ps * 100:.1f}% of the proxy core, {ls * 100:.1f}% of the load core"
    return None


def round_disturbances(rd: dict) -> list[str]:
    return [f"{t} {mode}: {why}" for mode in ("closed", "open") for t, x in rd.get(mode, {}).items()
            if (why := disturbance(t, x))]


def rejudge(res: dict) -> None:
    """Applies the current disturbance rule to the rounds of a stored scenario result and
    recomputes its summary (for `perf/run --render NAME --rejudge`)."""
    if not res.get("rounds") or "open" not in res["rounds"][0]:
        return
    for rd in res["rounds"]:
        rd.pop("disturbed", None)
        if why := round_disturbances(rd):
            rd["disturbed"] = why
    res["summary"] = summarize_load(res)


def rounds_used(res: dict) -> list[dict]:
    """The rounds the medians are taken over: the undisturbed ones, or every round when
    fewer than MIN_CLEAN are undisturbed."""
    clean = [rd for rd in res["rounds"] if not rd.get("disturbed")]
    return clean if len(clean) >= MIN_CLEAN else res["rounds"]


def fmt_dur(seconds: float) -> str:
    if abs(seconds - round(seconds)) < 1e-9:
        return f"{int(round(seconds))}s"
    return f"{int(round(seconds * 1000))}ms"


def rotated(targets: list, r: int) -> list:
    """The order of round `r` (from 0): the scenario's targets, starting `r` places further
    on, so that over the rounds every target runs in every place, first and last alike.
    Whatever drifts within a round (the host's load, steal) is then spread over all of them
    instead of always falling on the one that runs last."""
    k = r % len(targets) if targets else 0
    return targets[k:] + targets[:k]


def round_order(sc: dict, rd: dict) -> list[str]:
    """The order a stored round ran its targets in: the one `rotated` gave it, or the
    scenario's own for runs written before rounds rotated."""
    return rd.get("order") or sc.get("targets", [])


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


@dataclass
class Settings:
    repo: Path
    bin_dir: Path
    workroot: Path
    rounds: int = 5
    duration: float = 10.0
    warmup: float = 1.0
    rate: float | None = None
    rate_fraction: float = 0.5
    load_core_max: float = 0.6
    proxy_cpu: int = 1
    load_cpu: int = 0
    conn_limit: int = 30_000
    fd_limit: int = 200_000
    targets: list = field(default_factory=lambda: list(ALL_TARGETS))
    idle_conns: int | None = None
    extra_rounds: int = 3


class Bench:
    def __init__(self, s: Settings):
        self.s = s
        self.anomalies: list[str] = []
        self.measured_runs = 0
        self.current: dict | None = None    # the scenario result being filled (kept if interrupted)
        self.rates: dict[str, float] = {}   # open-loop rate chosen per scenario

    # ------------------------------------------------------------ loadgen

    def loadgen_argv(self, sc: Scenario, url: str, duration: float, rate: float | None,
                     body_file: Path | None, json_out: bool = True) -> list[str]:
        a = ["taskset", "-c", str(self.s.load_cpu), str(self.s.bin_dir / "loadgen"),
             "-t", "1", "-c", str(sc.connections)]
        if sc.method != "GET":
            a += ["-m", sc.method]
        if body_file is not None:
            a += ["--body-file", str(body_file)]
        for k, v in sc.headers.items():
            a += ["-H", f"{k}: {v}"]
        a += [str(x) for x in sc.loadgen_args]
        if rate:
            a += ["-R", str(int(rate))]
        a += ["-d", fmt_dur(duration)]
        if json_out:
            a += ["--json"]
        return a + [url]

    def run_one(self, t: Target, backend: Proc, sc: Scenario, rate: float | None,
                body_file: Path | None, workdir: Path, label: str, duration: float | None = None,
                probe: bool = False) -> dict:
        """A warm-up run, then the measured run with the target's CPU read around it. A probe is not
        counted among the measured runs."""
        mode = "open" if rate else "closed"
        duration = duration or self.s.duration
        if not t.alive():
            return {"error": f"{t.name} is not running (exit code {t.proc.popen.returncode if t.proc else '?'})"}
        url = t.url(sc.path)
        # 1. warm-up: a separate loadgen run, so that the CPU window below holds exactly the
        #    measured requests (loadgen's own --warmup would put unrecorded requests in it).
        if self.s.warmup > 0:
            wargv = self.loadgen_argv(sc, url, self.s.warmup, rate, body_file, json_out=False)
            w = Proc(f"loadgen-warmup-{t.name}", wargv, workdir / f"lg-{label}-warmup.log")
            try:
                rc = w.wait_rusage(timeout=self.s.warmup + 60)
            except subprocess.TimeoutExpired:
                w.stop()
                return {"error": "warm-up run did not finish", "argv": quote(wargv)}
            if rc not in (0,):
                return {"error": f"warm-up loadgen exit {rc}: {w.log_tail(5)}", "argv": quote(wargv)}
        # 2. measured run
        argv = self.loadgen_argv(sc, url, duration, rate, body_file)
        tp, bp = t.pids(), process_tree(backend.pid)
        c0, b0 = cpu_seconds(tp), cpu_seconds(bp)
        p0, l0 = cpu_busy(self.s.proxy_cpu), cpu_busy(self.s.load_cpu)
        w0 = time.monotonic()
        out = workdir / f"lg-{label}.json"
        lg = Proc(f"loadgen-{t.name}", argv, workdir / f"lg-{label}.log", stdout_path=out)
        try:
            rc = lg.wait_rusage(timeout=duration + 120)
        except subprocess.TimeoutExpired:
            lg.stop()
            return {"error": "loadgen did not finish", "argv": quote(argv)}
        wall = time.monotonic() - w0
        c1, b1 = cpu_seconds(tp), cpu_seconds(bp)
        p1, l1 = cpu_busy(self.s.proxy_cpu), cpu_busy(self.s.load_cpu)
        try:
            j = json.loads(out.read_text())
        except Exception as e:
            return {"error": f"loadgen exit {rc}, no JSON ({e}): {lg.log_tail(5)}", "argv": quote(argv)}
        n = j.get("requests", 0)
        cpu = c1 - c0
        if not probe:
            self.measured_runs += 1
        r = {
            "mode": mode,
            "argv": quote(argv),
            "exit_code": rc,
            "requests": n,
            "duration_s": j.get("duration_s"),
            "rps": j.get("rps"),
            "rate": rate,
            "latency_us": {k: j["latency_us"].get(k) for k in PCTS + ["max", "mean", "min"]},
            "latency_uncorrected_us": {k: j["latency_uncorrected_us"].get(k) for k in PCTS + ["max"]},
            "status": j.get("status", {}),
            "errors": j.get("errors", {}),
            "error_messages": j.get("error_messages", {}),
            "target_cpu_s": round(cpu, 3),
            "cpu_us_per_req": cpu * 1e6 / n if n else None,
            "target_cpu_util": cpu / wall if wall else None,
            "backend_cpu_us_per_req": (b1 - b0) * 1e6 / n if n else None,
            "loadgen_cpu_us_per_req": ((lg.rusage.ru_utime + lg.rusage.ru_stime) * 1e6 / n) if (n and lg.rusage) else None,
            "proxy_core_busy": (p1[0] - p0[0]) / max(p1[1] - p0[1], 1e-9),
            # what else ran on the proxy core (for direct, nothing of ours runs there)
            "proxy_core_other": max(0.0, (p1[0] - p0[0]) - (cpu if t.name != "direct" else 0.0)) / max(p1[1] - p0[1], 1e-9),
            "load_core_busy": (l1[0] - l0[0]) / max(l1[1] - l0[1], 1e-9),
            # time the hypervisor ran something else while the core had work (part of busy and other)
            "proxy_core_stolen": (p1[2] - p0[2]) / max(p1[1] - p0[1], 1e-9),
            "load_core_stolen": (l1[2] - l0[2]) / max(l1[1] - l0[1], 1e-9),
            # what else ran on the load core: busy time minus the backend and loadgen themselves
            "load_core_other": max(0.0, (l1[0] - l0[0]) - (b1 - b0) - ((lg.rusage.ru_utime + lg.rusage.ru_stime) if lg.rusage else 0.0)
                                   - (cpu if (t.name != "direct" and self.s.proxy_cpu == self.s.load_cpu) else 0.0))
                               / max(l1[1] - l0[1], 1e-9),
            "wall_s": round(wall, 3),
        }
        self._check(sc.name, t.name, label, r)
        return r

    def _check(self, scen: str, target: str, label: str, r: dict) -> None:
        where = f"{scen}/{target} ({label})"
        errs = {k: v for k, v in r["errors"].items() if v}
        if errs:
            msgs = "; ".join(f"{k}: {m}" for k, m in r.get("error_messages", {}).items())
            self.anomalies.append(f"{where}: loadgen counted errors {errs} {msgs}".strip())
        bad = {k: v for k, v in r["status"].items() if not k.startswith("2")}
        if bad:
            self.anomalies.append(f"{where}: non-2xx answers {bad}")
        if r["exit_code"] != 0:
            self.anomalies.append(f"{where}: loadgen exit code {r['exit_code']}")
        if r["rate"] and r["rps"] is not None and r["rps"] < 0.95 * r["rate"]:
            self.anomalies.append(f"{where}: open loop achieved {r['rps']:.0f} req/s of the {r['rate']:.0f} offered")
        # (runs that shared a core with other work are listed by the report, from the figures)

    # ------------------------------------------------------------ targets

    def _start_targets(self, sc: Scenario, workdir: Path, res: dict):
        backend, bport = start_backend(workdir, self.s.bin_dir, self.s.load_cpu, sc.response_size,
                                       sc.response_chunk)
        res["commands"]["backend"] = backend.command
        env = Env(workdir=workdir, bin_dir=self.s.bin_dir, backend_port=bport, proxy_cpu=self.s.proxy_cpu,
                  load_cpu=self.s.load_cpu, conn_limit=self.s.conn_limit, fd_limit=self.s.fd_limit)
        body = b"x" * sc.request_body if sc.request_body else None
        body_file = None
        if body is not None:
            body_file = workdir / f"body-{sc.request_body}.bin"
            body_file.write_bytes(body)
        targets: list[Target] = []
        for name in [n for n in ALL_TARGETS if n in self.s.targets and n in sc.targets]:
            t = Direct(env, backend) if name == "direct" else TARGET_CLASSES[name](name, env)
            try:
                t.prepare()
                if name in sc.hooks:
                    sc.hooks[name](t.hook_cfg, t)
                t.start()
                t.sanity(sc.method, sc.path, body, sc.response_size, sc.headers)
                if sc.verify is not None:
                    sc.verify(t, sc)
                targets.append(t)
                log(f"{sc.name}: {name} ready on port {t.port}")
            except Exception as e:
                tail = t.proc.log_tail(15) if t.proc else ""
                msg = f"{type(e).__name__}: {e}" + (f"\n--- log tail ---\n{tail}" if tail else "")
                res["failed"][name] = msg
                self.anomalies.append(f"{sc.name}/{name}: failed to start: {e}")
                log(f"{sc.name}: TARGET {name} FAILED TO START: {msg}")
                t.stop()
            res["commands"]["targets"][name] = {
                "command": t.command, "config_file": str(t.config_file) if t.config_file else None,
                "config": t.config_text}
        res["targets"] = [t.name for t in targets]
        return backend, targets, body_file

    def _stop(self, backend: Proc, targets: list[Target]) -> None:
        for t in targets:
            t.stop()
        backend.stop()

    def _new_result(self, sc: Scenario) -> dict:
        self.current = {"definition": sc.definition(), "targets": [], "failed": {}, "rounds": [],
                "commands": {"targets": {}}, "loadavg_start": loadavg()}
        return self.current

    # ------------------------------------------------------------ load scenarios

    def _setup(self, sc: Scenario, workdir: Path) -> tuple[dict | None, str | None]:
        """Runs the scenario's setup (before its definition is recorded: it may add headers)."""
        if sc.setup is None:
            return None, None
        try:
            return sc.setup(sc, workdir), None
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
            self.anomalies.append(f"{sc.name}: setup failed: {msg}")
            log(f"{sc.name}: SETUP FAILED: {msg}")
            return None, msg

    def run_load(self, sc: Scenario) -> dict:
        workdir = self.s.workroot / sc.name
        workdir.mkdir(parents=True, exist_ok=True)
        setup, setup_error = self._setup(sc, workdir)
        res = self._new_result(sc)
        if setup is not None:
            res["setup"] = setup
        if setup_error is not None:
            res["failed"]["setup"] = setup_error
            res["summary"] = {}
            return res
        t_start = time.monotonic()
        backend, targets, body_file = self._start_targets(sc, workdir, res)
        try:
            if not targets:
                return res
            ex = targets[0]
            res["commands"]["loadgen_warmup"] = quote(self.loadgen_argv(sc, ex.url(sc.path), self.s.warmup, None, body_file, False))
            res["commands"]["loadgen_closed"] = quote(self.loadgen_argv(sc, ex.url(sc.path), self.s.duration, None, body_file))
            rate = self.s.rate
            clean, r = 0, 0
            while clean < self.s.rounds and r < self.s.rounds + self.s.extra_rounds:
                order = rotated(targets, r)
                rnd = {"round": r + 1, "order": [t.name for t in order], "closed": {}, "open": {}}
                res["rounds"].append(rnd)   # now, so that an interrupted round is kept
                for t in order:
                    log(f"{sc.name} round {r + 1}: {t.name} closed loop")
                    x = rnd["closed"][t.name] = self.run_one(t, backend, sc, None, body_file, workdir, f"r{r + 1}-{t.name}-closed")
                    self._note(sc, t, x)
                if rate is None:
                    ok = [x["rps"] for x in rnd["closed"].values() if x.get("rps")]
                    if ok:
                        rate = max(1, int(self.s.rate_fraction * min(ok)))
                        log(f"{sc.name}: open-loop rate {rate} req/s ({self.s.rate_fraction:.0%} of the slowest "
                            f"target's round-1 closed-loop rate)")
                        rate = self._cap_rate(sc, backend, targets, rate, body_file, workdir, res)
                if rate:
                    res["commands"]["loadgen_open"] = quote(self.loadgen_argv(sc, ex.url(sc.path), self.s.duration, rate, body_file))
                    for t in order:
                        log(f"{sc.name} round {r + 1}: {t.name} open loop at {rate} req/s")
                        x = rnd["open"][t.name] = self.run_one(t, backend, sc, rate, body_file, workdir, f"r{r + 1}-{t.name}-open")
                        self._note(sc, t, x)
                why = round_disturbances(rnd)
                if why:
                    rnd["disturbed"] = why
                    log(f"{sc.name} round {r + 1} disturbed ({why[0]}{' ...' if len(why) > 1 else ''}): "
                        f"left out of the medians" + (", another round follows"
                                                      if r + 1 < self.s.rounds + self.s.extra_rounds else ""))
                else:
                    clean += 1
                r += 1
            res["rate"] = rate
            if rate:
                self.rates[sc.name] = rate
        finally:
            self._stop(backend, targets)
            res["loadavg_end"] = loadavg()
            res["runtime_s"] = round(time.monotonic() - t_start, 1)
            res["summary"] = summarize_load(res)
        return res

    def _cap_rate(self, sc: Scenario, backend: Proc, targets: list, rate: int, body_file: Path | None,
                  workdir: Path, res: dict) -> int:
        """Lowers the open-loop rate until loadgen and the backend, on the direct path, keep the load core at
        most `load_core_max` busy: latency is measured at a fixed rate, never at saturation of either core
        (at saturation it measures the load core's queue, not the target). Probe runs of PROBE_S seconds,
        not part of any result; their load is loadgen's and the backend's CPU time (neighbours left out)."""
        direct = next((t for t in targets if t.name == "direct"), None)
        if direct is None or not self.s.load_core_max:
            return rate
        probes = res.setdefault("rate_probes", [])
        for i in range(PROBES):
            x = self.run_one(direct, backend, sc, rate, body_file, workdir, f"probe{i + 1}-direct-open", PROBE_S,
                             probe=True)
            if "error" in x:
                probes.append({"rate": rate, "error": x["error"]})
                break
            load = max(0.0, x["load_core_busy"] - x["load_core_other"])
            probes.append({"rate": rate, "load_core_busy": round(x["load_core_busy"], 3), "load": round(load, 3)})
            log(f"{sc.name}: at {rate} req/s loadgen and the backend keep the load core {load:.0%} busy")
            if load <= self.s.load_core_max * 1.1:
                break
            rate = max(1, int(rate * self.s.load_core_max / load))
            log(f"{sc.name}: open-loop rate lowered to {rate} req/s (load core at most {self.s.load_core_max:.0%})")
        return rate

    def _note(self, sc: Scenario, t: Target, x: dict) -> None:
        if "error" in x:
            self.anomalies.append(f"{sc.name}/{t.name}: run failed: {x['error']}")
            log(f"  {t.name}: RUN FAILED: {x['error']}")
        else:
            cpu = x["cpu_us_per_req"]
            log(f"  {t.name}: {x['rps']:.0f} req/s, {cpu:.1f} us CPU/req" if cpu is not None else
                f"  {t.name}: {x['rps']} req/s")

    # ------------------------------------------------------------ memory scenario

    def run_memory(self, sc: Scenario, rate: float | None) -> dict:
        workdir = self.s.workroot / sc.name
        workdir.mkdir(parents=True, exist_ok=True)
        res = self._new_result(sc)
        n = self.s.idle_conns or sc.idle_conns
        res["idle_conns"] = n
        res["settings_duration"] = self.s.duration
        t_start = time.monotonic()
        backend, targets, body_file = self._start_targets(sc, workdir, res)
        per = res["memory"] = {}
        try:
            time.sleep(1.0)
            for t in targets:  # all idle RSS first, before any of them sees the connections
                per[t.name] = {"rss_idle_kib": rss_kib(t.pids()), "processes": len(t.pids())}
            rate = rate if (rate and sc.load_during_idle) else None
            res["rate"] = rate
            for t in targets:
                m = per[t.name]
                log(f"{sc.name}: {t.name}: opening {n} idle keep-alive connections")
                loop = asyncio.new_event_loop()
                try:
                    t0 = time.monotonic()
                    writers, statuses, errors, first = loop.run_until_complete(
                        open_idle(t.port, t.prefix + sc.path, n))
                    m["open_s"] = round(time.monotonic() - t0, 2)
                    m["statuses"] = dict(statuses)
                    m["errors"] = dict(errors)
                    m["error_messages"] = first
                    m["ok"] = statuses.get(200, 0)
                    time.sleep(2.0)
                    m["rss_conns_kib"] = rss_kib(t.pids())
                    m["target_sockets"] = socket_fds(t.pids())
                    m["bytes_per_conn"] = ((m["rss_conns_kib"] - m["rss_idle_kib"]) * 1024 / m["ok"]) if m["ok"] else None
                    log(f"  {t.name}: RSS {m['rss_idle_kib']} KiB idle, {m['rss_conns_kib']} KiB with "
                        f"{m['ok']} connections ({m['target_sockets']} sockets)")
                    if errors:
                        self.anomalies.append(f"{sc.name}/{t.name}: idle connections: {dict(errors)} {first}")
                    bad = {k: v for k, v in statuses.items() if k != 200}
                    if bad:
                        self.anomalies.append(f"{sc.name}/{t.name}: idle connections got non-200 answers {bad}")
                    if rate and t.alive():
                        log(f"  {t.name}: open loop at {rate} req/s with the connections held")
                        x = m["load"] = self.run_one(t, backend, sc, rate, body_file, workdir, f"{t.name}-open-idle")
                        self._note(sc, t, x)
                        m["rss_conns_load_kib"] = rss_kib(t.pids())
                        m["target_sockets_after_load"] = socket_fds(t.pids())
                    for w in writers:
                        w.close()
                    loop.run_until_complete(asyncio.sleep(0.5))
                finally:
                    loop.close()
                time.sleep(2.0)
                m["rss_closed_kib"] = rss_kib(t.pids())
        finally:
            self._stop(backend, targets)
            res["loadavg_end"] = loadavg()
            res["runtime_s"] = round(time.monotonic() - t_start, 1)
        return res

    # ------------------------------------------------------------ loadgen vs wrk

    def run_compare(self) -> dict:
        workdir = self.s.workroot / "compare"
        workdir.mkdir(parents=True, exist_ok=True)
        # Backend on the other core, so that the load generator has core `load_cpu` to itself.
        backend, port = start_backend(workdir, self.s.bin_dir, self.s.proxy_cpu, 12)
        url = f"http://127.0.0.1:{port}/"
        wrk = shutil.which("wrk") or "/usr/bin/wrk"
        pin = ["taskset", "-c", str(self.s.load_cpu)]
        tools = {
            "loadgen": pin + [str(self.s.bin_dir / "loadgen"), "-t", "1", "-c", "64", "-d",
                              fmt_dur(self.s.duration), "--json", url],
            "wrk": pin + [wrk, "-t", "1", "-c", "64", "-d", f"{max(1, round(self.s.duration))}s", url],
        }
        res = {"commands": {"backend": backend.command, **{k: quote(v) for k, v in tools.items()}},
               "rounds": [], "loadavg_start": loadavg()}
        t_start = time.monotonic()
        try:
            for r in range(self.s.rounds):
                rnd = {}
                for tool, argv in tools.items():
                    log(f"compare round {r + 1}/{self.s.rounds}: {tool}")
                    bp = process_tree(backend.pid)
                    b0 = cpu_seconds(bp)
                    p0, l0 = cpu_busy(self.s.proxy_cpu), cpu_busy(self.s.load_cpu)
                    out = workdir / f"r{r + 1}-{tool}.out"
                    p = Proc(tool, argv, workdir / f"r{r + 1}-{tool}.log", stdout_path=out)
                    try:
                        rc = p.wait_rusage(timeout=self.s.duration + 60)
                    except subprocess.TimeoutExpired:
                        p.stop()
                        rnd[tool] = {"error": f"{tool} did not finish"}
                        continue
                    b1 = cpu_seconds(bp)
                    p1, l1 = cpu_busy(self.s.proxy_cpu), cpu_busy(self.s.load_cpu)
                    parsed = parse_loadgen(out.read_text()) if tool == "loadgen" else parse_wrk(out.read_text())
                    x = {"exit_code": rc, **parsed}
                    cpu = p.rusage.ru_utime + p.rusage.ru_stime
                    x["cpu_s"] = round(cpu, 3)
                    n = x.get("requests") or 0
                    x["cpu_us_per_req"] = cpu * 1e6 / n if n else None
                    x["backend_cpu_us_per_req"] = (b1 - b0) * 1e6 / n if n else None
                    # other processes on the generator's core and on the backend's core
                    x["load_core_other"] = max(0.0, (l1[0] - l0[0]) - cpu) / max(l1[1] - l0[1], 1e-9)
                    x["backend_core_other"] = max(0.0, (p1[0] - p0[0]) - (b1 - b0)) / max(p1[1] - p0[1], 1e-9)
                    if rc != 0 or x.get("errors"):
                        self.anomalies.append(f"compare/{tool} round {r + 1}: exit {rc}, errors {x.get('errors')}")
                    if x.get("non_2xx"):
                        self.anomalies.append(f"compare/{tool} round {r + 1}: {x['non_2xx']} non-2xx answers")
                    rnd[tool] = x
                    if x["cpu_us_per_req"] is not None:
                        log(f"  {tool}: {x['rps']:.0f} req/s, {x['cpu_us_per_req']:.2f} us CPU/req")
                res["rounds"].append(rnd)
        finally:
            backend.stop()
            res["loadavg_end"] = loadavg()
            res["runtime_s"] = round(time.monotonic() - t_start, 1)
        summ = {}
        for tool in tools:
            runs = [rd[tool] for rd in res["rounds"] if tool in rd and "error" not in rd[tool]]
            summ[tool] = {
                "rounds_ok": len(runs),
                "rps": median([x.get("rps") for x in runs]),
                "cpu_us_per_req": median([x.get("cpu_us_per_req") for x in runs]),
                "backend_cpu_us_per_req": median([x.get("backend_cpu_us_per_req") for x in runs]),
            }
        ratios = [rd["loadgen"]["cpu_us_per_req"] / rd["wrk"]["cpu_us_per_req"] for rd in res["rounds"]
                  if rd.get("loadgen", {}).get("cpu_us_per_req") and rd.get("wrk", {}).get("cpu_us_per_req")]
        for tool in tools:
            w = summ["wrk"]["cpu_us_per_req"]
            summ[tool]["cpu_ratio_to_wrk"] = (summ[tool]["cpu_us_per_req"] / w) if (w and summ[tool]["cpu_us_per_req"]) else None
        summ["loadgen"]["per_round_ratios"] = ratios
        res["summary"] = summ
        return res


# ---------------------------------------------------------------- helpers

async def open_idle(port: int, path: str, n: int, concurrency: int = 256, timeout: float = 20.0):
    """Opens n connections, sends one GET on each, reads the whole answer, keeps them open."""
    sem = asyncio.Semaphore(concurrency)
    writers, statuses, errors, first = [], Counter(), Counter(), {}
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    def fail(kind, e):
        errors[kind] += 1
        first.setdefault(kind, f"{type(e).__name__}: {e}")

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            except Exception as e:
                return fail("connect", e)
            writers.append(w)
            try:
                w.write(req)
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                cl = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        cl = int(line.split(":", 1)[1])
                if cl:
                    await asyncio.wait_for(r.readexactly(cl), timeout)
                statuses[status] += 1
            except Exception as e:
                fail("response", e)

    await asyncio.gather(*(one() for _ in range(n)))
    return writers, statuses, errors, first


def parse_loadgen(text: str) -> dict:
    try:
        j = json.loads(text)
    except Exception as e:
        return {"error": f"no JSON: {e}"}
    non2xx = sum(v for k, v in j.get("status", {}).items() if not k.startswith("2"))
    return {"requests": j["requests"], "rps": j["rps"], "duration_s": j["duration_s"],
            "errors": {k: v for k, v in j.get("errors", {}).items() if v}, "non_2xx": non2xx,
            "latency_p50_us": j["latency_us"]["p50"], "latency_p99_us": j["latency_us"]["p99"]}


def parse_wrk(text: str) -> dict:
    x: dict = {"raw": text}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if m:
        x["requests"] = int(m.group(1))
        mult = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(3)]
        x["duration_s"] = float(m.group(2)) * mult
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        x["rps"] = float(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errs = {}
    if m:
        errs = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups()) if int(v)}
    x["errors"] = errs
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    x["non_2xx"] = int(m.group(1)) if m else 0
    return x


def summarize_load(res: dict) -> dict:
    rounds = rounds_used(res)
    names = res["targets"]
    ok = lambda x: x is not None and "error" not in x  # noqa: E731
    out = {}
    for t in names:
        closed = [rd["closed"].get(t) for rd in rounds]
        opened = [rd["open"].get(t) for rd in rounds]
        c_ok = [x for x in closed if ok(x)]
        o_ok = [x for x in opened if ok(x)]
        s = {
            "rounds_ok": len(c_ok),
            "rps": median([x["rps"] for x in c_ok]),
            "cpu_us_per_req": median([x["cpu_us_per_req"] for x in c_ok]),
            "target_cpu_util": median([x["target_cpu_util"] for x in c_ok]),
            "backend_cpu_us_per_req": median([x["backend_cpu_us_per_req"] for x in c_ok]),
            "proxy_core_other": median([x["proxy_core_other"] for x in c_ok + o_ok]),
            "load_core_other": median([x["load_core_other"] for x in c_ok + o_ok]),
            "errors": sum(sum(x["errors"].values()) for x in c_ok + o_ok),
            "non_2xx": sum(v for x in c_ok + o_ok for k, v in x["status"].items() if not k.startswith("2")),
            "open_rps": median([x["rps"] for x in o_ok]),
            "open_cpu_us_per_req": median([x["cpu_us_per_req"] for x in o_ok]),
            "open_load_core_busy": median([x.get("load_core_busy") for x in o_ok]),
            "open_proxy_core_busy": median([x.get("proxy_core_busy") for x in o_ok]),
            "latency_us": {p: median([x["latency_us"][p] for x in o_ok]) for p in PCTS + ["max"]},
            "added_us": {},
        }
        for p in PCTS:
            diffs = []
            for rd in rounds:
                a, d = rd["open"].get(t), rd["open"].get("direct")
                if ok(a) and ok(d):
                    diffs.append(a["latency_us"][p] - d["latency_us"][p])
            s["added_us"][p] = median(diffs)
        out[t] = s
    ref = out.get("nginx", {}).get("cpu_us_per_req")
    for t in names:
        s = out[t]
        s["cpu_ratio_to_nginx"] = (s["cpu_us_per_req"] / ref) if (ref and s["cpu_us_per_req"]) else None
        per = []
        for rd in rounds:
            a, n = rd["closed"].get(t), rd["closed"].get("nginx")
            if ok(a) and ok(n) and a["cpu_us_per_req"] and n["cpu_us_per_req"]:
                per.append(a["cpu_us_per_req"] / n["cpu_us_per_req"])
        s["cpu_ratio_to_nginx_per_round"] = per
    # A scenario's own reference (e.g. portico-plain next to portico with policies).
    ref_name = res.get("definition", {}).get("reference")
    ref = out.get(ref_name, {}).get("cpu_us_per_req") if ref_name else None
    for t in names:
        if not ref_name or ref_name not in out:
            break
        s = out[t]
        s["cpu_ratio_to_reference"] = (s["cpu_us_per_req"] / ref) if (ref and s["cpu_us_per_req"]) else None
        s["open_cpu_ratio_to_reference"] = (
            s["open_cpu_us_per_req"] / out[ref_name]["open_cpu_us_per_req"]
            if (s["open_cpu_us_per_req"] and out[ref_name]["open_cpu_us_per_req"]) else None)
        per = []
        for rd in rounds:
            a, n = rd["closed"].get(t), rd["closed"].get(ref_name)
            if ok(a) and ok(n) and a["cpu_us_per_req"] and n["cpu_us_per_req"]:
                per.append(a["cpu_us_per_req"] / n["cpu_us_per_req"])
        s["cpu_ratio_to_reference_per_round"] = per
    return out
