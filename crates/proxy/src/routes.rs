//! Route tables that follow updates on open connections, as Envoy's: a listener
//! holds its route table through a [`SharedRoutes`] that outlives config snapshots
//! (one per router name), so a new RDS version reaches the next request of a
//! keep-alive connection, not only new connections. Reading costs a request one
//! relaxed load of a generation counter; the table itself is fetched only after it
//! changed.

use arc_swap::ArcSwap;
use mosn_router::RouteTable;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub struct SharedRoutes {
    table: ArcSwap<RouteTable>,
    generation: AtomicU64,
}

/// A connection's copy of a route table, refreshed when the table changed.
#[derive(Default)]
pub struct RoutesCache {
    generation: u64,
    table: Option<Arc<RouteTable>>,
}

impl SharedRoutes {
    fn new(table: Arc<RouteTable>) -> SharedRoutes {
        SharedRoutes {
            table: ArcSwap::new(table),
            generation: AtomicU64::new(1),
        }
    }

    /// Publishes a new table: the next request of every connection uses it.
    pub fn store(&self, table: Arc<RouteTable>) {
        self.table.store(table);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current table (a reference-count increment).
    pub fn load(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// The current table for a short, synchronous use (no reference count in the
    /// common case; do not hold it across an await).
    pub fn current(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Takes the table out of `cache` (refreshed first), to route one request
    /// without touching the table's shared reference count; give it back with
    /// [`RoutesCache::put_back`].
    pub fn take(&self, cache: &mut RoutesCache) -> Arc<RouteTable> {
        let generation = self.generation.load(Ordering::Acquire);
        match cache.table.take() {
            Some(t) if cache.generation == generation => t,
            _ => {
                cache.generation = generation;
                self.load()
            }
        }
    }
}

impl RoutesCache {
    pub fn put_back(&mut self, table: Arc<RouteTable>) {
        self.table = Some(table);
    }
}

/// The shared tables by (server, router name), for the life of the process.
fn registry() -> &'static Mutex<HashMap<String, Arc<SharedRoutes>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<SharedRoutes>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The shared table of `key`, and whether it existed before. A new one holds `table`
/// at once; an existing one is updated only by [`SharedRoutes::store`] when the
/// snapshot that built `table` is published.
pub(crate) fn shared(key: &str, table: &Arc<RouteTable>) -> (Arc<SharedRoutes>, bool) {
    let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
    match map.get(key) {
        Some(s) => (s.clone(), true),
        None => {
            let s = Arc::new(SharedRoutes::new(table.clone()));
            map.insert(key.to_string(), s.clone());
            (s, false)
        }
    }
}
