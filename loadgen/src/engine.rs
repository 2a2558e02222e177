//! Which socket path an executor thread uses: Portico's per-core io_uring engine
//! (`portico-io`), which batches every socket operation of a tick into one
//! `io_uring_enter`, or glommio's `TcpStream`, the portable fallback.
//!
//! `--io-engine auto` (the default) tries the engine and falls back with one warning
//! on stderr; `uring` makes a missing engine an error; `glommio` never tries it. This
//! module only starts the engine: the sockets themselves are [`portico_io::Socket`]s.

use clap::ValueEnum;
use portico_io::uring::{self, Engine, Flavor};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The `--io-engine` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoEngine {
    /// io_uring engine if the kernel allows it, else glommio sockets (with a warning).
    Auto,
    /// io_uring engine or fail.
    Uring,
    /// glommio sockets only.
    Glommio,
}

/// Set once the fallback warning has been printed (one line per process, not per thread).
static WARNED: AtomicBool = AtomicBool::new(false);

/// Starts this executor thread's engine as `choice` asks. `Ok(None)`: use glommio's
/// sockets. Must run inside the thread's glommio executor, once.
pub fn start(choice: IoEngine) -> Result<Option<Rc<Engine>>, String> {
    if choice == IoEngine::Glommio {
        return Ok(None);
    }
    // The driver waits for completions in its ring between requests (the default):
    // loadgen's timers are the engine's own (`transport::sleep_until`), which end the
    // wait when they are due, so pacing stays on time.
    match uring::start(uring::Options {
        flavor: Flavor::Defer,
        ..uring::Options::default()
    }) {
        Ok(engine) => Ok(Some(engine)),
        Err(e) if choice == IoEngine::Auto => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "loadgen: warning: io_uring engine unavailable ({e}); using glommio sockets"
                );
            }
            Ok(None)
        }
        Err(e) => Err(format!("io_uring engine unavailable: {e}")),
    }
}
