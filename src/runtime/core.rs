//! What one core owns: its reference to the compiled config, its upstream pools, its
//! connection count, its drain flag and the tick that parks lingering connections.
//! Everything here is `!Send` on purpose: it is touched only by the executor it belongs
//! to, so the request path takes no locks and no atomics beyond the one `Arc` the
//! control thread hands over on a config swap.

use crate::config::CompiledConfig;
use crate::policy::services::Services;
use crate::upstream::Pools;
use event_listener::{Event, EventListener};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
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
    /// Notified at each linger tick and when a drain starts.
    linger_event: Event,
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
            linger_event: Event::new(),
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
            self.linger_event.notify(usize::MAX);
        }
    }

    /// Lets a keep-alive connection that has just been served wait for its next
    /// request with its task, its buffer and the engine's wakeup, instead of being
    /// parked (and getting a new task when bytes arrive). The returned listener fires
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
                    core.linger_event.notify(usize::MAX);
                }
            })
            .detach();
        }
        Linger {
            listener: self.linger_event.listen(),
            core: self.clone(),
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

/// One lingering connection: await `listener` alongside its receive.
pub struct Linger {
    pub listener: EventListener,
    core: Rc<CoreState>,
}

impl Drop for Linger {
    fn drop(&mut self) {
        self.core
            .lingering
            .set(self.core.lingering.get().saturating_sub(1));
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
