//! The control thread: everything that is not request handling and must never run on a
//! data-plane core. It turns signals and file changes into config reloads and drains,
//! compiles documents, and publishes each compiled config to every core.

use super::core::CoreMsg;
use crate::config::{self, CompiledConfig};
use async_channel::Sender;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Where the gateway's config comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// The document built into the binary.
    Embedded,
    /// A YAML or JSON file, reloaded on SIGHUP and when it changes.
    File(PathBuf),
}

impl ConfigSource {
    pub fn load(&self, revision: u64) -> Result<CompiledConfig, config::ConfigErrors> {
        match self {
            ConfigSource::Embedded => config::load_str(config::DEFAULT_CONFIG, revision),
            ConfigSource::File(path) => config::load_file(path, revision),
        }
    }
}

enum Event {
    Reload(&'static str),
    Terminate(i32),
}

/// How often the config file's metadata is checked for a change.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The process's signal handling, installed before anything listens.
pub struct Signals(signal_hook::iterator::Signals);

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM]).map(Signals)
    }
}

/// Runs the control loop until a drain has been sent to every core. Returns after the
/// first SIGTERM/SIGINT; a second one makes the process exit at once.
pub fn run(
    signals: Signals,
    mut stamp: Option<FileStamp>,
    source: ConfigSource,
    mut revision: u64,
    mut drain_timeout: Duration,
    cores: Vec<Sender<CoreMsg>>,
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Event>();
    let mut signals = signals.0;
    let sig_tx = tx.clone();
    std::thread::Builder::new()
        .name("portico-signals".into())
        .spawn(move || {
            let mut terminating = false;
            for sig in signals.forever() {
                let event = match sig {
                    SIGHUP => Event::Reload("SIGHUP"),
                    other => {
                        if terminating {
                            tracing::warn!(signal = other, "second signal: exiting now");
                            std::process::exit(1);
                        }
                        terminating = true;
                        Event::Terminate(other)
                    }
                };
                if sig_tx.send(event).is_err() {
                    break;
                }
            }
        })?;

    loop {
        let event = match rx.recv_timeout(WATCH_INTERVAL) {
            Ok(e) => Some(e),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let reason = match event {
            Some(Event::Terminate(sig)) => {
                tracing::info!(signal = sig, timeout = ?drain_timeout, "draining");
                let deadline = Instant::now() + drain_timeout;
                for core in &cores {
                    let _ = core.send_blocking(CoreMsg::Drain { deadline });
                }
                return Ok(());
            }
            Some(Event::Reload(why)) => why,
            None => {
                let now = file_stamp(&source);
                if now == stamp {
                    continue;
                }
                stamp = now;
                "file changed"
            }
        };
        revision += 1;
        match source.load(revision) {
            Ok(compiled) => {
                drain_timeout = compiled.settings.timeouts.drain;
                let compiled = Arc::new(compiled);
                for core in &cores {
                    let _ = core.send_blocking(CoreMsg::Config(compiled.clone()));
                }
                tracing::info!(revision, reason, "config reloaded");
            }
            Err(errors) => {
                tracing::error!(
                    reason,
                    "config rejected, keeping the running one:\n{errors}"
                );
            }
        }
    }
}

/// What identifies a version of the file: modification time, length and inode.
pub type FileStamp = (SystemTime, u64, u64);

/// The current version of the config file (None for the embedded config or a missing file).
pub fn file_stamp(source: &ConfigSource) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    match source {
        ConfigSource::Embedded => None,
        ConfigSource::File(path) => std::fs::metadata(path).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        }),
    }
}
