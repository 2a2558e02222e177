//! What one core owns: its reference to the compiled config, its upstream pools, its
//! connection count, its drain flag and the tick that parks lingering connections.
//! Everything here is `!Send` on purpose: it is touched only by the executor it belongs
//! to, so the request path takes no locks and no atomics beyond the one `Arc` the
//! control thread hands over on a config swap.

use crate::config::CompiledConfig;
use crate::policy::services::Services;
use crate::upstream::Pools;
use event_listener::{Event, EventListener};
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often lingering connections are told to park (see [`CoreState::linger`]): a
/// connection waits with its task for between none and this long of quiet before
/// handing itself to the engine.
pub const LINGER_TICK: Duration = Duration::from_millis(500);

/// Messages from the control thread to a core.
#[derive(Debug)]
pub enum CoreMsg {
    /// A newly compiled config: swap to it for requests that start from now on.
    Config(Arc<CompiledConfig>),
    /// Stop accepting, finish in-flight requests, close idle connections; give up at `deadline`.
    Drain { deadline: Instant },
}

/// A core's config handle: cloning it is a non-atomic reference-count bump.
pub type ConfigRef = Rc<Arc<CompiledConfig>>;

/// The state of one data-plane core.
pub struct CoreState {
    pub id: usize,
    config: RefCell<Option<ConfigRef>>,
    pub pools: RefCell<Pools>,
    /// Per-core state of policies (rate-limit shard, clock).
    pub services: RefCell<Services>,
    draining: Cell<Option<Instant>>,
    drain_event: Event,
    active: Cell<usize>,
    closed_event: Event,
    /// Connections waiting for their next request with their task (`Linger` guards).
    lingering: Cell<usize>,
    /// Counts linger ticks (and drain starts): a [`Linger`] made in one generation
    /// resolves once the count has moved on.
    linger_generation: Cell<u64>,
    /// The wakers of lingering connections of the current generation. A linger is
    /// made and dropped per keep-alive request, so this is a slab on the core's own
    /// thread, not a cross-thread event with an allocation and a lock per listener.
    linger_wakers: RefCell<Slab<Waker>>,
    /// Whether the ticker task runs (it stops when nothing lingers).
    ticking: Cell<bool>,
}

impl CoreState {
    pub fn new(id: usize, config: Option<Arc<CompiledConfig>>, services: Services) -> Rc<Self> {
        Rc::new(Self {
            id,
            config: RefCell::new(config.map(Rc::new)),
            pools: RefCell::new(Pools::default()),
            services: RefCell::new(services),
            draining: Cell::new(None),
            drain_event: Event::new(),
            active: Cell::new(0),
            closed_event: Event::new(),
            lingering: Cell::new(0),
            linger_generation: Cell::new(0),
            linger_wakers: RefCell::new(Slab::new()),
            ticking: Cell::new(false),
        })
    }

    /// The config a request starts with; it keeps it to the end even if a swap happens.
    pub fn config(&self) -> Option<ConfigRef> {
        self.config.borrow().clone()
    }

    pub fn swap_config(&self, new: Arc<CompiledConfig>) {
        *self.config.borrow_mut() = Some(Rc::new(new));
    }

    pub fn is_draining(&self) -> bool {
        self.draining.get().is_some()
    }

    pub fn drain_deadline(&self) -> Option<Instant> {
        self.draining.get()
    }

    pub fn start_drain(&self, deadline: Instant) {
        if self.draining.get().is_none() {
            self.draining.set(Some(deadline));
            self.drain_event.notify(usize::MAX);
            self.end_linger_generation();
        }
    }

    /// Lets a keep-alive connection that has just been served wait for its next
    /// request with its task, its buffer and the engine's wakeup, instead of being
    /// parked (and getting a new task when bytes arrive). The returned future resolves
    /// at the core's next linger tick or when a drain starts; the connection then
    /// parks or closes. Ticks run only while something lingers, so an idle core
    /// sleeps. Create it before yielding after a check of
    /// [`is_draining`](Self::is_draining), like [`drain_listener`](Self::drain_listener).
    pub fn linger(self: &Rc<Self>) -> Linger {
        self.lingering.set(self.lingering.get() + 1);
        if !self.ticking.replace(true) {
            let core = self.clone();
            portico_io::spawn_local(async move {
                loop {
                    glommio::timer::sleep(LINGER_TICK).await;
                    if core.lingering.get() == 0 {
                        core.ticking.set(false);
                        return;
                    }
                    core.end_linger_generation();
                }
            })
            .detach();
        }
        Linger {
            core: self.clone(),
            generation: self.linger_generation.get(),
            waker: None,
        }
    }

