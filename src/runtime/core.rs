//! What one core owns: its reference to the compiled config, its upstream pools, its
//! connection count and its drain flag. Everything here is `!Send` on purpose: it is
//! touched only by the executor it belongs to, so the request path takes no locks and
//! no atomics beyond the one `Arc` the control thread hands over on a config swap.

use crate::config::CompiledConfig;
use crate::policy::services::Services;
use crate::upstream::Pools;
use event_listener::{Event, EventListener};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

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
