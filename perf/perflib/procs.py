"""Processes the harness starts, and what it reads about them from /proc.

Every process is started in its own session (so its whole process group, e.g. an
nginx master and its worker, can be signalled at once), with PR_SET_PDEATHSIG as a
last resort, and is registered so that `stop_all()` (called from try/finally, atexit
and the signal handlers) kills it.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import platform
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

_live: list["Proc"] = []


def log(msg: str) -> None:
    print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _child_setup() -> None:
    # Die with the harness even if it is SIGKILLed (the normal path is stop_all()).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def quote(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


class Proc:
    """A started process (and its process group), output to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, stdout_path: Path | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.stdout_path = stdout_path or log_path
        self._log = open(log_path, "wb")
        self._out = open(self.stdout_path, "wb") if stdout_path else self._log
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._log,
            cwd=cwd, start_new_session=True, preexec_fn=_child_setup)
        self.pid = self.popen.pid
        self.rusage: resource.struct_rusage | None = None
        _live.append(self)

    @property
    def command(self) -> str:
        return quote(self.argv)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_rusage(self, timeout: float | None = None) -> int:
        """Waits for the process and keeps its rusage (CPU of all its threads)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.rusage = ru
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                self._close_files()
                self._forget()
                return self.popen.returncode
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.argv, timeout)
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.returncode is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Anything left in the group (an nginx worker, a stuck process) goes now.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._close_files()
        self._forget()

    def _forget(self) -> None:
        if self in _live:
            _live.remove(self)

    def _close_files(self) -> None:
        for f in (self._out, self._log):
            try:
                f.close()
            except Exception:
                pass

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for p in dict.fromkeys([self.stdout_path, self.log_path]):
            try:
                out += p.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                pass
        return "\n".join(out[-lines:])


def stop_all() -> None:
    for p in list(reversed(_live)):
        try:
            p.stop(grace=3.0)
        except Exception as e:  # keep going: every process must be stopped
            print(f"perf: could not stop {p.name} (pid {p.pid}): {e}", file=sys.stderr)


class Interrupted(SystemExit):
    """SIGINT/SIGTERM/SIGHUP: unwinds through every finally (processes stopped, partial results written)."""


def _on_signal(signum, _frame):
    raise Interrupted(128 + signum)


def install_cleanup() -> None:
    atexit.register(stop_all)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, _on_signal)


def raise_nofile(want: int = 200_000) -> int:
    """Raises RLIMIT_NOFILE for the harness and its children; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for new_hard in (max(hard, want), hard):
        try:
            new_soft = min(want, new_hard) if new_hard != resource.RLIM_INFINITY else want
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
            return new_soft
        except (ValueError, OSError):
            continue
    return soft


def pin_self(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as e:
        log(f"could not pin the harness to cpu {cpu}: {e}")


# ---------------------------------------------------------------- /proc readers

def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2:].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        f = _stat_fields(int(d))
        if f:
            children.setdefault(int(f[1]), []).append(int(d))  # f[1] = ppid
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if Path(f"/proc/{p}").exists():
            out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of every process in `pids` (each covers all its threads)."""
    total = 0
    for p in pids:
        f = _stat_fields(p)
        if f:
            total += int(f[11]) + int(f[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def rss_kib(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def socket_fds(pids: list[int]) -> int:
    n = 0
    for p in pids:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    if os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:"):
                        n += 1
                except OSError:
                    pass
        except OSError:
            pass
    return n


def cpu_busy(cpu: int) -> tuple[float, float, float]:
    """(busy seconds, total seconds, stolen seconds) of one CPU from /proc/stat. Busy includes
    stolen time: the time the hypervisor ran something else while this CPU had work."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            total = sum(v[:8])
            return (total - idle) / CLK_TCK, total / CLK_TCK, v[7] / CLK_TCK
    return 0.0, 0.0, 0.0


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------- misc

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: Proc, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with code {proc.popen.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} does not accept connections on port {port} after {timeout:.0f} s")


def wait_line(proc: Proc, marker: str, timeout: float = 15.0) -> str:
    """Waits for a stdout line containing `marker`; returns the text after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for line in proc.stdout_path.read_text(errors="replace").splitlines():
                if marker in line:
                    return line.split(marker, 1)[1].strip()
        except OSError:
            pass
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with code {proc.popen.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not print '{marker}' within {timeout:.0f} s")


def run_text(argv: list[str], cwd: Path | None = None, strip: bool = True) -> str:
    try:
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        return out.strip() if strip else out
    except Exception as e:
        return f"unavailable ({e})"


def machine_info() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "model": model,
        "kernel": platform.release(),
        "kernel_full": " ".join(platform.uname()),
        "memory": mem,
        "hostname": platform.node(),
        "python": platform.python_version(),
        "loadavg_start": loadavg(),
    }


def commit_info(repo: Path) -> dict:
    head = run_text(["git", "rev-parse", "HEAD"], cwd=repo)
    status = run_text(["git", "status", "--porcelain"], cwd=repo, strip=False)
    dirty = bool(status.strip())
    return {
        "head": head,
        "short": head[:7],
        "dirty": dirty,
        "describe": f"{head}{' (dirty)' if dirty else ''}",
        "dirty_files": [l for l in status.splitlines() if l.strip()][:200],
    }
