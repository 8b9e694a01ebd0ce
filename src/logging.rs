//! Process logging from MOSN's `default_log_path` and `default_log_level`.

use std::fs::OpenOptions;
use std::sync::Mutex;
use tracing::level_filters::LevelFilter;

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
pub fn init(path: Option<&str>, level: Option<&str>) -> std::io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level_filter(level))
        .with_target(false)
        .with_ansi(false);
    match path.unwrap_or("stderr") {
        "" | "stderr" => builder.with_writer(std::io::stderr).init(),
        "stdout" => builder.with_writer(std::io::stdout).init(),
        file => {
            if let Some(dir) = std::path::Path::new(file).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let f = OpenOptions::new().create(true).append(true).open(file)?;
            builder.with_writer(Mutex::new(f)).init()
        }
    }
    Ok(())
}
