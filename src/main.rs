//! mosn-rs: a MOSN-compatible network proxy. `mosn-rs start -c FILE` runs a MOSN v2
//! JSON config; `validate` checks one; `version` prints the version.

mod control;
mod logging;
mod workers;
mod xds;

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use mosn_config::{load_file, load_str, ConfigError, LoadedConfig};
use mosn_observe::StatsRegistry;
use mosn_proxy::{shutdown::open_connections, Shutdown, Snapshot};
use mosn_upstream::ClusterManager;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workers::WorkerSocket;

/// The config run when `start` is given no `-c`: examples/quickstart.json.
const QUICKSTART: &str = include_str!("../examples/quickstart.json");

/// Exit status for a config that does not load (MOSN users script against it).
const EXIT_BAD_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mosn-rs",
    version,
    about = "A MOSN-compatible multi-protocol network proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Start {
        /// MOSN v2 JSON config file; without it the bundled quickstart runs.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Check a config: print every problem, exit 0 when valid, 2 when not.
    Validate {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("mosn-rs {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate { config } => validate(&config),
        Command::Start { config } => start(config),
    }
}

fn load(path: Option<&PathBuf>) -> Result<LoadedConfig, ConfigError> {
    let mut loaded = match path {
        Some(p) => load_file(p)?,
        None => load_str(QUICKSTART)?,
    };
    // An xDS bootstrap's static clusters join the cluster manager's (the xDS server's
    // among them); its errors stop the start like any other.
    match mosn_xds::bootstrap::parse(&loaded.config) {
        Ok(Some(bootstrap)) => {
            let mut problems = mosn_config::error::Problems::default();
            for (i, c) in bootstrap.static_clusters.into_iter().enumerate() {
                let at = format!("static_resources.clusters[{i}]");
                if loaded
                    .config
                    .cluster_manager
                    .clusters
                    .iter()
                    .any(|k| k.name == c.name)
                {
                    problems.error(
                        format!("{at}.name"),
                        format!("cluster {:?} is also in cluster_manager", c.name),
                    );
                }
                mosn_config::validate::check_cluster(&c, &at, &mut problems);
                loaded.config.cluster_manager.clusters.push(c);
            }
            if !problems.errors.is_empty() {
                return Err(ConfigError::Invalid(problems.errors));
            }
        }
        Ok(None) => {}
        Err(issues) => return Err(ConfigError::Invalid(issues)),
    }
    // Certificates are read and matched to their keys now, so a bad one stops the
    // start (exit 2) with its JSON path.
    let mut issues: Vec<mosn_config::ConfigIssue> = mosn_proxy::snapshot::check_tls(&loaded.config)
        .into_iter()
        .map(|e| mosn_config::ConfigIssue {
            path: e.path,
            message: e.reason,
        })
        .collect();
    issues.extend(mosn_proxy::snapshot::check_access_logs(&loaded.config));
    if !issues.is_empty() {
        return Err(ConfigError::Invalid(issues));
    }
    Ok(loaded)
}

fn print_config_error(path: Option<&PathBuf>, err: &ConfigError) {
    let name = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "quickstart".into());
    eprintln!("mosn-rs: config {name} is not valid:");
    for issue in err.issues() {
        eprintln!("  {issue}");
    }
}