    /// Resolves every [`Linger`] made so far.
    fn end_linger_generation(&self) {
        self.linger_generation
            .set(self.linger_generation.get().wrapping_add(1));
        // Taken out before waking: a wake only schedules its task, but no borrow is
        // held across it either way.
        let wakers: Vec<Waker> = self.linger_wakers.borrow_mut().drain().collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves when a drain starts. Create it before yielding after a check of
    /// [`is_draining`](Self::is_draining) (drains start on the core's own thread).
    pub fn drain_listener(&self) -> EventListener {
        self.drain_event.listen()
    }

    pub fn active_connections(&self) -> usize {
        self.active.get()
    }

    /// Resolves when a connection closes.
    pub fn closed_listener(&self) -> EventListener {
        self.closed_event.listen()
    }

    /// Counts a connection until the guard is dropped.
    pub fn enter(self: &Rc<Self>) -> ConnGuard {
        self.active.set(self.active.get() + 1);
        ConnGuard { core: self.clone() }
    }
}

/// One lingering connection: await it alongside the connection's receive; it resolves
/// at the core's next linger tick or when a drain starts.
pub struct Linger {
    core: Rc<CoreState>,
    /// The linger generation this was made in.
    generation: u64,
    /// Where this linger's waker is in `linger_wakers`, once it has been polled. Valid
    /// only while the generation has not moved on: ending a generation empties the slab.
    waker: Option<usize>,
}

impl Linger {
    fn current(&self) -> bool {
        self.core.linger_generation.get() == self.generation
    }
}

impl Future for Linger {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.current() {
            return Poll::Ready(());
        }
        let mut wakers = self.core.linger_wakers.borrow_mut();
        match self.waker.and_then(|key| wakers.get_mut(key)) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                let key = wakers.insert(cx.waker().clone());
                drop(wakers);
                self.waker = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        self.core
            .lingering
            .set(self.core.lingering.get().saturating_sub(1));
        if let Some(key) = self.waker {
            if self.current() {
                self.core.linger_wakers.borrow_mut().try_remove(key);
            }
        }
    }
}

/// Holds one connection's place in the core's count.
pub struct ConnGuard {
    core: Rc<CoreState>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.core
            .active
            .set(self.core.active.get().saturating_sub(1));
        self.core.closed_event.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::services::{OpenIdKeys, Tables};
    use crate::ratelimit::{CoreShard, NodeLimiter};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn core() -> Rc<CoreState> {
        let services = Services {
            limits: CoreShard::new(NodeLimiter::new(1, 16), 0),
            now: Instant::now(),
            openid: OpenIdKeys::default(),
            tables: Tables::default(),
        };
        CoreState::new(0, None, services)
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn poll(l: &mut Linger, w: &Waker) -> Poll<()> {
        Pin::new(l).poll(&mut Context::from_waker(w))
    }

    /// A tick wakes and resolves every linger made before it, and only those; a linger
    /// dropped after its generation ended never removes the waker of a newer one that
    /// reused its slot.
    #[test]
    fn a_generation_ends_for_the_lingers_made_in_it_only() {
        // `linger` starts the core's ticker task: it needs an executor.
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(|| async { generations() })
            .unwrap()
            .join()
            .unwrap();
    }

    fn generations() {
        let core = core();
        let (a_count, a_waker) = waker();
        let (b_count, b_waker) = waker();
        let mut a = core.linger();
        assert!(poll(&mut a, &a_waker).is_pending());
        assert!(
            poll(&mut a, &a_waker).is_pending(),
            "a second poll re-registers"
        );
        assert_eq!(core.linger_wakers.borrow().len(), 1);

        core.end_linger_generation();
        assert_eq!(a_count.0.load(Ordering::SeqCst), 1, "a tick wakes a");
        assert!(poll(&mut a, &a_waker).is_ready());

        // b takes the slot a had; dropping a (of the old generation) must leave it.
        let mut b = core.linger();
        assert!(poll(&mut b, &b_waker).is_pending());
        drop(a);
        assert_eq!(
            core.linger_wakers.borrow().len(),
            1,
            "b's waker is still there"
        );
        core.end_linger_generation();
        assert_eq!(b_count.0.load(Ordering::SeqCst), 1, "the next tick wakes b");
        assert!(poll(&mut b, &b_waker).is_ready());
        drop(b);
        assert_eq!(core.lingering.get(), 0);

        // A linger dropped before any tick takes its waker with it.
        let mut c = core.linger();
        assert!(poll(&mut c, &a_waker).is_pending());
        drop(c);
        assert!(core.linger_wakers.borrow().is_empty());
    }
}
