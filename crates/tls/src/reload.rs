//! Certificate reload: a server context's certificate and key files are watched (one
//! thread for the process, polling modification times); when they change and the new
//! pair is good, new handshakes get it. Established connections keep theirs. A bad
//! new pair is logged and the old one stays.

use crate::material::{certified_key, is_file};
use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

/// How often the files are looked at.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A context's current certificate.
#[derive(Debug)]
pub struct CertSlot {
    key: ArcSwap<CertifiedKey>,
    cert_chain: String,
    private_key: String,
    /// JSON path of the context, for logs.
    at: String,
}

impl CertSlot {
    pub(crate) fn new(
        key: Arc<CertifiedKey>,
        cert_chain: &str,
        private_key: &str,
        at: &str,
    ) -> Arc<CertSlot> {
        Arc::new(CertSlot {
            key: ArcSwap::new(key),
            cert_chain: cert_chain.to_string(),
            private_key: private_key.to_string(),
            at: at.to_string(),
        })
    }

    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.key.load_full()
    }

    fn files(&self) -> Vec<PathBuf> {
        [&self.cert_chain, &self.private_key]
            .into_iter()
            .filter(|v| is_file(v))
            .map(PathBuf::from)
            .collect()
    }
}

struct Watched {
    slot: Weak<CertSlot>,
    files: Vec<PathBuf>,
    stamps: Vec<Option<SystemTime>>,
}

fn registry() -> &'static Mutex<Vec<Watched>> {
    static WATCHED: OnceLock<Mutex<Vec<Watched>>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(|| loop {
                std::thread::sleep(RELOAD_INTERVAL);
                poll();
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the TLS certificate reload thread");
        }
        Mutex::new(Vec::new())
    })
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Starts watching a slot's files (inline PEM has none). The watch ends when the
/// slot is dropped (its config was replaced).
pub(crate) fn watch(slot: &Arc<CertSlot>) {
    let files = slot.files();
    if files.is_empty() {
        return;
    }
    let stamps = stamps(&files);
    if let Ok(mut list) = registry().lock() {
        list.push(Watched {
            slot: Arc::downgrade(slot),
            files,
            stamps,
        });
    }
}

fn poll() {
    let Ok(mut list) = registry().lock() else {
        return;
    };
    list.retain_mut(|w| {
        let Some(slot) = w.slot.upgrade() else {
            return false;
        };
        let now = stamps(&w.files);
        if now == w.stamps {
            return true;
        }
        // A pair written one file at a time may fail to match once; the second
        // file's change brings another try.
        w.stamps = now;
        match certified_key(&slot.cert_chain, &slot.private_key, &slot.at) {
            Ok(key) => {
                slot.key.store(key);
                tracing::info!(context = %slot.at, "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; the previous certificate stays");
            }
        }
        true
    });
}
