//! The gateway under test as a child process: `portico gateway --config FILE --listen
//! 127.0.0.1:0 --cores N`, with the address taken from its one stdout line
//! `portico listening on 127.0.0.1:PORT`. Killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long start-up may take before the test fails (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of stderr kept for failure messages (the tail).
const STDERR_KEEP: usize = 256 * 1024;

pub const LISTENING_PREFIX: &str = "portico listening on ";

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "portico-it-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in this directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Options of a gateway start.
pub struct GatewayBuilder {
    config: Option<String>,
    file_name: String,
    cores: usize,
    engine: String,
    args: Vec<String>,
}

impl GatewayBuilder {
    /// `None`: no `--config`, the embedded default document is served.
    pub fn config(mut self, yaml: Option<&str>) -> Self {
        self.config = yaml.map(str::to_owned);
        self
    }

    /// Name of the config file (the extension may tell YAML from JSON).
    pub fn file_name(mut self, name: &str) -> Self {
        self.file_name = name.to_owned();
        self
    }

    pub fn cores(mut self, n: usize) -> Self {
        self.cores = n;
        self
    }

    /// The socket path: `uring` (the default: a test fails if the engine cannot
    /// start, rather than silently testing the fallback) or `glommio`.
    pub fn engine(mut self, engine: &str) -> Self {
        self.engine = engine.to_owned();
        self
    }

    /// One more command-line argument of `portico gateway`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Starts the process and waits for its listening line; panics (with the
    /// gateway's stderr) if it exits or does not listen within a minute.
    pub fn start(self) -> Gateway {
        let dir = TempDir::new();
        let config_path = self.config.as_ref().map(|c| dir.write(&self.file_name, c));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico"));
        cmd.arg("gateway")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--cores")
            .arg(self.cores.to_string())
            .arg("--io-engine")
            .arg(&self.engine);
        if let Some(p) = &config_path {
            cmd.arg("--config").arg(p);
        }
        cmd.args(&self.args);
        cmd.env_remove("PORTICO_CONFIG")
            .env_remove("PORTICO_LISTEN")
            .env_remove("PORTICO_CORES")
            .env_remove("PORTICO_IO_ENGINE")
            .env_remove("PORTICO_RING_FLAGS")
            .env_remove("PORTICO_RING_WAIT")
            .env_remove("PORTICO_FIXED_FILES")
            .env_remove("PORTICO_RING_POLL_US")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        // The child dies with the thread that started it, so a test binary killed
        // mid-run leaves no gateway behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn the portico binary");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr pipe");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut s = sink.lock().unwrap();
                            s.extend_from_slice(&buf[..n]);
                            if s.len() > 2 * STDERR_KEEP {
                                let cut = s.len() - STDERR_KEEP;
                                s.drain(..cut);
                            }
                        }
                    }
                }
            });
        }
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let pipe = child.stdout.take().expect("stdout pipe");
            let lines = stdout_lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }

        let mut gw = Gateway {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            config_path,
            stderr,
            stdout_lines,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                        gw.addr = addr
                            .trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
                        return gw;
                    }
                }
                Err(_) => {
                    let status = gw.wait_exit(Duration::from_millis(500));
                    panic!(
                        "the gateway did not print {LISTENING_PREFIX:?} (exit: {status:?}); stdout: {:?}\nstderr:\n{}",
                        gw.stdout_lines(),
                        gw.stderr_tail()
                    );
                }
            }
        }
    }
}

/// A running gateway process; killed (SIGKILL) and reaped on drop.
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub config_path: Option<PathBuf>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    pub dir: TempDir,
}

impl Gateway {
    pub fn builder(yaml: &str) -> GatewayBuilder {
        GatewayBuilder {
            config: Some(yaml.to_owned()),
            file_name: "portico.yaml".to_owned(),
            cores: 1,
            engine: "uring".to_owned(),
            args: Vec::new(),
        }
    }

    /// One core, config from `yaml`.
    pub fn start(yaml: &str) -> Gateway {
        Self::builder(yaml).start()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    /// Sends a signal (libc::SIGTERM, SIGHUP, ...).
    pub fn signal(&self, sig: i32) {
        let pid = self.pid();
        assert!(pid > 0, "no process to signal");
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits for the process to exit; `None` if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// CPU time the process has used, user and system, in clock ticks (utime + stime
    /// of /proc/PID/stat, all threads).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // The fields after the command name (which may hold spaces) in parentheses.
        let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Resident set size of the process in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Replaces the config file atomically (write a sibling, rename over).
    pub fn replace_config(&self, yaml: &str) {
        let path = self
            .config_path
            .as_ref()
            .expect("gateway has no config file");
        let tmp = path.with_extension("tmp-new");
        std::fs::write(&tmp, yaml).expect("write new config");
        std::fs::rename(&tmp, path).expect("rename new config");
    }

    /// Rewrites the config file in place (truncate and write, same inode).
    pub fn write_config_in_place(&self, yaml: &str) {
        let path = self
            .config_path
            .as_ref()
            .expect("gateway has no config file");
        std::fs::write(path, yaml).expect("rewrite config");
    }

    pub fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap();
        let from = s.len().saturating_sub(16 * 1024);
        String::from_utf8_lossy(&s[from..]).into_owned()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let mut exited_on_its_own = None;
        if let Some(mut child) = self.child.take() {
            match child.try_wait() {
                Ok(None) => {
                    let _ = child.kill();
                }
                Ok(Some(status)) => exited_on_its_own = Some(status),
                Err(_) => {}
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Let the stderr reader catch up with the last lines.
            std::thread::sleep(Duration::from_millis(100));
            if let Some(status) = exited_on_its_own {
                eprintln!("---- the gateway had already exited: {status} ----");
            }
            eprintln!(
                "---- gateway stderr (tail) ----\n{}\n---- end of gateway stderr ----",
                self.stderr_tail()
            );
        }
    }
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `portico ARGS...` to completion; returns (exit status, stdout, stderr).
pub fn run_cli(args: &[&std::ffi::OsStr]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .env_remove("PORTICO_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run the portico binary");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
