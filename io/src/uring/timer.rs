//! Timers that the engine's driver keeps itself, for a core whose timers must fire on
//! time while the driver waits in its ring (a load generator pacing its requests).
//!
//! glommio's timers run only when glommio's reactor gets the core, which a driver
//! waiting in its ring delays by up to [`BLOCK_FOR`](super::BLOCK_FOR). These timers
//! are the driver's own: a deadline heap and a slab of wakers. The driver fires what is
//! due on every tick, bounds its wait in the ring by the earliest deadline, and races
//! its sleep through glommio's reactor against a glommio timer for it. So a paced core
//! can wait in its ring between requests, instead of going through glommio's reactor
//! (several system calls and a `membarrier` per sleep) for every request.
//!
//! [`sleep_until`] falls back to glommio's timer on a core without an engine.

use super::Engine;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// One core's pending deadlines.
#[derive(Default)]
pub(crate) struct Timers {
    /// (deadline, slot, sequence); an entry whose slot is gone or reused is stale.
    heap: RefCell<BinaryHeap<Reverse<(Instant, usize, u64)>>>,
    slots: RefCell<slab::Slab<Slot>>,
    seq: Cell<u64>,
}

struct Slot {
    seq: u64,
    waker: Option<Waker>,
    fired: bool,
}

impl Timers {
    /// The earliest live deadline, dropping stale entries on top of the heap.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        let mut heap = self.heap.borrow_mut();
        let slots = self.slots.borrow();
        while let Some(&Reverse((at, key, seq))) = heap.peek() {
            if slots.get(key).is_some_and(|s| s.seq == seq && !s.fired) {
                return Some(at);
            }
            heap.pop();
        }
        None
    }

    /// Wakes every timer due at `now`. Returns how many fired.
    pub(crate) fn fire(&self, now: Instant) -> usize {
        let mut fired = 0;
        let mut heap = self.heap.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        while let Some(&Reverse((at, key, seq))) = heap.peek() {
            if at > now {
                break;
            }
            heap.pop();
            if let Some(slot) = slots.get_mut(key).filter(|s| s.seq == seq && !s.fired) {
                slot.fired = true;
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
                fired += 1;
            }
        }
        fired
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.borrow().is_empty()
    }

    fn insert(&self, at: Instant, waker: Waker) -> (usize, u64) {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let key = self.slots.borrow_mut().insert(Slot {
            seq,
            waker: Some(waker),
            fired: false,
        });
        self.heap.borrow_mut().push(Reverse((at, key, seq)));
        (key, seq)
    }

    /// Whether the timer fired, freeing its slot if so; otherwise its waker is
    /// replaced by `waker`.
    fn poll(&self, key: usize, seq: u64, waker: &Waker) -> bool {
        let mut slots = self.slots.borrow_mut();
        match slots.get_mut(key).filter(|s| s.seq == seq) {
            Some(slot) if !slot.fired => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                false
            }
            Some(_) => {
                slots.remove(key);
                true
            }
            None => true,
        }
    }

    fn remove(&self, key: usize, seq: u64) {
        let mut slots = self.slots.borrow_mut();
        if slots.get(key).is_some_and(|s| s.seq == seq) {
            slots.remove(key);
        }
    }
}

/// Completes at `deadline`: an engine timer on a core that runs the engine, a glommio
/// timer elsewhere.
pub fn sleep_until(deadline: Instant) -> Sleep {
    match super::current() {
        Some(engine) => Sleep::Engine {
            engine,
            deadline,
            key: None,
        },
        None => Sleep::Glommio(glommio::timer::Timer::new(
            deadline.saturating_duration_since(Instant::now()),
        )),
    }
}

