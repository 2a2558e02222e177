"""The targets under test: the backend itself (`direct`), Portico, nginx, haproxy, and
`portico-plain` (Portico with the plain config, no scenario hook: the baseline next to
a `portico` that a scenario gives policies; only scenarios that list it run it).

Each target writes its config file into the scenario's work dir, starts pinned to the
proxy CPU, and is checked with one request of the scenario before any measurement.
A scenario may change a target's config through a hook (see scenarios.py): the hook
receives the target's mutable config object:

* portico: the config document as a dict (written as JSON, which Portico reads as YAML);
* nginx:   a dict of snippet lists: `main`, `events`, `http`, `upstream`, `server`, `location`;
* haproxy: a dict of snippet lists: `global`, `defaults`, `frontend`, `backend`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .procs import Proc, free_port, log, process_tree, wait_line, wait_port

API_PREFIX = "/echo"      # what the proxies serve
BACKEND_PREFIX = "/v1"    # where they send it on the backend


class TargetFailed(Exception):
    pass


@dataclass
class Env:
    """What every target needs to know to start."""
    workdir: Path           # this scenario's work dir
    bin_dir: Path           # snapshot of the release binaries
    backend_port: int
    proxy_cpu: int
    load_cpu: int
    conn_limit: int         # connections each proxy must accept (> the idle-connections test)
    fd_limit: int


@dataclass
class Target:
    name: str
    env: Env
    proc: Proc | None = None
    port: int = 0
    config_file: Path | None = None
    config_text: str = ""
    command: str = ""
    error: str | None = None
    prefix: str = API_PREFIX
    hook_cfg: object = None
    extra: dict = field(default_factory=dict)

    # ---- to override
    def prepare(self) -> None:
        """Builds the mutable config object (before scenario hooks run)."""

    def start(self) -> None:
        raise NotImplementedError

    # ---- common
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def stop(self) -> None:
        if self.proc is not None and self.name != "direct":
            self.proc.stop()

    def sanity(self, method: str, path: str, body: bytes | None, expect_size: int,
               headers: dict | None = None) -> None:
        """One request of the scenario: must be a 200 with the scenario's body size."""
        last = None
        for _ in range(20):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request(method, self.prefix + path, body=body, headers=headers or {})
                r = c.getresponse()
                data = r.read()
                c.close()
                if r.status != 200 or len(data) != expect_size:
                    raise TargetFailed(
                        f"{self.name}: {method} {self.prefix}{path} answered {r.status} with "
                        f"{len(data)} body bytes (expected 200 with {expect_size}): {data[:200]!r}")
                return
            except TargetFailed:
                raise
            except Exception as e:  # not ready yet?
                last = e
                time.sleep(0.1)
        raise TargetFailed(f"{self.name}: {method} {self.prefix}{path} failed: {last}")

    def _write(self, name: str, text: str) -> Path:
        p = self.env.workdir / name
        p.write_text(text)
        self.config_file, self.config_text = p, text
        return p

    def _taskset(self) -> list[str]:
        return ["taskset", "-c", str(self.env.proxy_cpu)]


class Direct(Target):
    """The backend itself: no proxy in between."""

    def __init__(self, env: Env, backend: Proc):
        super().__init__("direct", env, prefix=BACKEND_PREFIX)
        self.proc = backend
        self.port = env.backend_port
        self.command = "(the backend, see above)"

    def start(self) -> None:
        pass


class Portico(Target):
    def prepare(self) -> None:
        self.hook_cfg = {
            "gateway": {
                # The default (10000 per core) is exactly the idle-connections test.
                "limits": {"connectionsPerCore": self.env.conn_limit},
            },
            "apis": [{
                "id": "echo",
                "path": API_PREFIX.strip("/"),
                "serviceUrl": f"http://127.0.0.1:{self.env.backend_port}{BACKEND_PREFIX}",
                "operations": [{"id": "anything", "method": "*", "urlTemplate": "/*"}],
            }],
        }

    def start(self) -> None:
        # Files named after the target: `portico` and `portico-plain` may run side by side.
        cfg = self._write(f"{self.name}.json", json.dumps(self.hook_cfg, indent=2) + "\n")
        argv = self._taskset() + [self.env.bin_dir / "portico", "gateway", "--config", cfg,
                                  "--listen", "127.0.0.1:0", "--cores", "1", "--log-level", "warn",
                                  # Explicit, so that a run never measures the fallback unawares.
                                  "--io-engine", "glommio" if self.name == "portico-glommio" else "uring"]
        if self.name == "portico-poll":
            argv += ["--ring-poll-us", str(POLL_US)]
        self.proc = Proc(self.name, argv, self.env.workdir / f"{self.name}.log",
                         stdout_path=self.env.workdir / f"{self.name}.out")
        self.command = self.proc.command
        addr = wait_line(self.proc, "portico listening on")
        self.port = int(addr.rsplit(":", 1)[1])


