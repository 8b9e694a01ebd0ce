//! Process logging from MOSN's `default_log_path` and `default_log_level`. The level
//! sits behind a reload handle, so the admin API's log endpoints change the running
//! filter ([`ProcessLog`]).

use mosn_admin::{AdminError, LogControl};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

/// MOSN's levels onto tracing's (FATAL has no own level: it logs as ERROR).
pub fn level_filter(level: Option<&str>) -> LevelFilter {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("WARN") => LevelFilter::WARN,
        Some("ERROR") | Some("FATAL") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Sends logs to "stdout", "stderr" (the default) or a file opened for appending.
/// Returns the handle that changes the level while running.
pub fn init(path: Option<&str>, level: Option<&str>) -> std::io::Result<ProcessLog> {
    let path = match path.unwrap_or("stderr") {
        "" => "stderr",
        p => p,
    };
    let writer = match path {
        "stderr" => BoxMakeWriter::new(std::io::stderr),
        "stdout" => BoxMakeWriter::new(std::io::stdout),
        file => {
            if let Some(dir) = std::path::Path::new(file).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let f = OpenOptions::new().create(true).append(true).open(file)?;
            BoxMakeWriter::new(Mutex::new(f))
        }
    };
    let level_name = level.map_or("INFO".to_string(), str::to_ascii_uppercase);
    let (filter, handle) = reload::Layer::new(level_filter(Some(&level_name)));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_target(false)
                .with_ansi(false),
        )
        .init();
    Ok(ProcessLog {
        path: path.to_string(),
        handle,
        state: Mutex::new(LogState {
            level: level_name,
            enabled: true,
        }),
    })
}

struct LogState {
    /// MOSN's name of the level set (kept while the log is disabled).
    level: String,
    enabled: bool,
}

/// The process log as the admin API sees it: one logger named by its path.
pub struct ProcessLog {
    path: String,
    handle: reload::Handle<LevelFilter, Registry>,
    state: Mutex<LogState>,
}

impl ProcessLog {
    fn check_path(&self, path: &str) -> Result<(), AdminError> {
        if path.is_empty() || path == self.path {
            Ok(())
        } else {
            Err(AdminError::BadRequest(format!(
                "no logger {path:?} (loggers: {:?})",
                self.path
            )))
        }
    }

    fn apply(&self, state: &LogState) -> Result<(), AdminError> {
        let filter = if state.enabled {
            level_filter(Some(&state.level))
        } else {
            LevelFilter::OFF
        };
        self.handle
            .reload(filter)
            .map_err(|e| AdminError::BadRequest(format!("cannot change the log filter: {e}")))
    }
}

impl LogControl for ProcessLog {
    fn loggers(&self) -> BTreeMap<String, String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        BTreeMap::from([(self.path.clone(), state.level.clone())])
    }

    fn set_level(&self, path: &str, level: &str) -> Result<(), AdminError> {
        self.check_path(path)?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.level = level.to_string();
        self.apply(&state)
    }

    fn set_enabled(&self, path: &str, enabled: bool) -> Result<(), AdminError> {
        self.check_path(path)?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.enabled = enabled;
        self.apply(&state)
    }
}
