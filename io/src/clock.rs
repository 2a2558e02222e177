//! The time as of the engine's last reap of completions, so the request path reads the
//! clock once per executor tick instead of a few times per request. The driver notes
//! the time when a tick handled completions, before the tasks those completions woke
//! run, and forgets it when a tick finds nothing (the core may sleep next): a task
//! woken by anything else then reads the real clock. A cached time is behind the real
//! one by at most what the tasks of one pass of the task queue take, so a deadline set
//! from it ends that much early; Portico's deadlines are checked every 10 ms anyway.
//! Without the engine (glommio's sockets) nothing is cached and [`now`] is
//! `Instant::now()`.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static CACHED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The time as of this core's last tick that reaped completions, or the real time when
/// there is none (see the module comment for how stale it may be).
pub fn now() -> Instant {
    CACHED.with(|c| c.get()).unwrap_or_else(Instant::now)
}

/// Reads the clock for the tasks about to run.
pub(crate) fn note() {
    CACHED.with(|c| c.set(Some(Instant::now())));
}

/// Stops answering from the cache until the next [`note`].
pub(crate) fn forget() {
    CACHED.with(|c| c.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cached_between_note_and_forget_real_otherwise() {
        forget();
        let a = now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            now() >= a + Duration::from_millis(5),
            "nothing cached: the real clock"
        );
        note();
        let noted = now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(now(), noted, "cached until forgotten");
        forget();
        assert!(now() >= noted + Duration::from_millis(5));
    }
}