fn validate(path: &PathBuf) -> ExitCode {
    match load(Some(path)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_config_error(Some(path), &e);
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

fn start(path: Option<PathBuf>) -> ExitCode {
    let loaded = match load(path.as_ref()) {
        Ok(l) => l,
        Err(e) => {
            print_config_error(path.as_ref(), &e);
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let server = loaded.config.first_server();
    let logs = match logging::init(
        server.and_then(|s| s.default_log_path.as_deref()),
        server.and_then(|s| s.default_log_level.as_deref()),
    ) {
        Ok(logs) => Arc::new(logs),
        Err(e) => {
            eprintln!("mosn-rs: cannot open log: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if !loaded.warnings.is_empty() {
        let list: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "config: {} item(s) not applied: {}",
            list.len(),
            list.join("; ")
        );
    }
    let config_path = path.map(|p| p.display().to_string()).unwrap_or_default();
    match run(loaded, logs, config_path) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("mosn-rs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    loaded: LoadedConfig,
    logs: Arc<logging::ProcessLog>,
    config_path: String,
) -> Result<ExitCode, String> {
    let config = &loaded.config;
    // Signal handlers come first: a SIGTERM that arrives as soon as a port accepts
    // must drain, not kill.
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let signals = {
        let _enter = control.enter();
        Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?
    };
    let stats = Arc::new(StatsRegistry::default());
    let clusters = Arc::new(ClusterManager::build(
        &config.cluster_manager.clusters,
        stats.clone(),
    ));
    // The tracer's exporter thread starts now; a collector that is down is fine.
    let tracer = match &config.tracing {
        Some(t) => mosn_trace::Tracer::from_config(t).map_err(|e| e.to_string())?,
        None => None,
    };
    let snapshot = Snapshot::build(config, &stats, clusters.clone(), tracer.clone())
        .map_err(|e| e.to_string())?;
    let worker_count = match config.first_server().and_then(|s| s.processor) {
        Some(n) if n > 0 => n as usize,
        _ => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    // Bind everything before any worker starts, so a taken port fails the start.
    let mut per_worker: Vec<Vec<WorkerSocket>> = (0..worker_count).map(|_| Vec::new()).collect();
    for l in snapshot.listeners.iter().filter(|l| l.bind) {
        let sockets = mosn_net::bind_per_worker(l.addr, worker_count, l.transparent())
            .map_err(|e| format!("listener {:?}: {e}", l.name))?;
        for (i, socket) in sockets.into_iter().enumerate() {
            per_worker[i].push(WorkerSocket {
                listener_name: l.name.clone(),
                socket,
            });
        }
        tracing::info!(listener = %l.name, address = %l.addr, "listening");
    }
    let admin_listener = match &config.admin {
        Some(admin) => {
            let sa = &admin.address.socket_address;
            let addr = format!("{}:{}", sa.address, sa.port_value);
            let l = std::net::TcpListener::bind(&addr).map_err(|e| format!("admin {addr}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            tracing::info!(address = %addr, "admin API listening");
            if !sa
                .address
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            {
                // The admin API changes clusters and has no authentication.
                tracing::warn!(address = %addr, "admin API is reachable beyond this host; bind it to 127.0.0.1 unless a firewall guards it");
            }
            Some(l)
        }
        None => None,
    };
    let metrics_listeners = control::bind_metrics(config)?;
    if let Some(pid_path) = config.pid.as_deref().filter(|p| !p.is_empty()) {
        if let Err(e) = std::fs::write(pid_path, format!("{}\n", std::process::id())) {
            tracing::warn!(path = pid_path, error = %e, "cannot write pid file");
        }
    }
    let graceful_timeout = config.graceful_timeout();
    let config_json = serde_json::to_value(config).unwrap_or_default();
    let lifecycle = Arc::new(mosn_admin::Lifecycle::new());
    let info = mosn_admin::ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_path,
        concurrency: worker_count,
        listeners: snapshot
            .listeners
            .iter()
            .map(|l| mosn_admin::ListenerInfo {
                name: l.name.clone(),
                address: l.addr.to_string(),
            })
            .collect(),
    };
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let (drain_tx, shutdown) = Shutdown::channel();
    let mut listener_control = Vec::with_capacity(worker_count);
    for (i, sockets) in per_worker.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        listener_control.push(tx);
        workers::spawn(i, sockets, rx, snapshot.clone(), shutdown.clone())
            .map_err(|e| format!("cannot start worker: {e}"))?;
    }
    tracing::info!(
        workers = worker_count,
        "mosn-rs {} started",
        env!("CARGO_PKG_VERSION")
    );

    let running_config = Arc::new(std::sync::Mutex::new(config_json));
    let xds = match mosn_xds::bootstrap::parse(config) {
        Ok(Some(bootstrap)) => {
            let cluster = config
                .cluster_manager
                .clusters
                .iter()
                .find(|c| c.name == bootstrap.ads_cluster);
            let client = mosn_xds::client_config(&bootstrap, cluster)?;
            let status = Arc::new(mosn_xds::status::XdsStatus::new(&client.uri, client.delta));
            let applier = xds::RuntimeApplier::new(
                config.clone(),
                stats.clone(),
                clusters.clone(),
                tracer.clone(),
                snapshot.clone(),
                listener_control,
                running_config.clone(),
            );
            Some((client, status, applier))
        }
        _ => None,
    };

    control.block_on(async move {
        let xds_status = xds.map(|(client, status, applier)| {
            tracing::info!(server = %client.uri, delta = client.delta, node = %client.node.id, "xDS: connecting");
            let state = mosn_xds::state::XdsState::new(applier);
            tokio::spawn(mosn_xds::ads::run(client, state, status.clone()));
            status
        });
        // Active health checks and outlier detection run here, off the workers.
        let _health = mosn_upstream::health::spawn_health_checks(clusters.clone());
        let _outlier = mosn_upstream::outlier::spawn_outlier_detection(clusters.clone());
        let _dns = mosn_upstream::dns::spawn_dns_refresh(clusters.clone());
        let sources = control::StatSources {
            stats,
            clusters: clusters.clone(),
            tracer: tracer.clone(),
        };
        control::serve_metrics(metrics_listeners, &sources);
        if let Some(l) = admin_listener {
            let doc_sources = sources.clone();
            let dump_status = xds_status.clone();
            let state = Arc::new(mosn_admin::AdminState {
                config: Box::new(move || {
                    let mut doc = running_config.lock().map(|c| c.clone()).unwrap_or_default();
                    if let Some(status) = &dump_status {
                        doc["xds"] = status.to_json();
                    }
                    doc
                }),
                xds: xds_status.clone().map(|s| {
                    Box::new(move || s.to_json()) as Box<dyn Fn() -> serde_json::Value + Send + Sync>
                }),
                stats: Box::new(move || doc_sources.stats_document()),
                prometheus: Box::new(move || sources.prometheus_text(true)),
                clusters: Arc::new(control::ClusterControl(clusters.clone())),
                logs,
                lifecycle: lifecycle.clone(),
                info,
            });
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => {
                    tokio::spawn(mosn_admin::serve(l, state));
                }
                Err(e) => tracing::error!(error = %e, "admin listener"),
            }
        }
        wait_for_stop(signals, drain_tx, graceful_timeout, &lifecycle, tracer.as_deref()).await
    })
}

/// The process signals mosn-rs handles.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside a tokio runtime context.
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        // SIGUSR1: reopen the access log files (logrotate), for the life of the process.
        let mut usr1 = signal(SignalKind::user_defined1())?;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                tracing::info!("SIGUSR1: reopening access logs");
                mosn_proxy::access_log::reopen_all();
            }
        });
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Before a graceful exit: the access log lines and the spans the workers buffered
/// are written and exported (each waits at most 2 s).
fn flush_for_exit(tracer: Option<&mosn_trace::Tracer>) {
    mosn_proxy::access_log::flush_for_exit(Duration::from_secs(2));
    if let Some(tracer) = tracer {
        // The workers hand their spans over at their next flush tick.
        std::thread::sleep(mosn_proxy::access_log::FLUSH_INTERVAL + Duration::from_millis(10));
        tracer.flush_blocking(Duration::from_secs(2));
    }
}

/// SIGTERM (or the admin API's `/quitquitquit`): stop accepting, let exchanges in
/// flight finish (up to the graceful timeout), close idle connections, exit 0.
/// SIGINT: exit at once.
async fn wait_for_stop(
    mut signals: Signals,
    drain_tx: tokio::sync::watch::Sender<bool>,
    graceful_timeout: Duration,
    lifecycle: &mosn_admin::Lifecycle,
    tracer: Option<&mosn_trace::Tracer>,
) -> Result<ExitCode, String> {
    let why = tokio::select! {
        _ = signals.int.recv() => {
            tracing::info!("SIGINT: exiting now");
            return Ok(ExitCode::from(130));
        }
        _ = signals.term.recv() => "SIGTERM",
        _ = lifecycle.stop_requested() => "/quitquitquit",
    };
    tracing::info!(timeout = ?graceful_timeout, "{why}: draining");
    lifecycle.set_draining();
    let _ = drain_tx.send(true);
    let deadline = Instant::now() + graceful_timeout;
    loop {
        let open = open_connections();
        if open == 0 {
            tracing::info!("drained; exiting");
            flush_for_exit(tracer);
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                open,
                "graceful timeout reached; exiting with connections open"
            );
            flush_for_exit(tracer);
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = signals.int.recv() => return Ok(ExitCode::from(130)),
        }
    }
}