/// The future of [`sleep_until`].
pub enum Sleep {
    Engine {
        engine: Rc<Engine>,
        deadline: Instant,
        /// Slot and sequence once registered.
        key: Option<(usize, u64)>,
    },
    Glommio(glommio::timer::Timer),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut() {
            Sleep::Glommio(t) => Pin::new(t).poll(cx).map(|_| ()),
            Sleep::Engine {
                engine,
                deadline,
                key,
            } => match *key {
                Some((k, seq)) => {
                    if engine.timers.poll(k, seq, cx.waker()) {
                        *key = None;
                        return Poll::Ready(());
                    }
                    Poll::Pending
                }
                None => {
                    if *deadline <= Instant::now() {
                        return Poll::Ready(());
                    }
                    let earlier = engine.timers.earliest().is_none_or(|e| *deadline < e);
                    *key = Some(engine.timers.insert(*deadline, cx.waker().clone()));
                    if earlier {
                        // A driver sleeping until a later deadline must look again.
                        engine.wake_driver();
                    }
                    Poll::Pending
                }
            },
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Sleep::Engine {
            engine,
            key: Some((k, seq)),
            ..
        } = self
        {
            engine.timers.remove(*k, *seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    /// Counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn woken(c: &Count) -> usize {
        c.0.load(Ordering::Relaxed)
    }

    #[test]
    fn fires_what_is_due_in_deadline_order_and_nothing_else() {
        let t = Timers::default();
        let base = Instant::now();
        let (late, wl) = waker();
        let (soon, ws) = waker();
        let kl = t.insert(base + Duration::from_millis(20), wl);
        let ks = t.insert(base + Duration::from_millis(10), ws);
        assert_eq!(t.earliest(), Some(base + Duration::from_millis(10)));
        assert_eq!(t.fire(base + Duration::from_millis(9)), 0);
        assert_eq!(t.fire(base + Duration::from_millis(10)), 1);
        assert_eq!((woken(&soon), woken(&late)), (1, 0));
        let (_, w) = waker();
        assert!(t.poll(ks.0, ks.1, &w), "the due timer reads as fired");
        assert!(!t.poll(kl.0, kl.1, &w), "the later one does not");
        assert_eq!(t.earliest(), Some(base + Duration::from_millis(20)));
        assert_eq!(t.fire(base + Duration::from_secs(1)), 1);
        // The poll above replaced the later timer's waker.
        assert_eq!(woken(&late), 0);
        assert_eq!(t.earliest(), None, "fired timers are no longer pending");
    }

    #[test]
    fn a_removed_timer_never_fires_even_when_its_slot_is_reused() {
        let t = Timers::default();
        let base = Instant::now();
        let (old, wo) = waker();
        let (k, seq) = t.insert(base + Duration::from_millis(5), wo);
        t.remove(k, seq);
        assert!(t.is_empty());
        assert_eq!(t.earliest(), None, "the stale heap entry is skipped");
        // A removed timer's heap entry stays until its deadline; the slot's next timer
        // has a new sequence, so that entry must not fire it early.
        let (old2, wo2) = waker();
        let (k2, seq2) = t.insert(base + Duration::from_millis(5), wo2);
        t.remove(k2, seq2);
        let (new, wn) = waker();
        let (k3, _) = t.insert(base + Duration::from_millis(50), wn);
        assert_eq!(k3, k, "the slot is reused");
        assert_eq!(t.fire(base + Duration::from_millis(10)), 0);
        assert_eq!((woken(&old), woken(&old2), woken(&new)), (0, 0, 0));
        assert_eq!(t.fire(base + Duration::from_millis(50)), 1);
        assert_eq!(woken(&new), 1);
    }

    #[test]
    fn removing_a_timer_of_an_older_sequence_leaves_the_new_one() {
        let t = Timers::default();
        let base = Instant::now();
        let (_, w) = waker();
        let (k, seq) = t.insert(base + Duration::from_millis(5), w.clone());
        t.remove(k, seq);
        let (k2, seq2) = t.insert(base + Duration::from_millis(6), w);
        assert_eq!(k2, k);
        t.remove(k, seq);
        assert!(
            !t.is_empty(),
            "a stale remove must not free the slot's new timer"
        );
        assert_eq!(t.earliest(), Some(base + Duration::from_millis(6)));
        t.remove(k2, seq2);
        assert!(t.is_empty());
    }
}