class Nginx(Target):
    def prepare(self) -> None:
        self.port = free_port()
        self.hook_cfg = {k: [] for k in ("main", "events", "http", "upstream", "server", "location")}

    def start(self) -> None:
        d = self.env.workdir / "nginx"
        d.mkdir(exist_ok=True)
        for sub in ("logs", "tmp"):
            (d / sub).mkdir(exist_ok=True)
        h = self.hook_cfg
        ind = lambda lines, n: "".join(" " * n + l + "\n" for l in lines)  # noqa: E731
        user = "user root root;\n" if os.geteuid() == 0 else ""
        text = f"""# generated by perf/run
{user}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {self.env.fd_limit};
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
{ind(h['main'], 0)}
events {{
    worker_connections {self.env.conn_limit};
    use epoll;
{ind(h['events'], 4)}}}

http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000000;
    client_body_buffer_size 64k;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
{ind(h['http'], 4)}
    upstream backend {{
        server 127.0.0.1:{self.env.backend_port};
        keepalive 128;
        keepalive_requests 1000000000;
        keepalive_timeout 300s;
{ind(h['upstream'], 8)}    }}

    server {{
        listen 127.0.0.1:{self.port} reuseport backlog=4096;
{ind(h['server'], 8)}
        location {API_PREFIX}/ {{
            proxy_pass http://backend{BACKEND_PREFIX}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{ind(h['location'], 12)}        }}
    }}
}}
"""
        cfg = self._write("nginx.conf", text)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        test = subprocess.run([nginx, "-t", "-q", "-p", f"{d}/", "-e", f"{d}/logs/error.log", "-c", cfg],
                              capture_output=True, text=True)
        if test.returncode != 0:
            raise TargetFailed(f"nginx -t rejected the config: {(test.stdout + test.stderr).strip()}")
        argv = self._taskset() + [nginx, "-p", f"{d}/", "-e", f"{d}/logs/error.log", "-c", cfg]
        self.proc = Proc("nginx", argv, self.env.workdir / "nginx.log")
        self.command = self.proc.command
        wait_port(self.port, self.proc)
        # wait for the worker to exist (it accepts on the reuseport socket)
        deadline = time.monotonic() + 5
        while len(self.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)


class Haproxy(Target):
    def prepare(self) -> None:
        self.port = free_port()
        self.hook_cfg = {k: [] for k in ("global", "defaults", "frontend", "backend")}

    def start(self) -> None:
        h = self.hook_cfg
        ind = lambda lines: "".join("    " + l + "\n" for l in lines)  # noqa: E731
        text = f"""# generated by perf/run (no log lines: logging off)
global
    nbthread 1
    maxconn {self.env.conn_limit}
    # haproxy wants ~2 fds per maxconn; where the hard RLIMIT_NOFILE is lower (20000 on the
    # shared machines), run anyway: the idle-connections test needs ~10,100 + upstream fds.
    no strict-limits
{ind(h['global'])}
defaults
    mode http
    maxconn {self.env.conn_limit}
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 10s
    timeout http-keep-alive 300s
    http-reuse always
{ind(h['defaults'])}
frontend fe
    bind 127.0.0.1:{self.port}
    use_backend be if {{ path_beg {API_PREFIX}/ }}
{ind(h['frontend'])}
backend be
    http-request set-path %[path,regsub(^{API_PREFIX},{BACKEND_PREFIX})]
    server s1 127.0.0.1:{self.env.backend_port}
{ind(h['backend'])}"""
        cfg = self._write("haproxy.cfg", text)
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        test = subprocess.run([haproxy, "-c", "-q", "-f", cfg], capture_output=True, text=True)
        if test.returncode != 0:
            raise TargetFailed(f"haproxy -c rejected the config: {(test.stdout + test.stderr).strip()}")
        argv = self._taskset() + [haproxy, "-db", "-f", cfg]
        self.proc = Proc("haproxy", argv, self.env.workdir / "haproxy.log")
        self.command = self.proc.command
        wait_port(self.port, self.proc)


TARGET_CLASSES = {"direct": Direct, "nginx": Nginx, "haproxy": Haproxy, "portico": Portico,
                  "portico-plain": Portico, "portico-glommio": Portico, "portico-poll": Portico}
# In this order in every round.
ALL_TARGETS = ["direct", "nginx", "haproxy", "portico", "portico-plain", "portico-glommio", "portico-poll"]
# Run only when asked for with --targets: Portico on glommio's sockets instead of the
# io_uring engine, the comparison behind docs/io-engine.md; Portico polling its ring
# for POLL_US before each wait (`--ring-poll-us`), the trade measured in
# docs/io-engine.md, *Polling before the wait*.
OPTIONAL_TARGETS = ["portico-glommio", "portico-poll"]
# What a scenario runs unless it lists its targets.
DEFAULT_TARGETS = ["direct", "nginx", "haproxy", "portico", "portico-glommio", "portico-poll"]
POLL_US = 50


def start_backend(env_workdir: Path, bin_dir: Path, load_cpu: int, body_size: int,
                  chunk_size: int = 0) -> tuple[Proc, int]:
    argv = ["taskset", "-c", str(load_cpu), bin_dir / "loadgen", "serve", "--listen", "127.0.0.1:0",
            "--threads", "1", "--body-size", str(body_size)]
    if chunk_size:
        argv += ["--chunk-size", str(chunk_size)]
    p = Proc("backend", argv, env_workdir / "backend.log", stdout_path=env_workdir / "backend.out")
    addr = wait_line(p, "listening on")
    return p, int(addr.rsplit(":", 1)[1])


def ensure_installed(names: list[str]) -> dict[str, str]:
    """apt-get installs nginx-light / haproxy / wrk when missing; returns errors by name."""
    pkgs = {"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk"}
    missing = [n for n in names if n in pkgs and not (shutil.which(n) or Path(f"/usr/sbin/{n}").exists())]
    errors = {}
    if not missing:
        return errors
    log(f"installing {', '.join(pkgs[n] for n in missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], env=env)
    r = subprocess.run(["apt-get", "install", "-y", *[pkgs[n] for n in missing]], env=env)
    for n in missing:
        if not (shutil.which(n) or Path(f"/usr/sbin/{n}").exists()):
            errors[n] = f"{n} is not installed and apt-get install {pkgs[n]} failed (exit {r.returncode})"
    # Debian starts the packaged services on install: they must not run during the benchmark.
    for svc in missing:
        subprocess.run(["service", svc, "stop"], capture_output=True)
    return errors
