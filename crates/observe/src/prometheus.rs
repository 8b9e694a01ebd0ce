//! Prometheus text exposition (format 0.0.4) of the stats, as MOSN's prometheus sink
//! names them (`pkg/metrics/sink/prometheus`): the metrics type as prefix
//! (`downstream_` for a listener's, `upstream_` for a cluster's and a host's), the key,
//! and the owner as labels (`listener`, `cluster`, `host`). Counters end in `_total`
//! (MOSN's keys without it get the suffix, as `promtool check metrics` wants), and every
//! family has `# HELP` and `# TYPE` lines.
//!
//! Latency histograms keep MOSN's key but not its rendering: MOSN's sink writes a
//! go-metrics histogram as `_min`/`_max` gauges (and optional percentile gauges) in
//! nanoseconds over a decaying sample, which Prometheus cannot aggregate across hosts
//! or instances. They are real Prometheus histograms here (`_bucket{le}`, `_sum`,
//! `_count`) in seconds, named `<MOSN name>_seconds`: the suffix states the unit, and
//! a dashboard built for MOSN's nanosecond gauges cannot silently misread them.
//!
//! Rendering only loads the atomics the hot path adds to; it takes no lock the hot
//! path takes.

use crate::histogram::{us_as_seconds, HistogramSnapshot};
use crate::{ClusterStats, ListenerStats, StatsRegistry};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One value read from a stats group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    Counter(u64),
    Gauge(i64),
    Histogram(HistogramSnapshot),
}

struct Family {
    name: String,
    kind: Kind,
    help: String,
    lines: String,
}

/// Samples gathered by family (the text format wants a family's samples together,
/// under one `# TYPE` line), rendered in the order families first appeared.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample. A family keeps the kind and help it was first added with.
    pub fn sample(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        let out = self.family(name, kind, help);
        write_series(out, name, labels, None, value);
    }

    /// Adds one histogram (family `name`, its value in seconds): a cumulative
    /// `name_bucket` per bound up to `le="+Inf"`, then `name_sum` and `name_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: &HistogramSnapshot,
    ) {
        let out = self.family(name, Kind::Histogram, help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in h.cumulative() {
            let le = bound.map_or_else(|| "+Inf".to_string(), us_as_seconds);
            write_series(out, &bucket, labels, Some(&le), n);
        }
        write_series(
            out,
            &format!("{name}_sum"),
            labels,
            None,
            us_as_seconds(h.sum_us),
        );
        write_series(out, &format!("{name}_count"), labels, None, h.count());
    }

    /// The sample lines of family `name`, created on first use.
    fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut String {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    kind,
                    help: help.to_string(),
                    lines: String::new(),
                });
                self.index.insert(name.to_string(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        let family = &mut self.families[i];
        debug_assert_eq!(family.kind, kind, "{name} added with two kinds");
        &mut family.lines
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.families.iter().map(|f| f.lines.len() + 96).sum());
        for f in &self.families {
            out.push_str("# HELP ");
            out.push_str(&f.name);
            out.push(' ');
            for c in f.help.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('\n');
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            out.push_str(&f.lines);
        }
        out
    }
}

/// One line: `series{labels,le="..."} value`.
fn write_series(
    out: &mut String,
    series: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: impl std::fmt::Display,
) {
    out.push_str(series);
    let le = le.map(|le| ("le", le));
    let mut all = labels.iter().copied().chain(le).peekable();
    if all.peek().is_some() {
        out.push('{');
        for (n, (k, v)) in all.enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, v);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// MOSN's keys where they differ from the stats' own names.
const MOSN_RENAMES: &[(&str, &str)] = &[(
    "upstream_connection_connect_fail",
    "upstream_connection_con_fail",
)];

/// The Prometheus name of stat `key` of a group whose MOSN type is `prefix`
/// (`downstream` or `upstream`), and the status-class label for the response-class
/// counters, which become one family (`..._response_total{code_class="2xx"}`).
/// Histograms get `_seconds` (see the module's comment).
pub fn metric_name(prefix: &str, key: &str, kind: Kind) -> (String, Option<String>) {
    let key = MOSN_RENAMES
        .iter()
        .find(|(ours, _)| *ours == key)
        .map_or(key, |(_, mosn)| mosn);
    let bare = key
        .strip_prefix(prefix)
        .and_then(|k| k.strip_prefix('_'))
        .unwrap_or(key);
    if let Some(class) = bare.strip_prefix("response_") {
        if class.len() == 3 && class.ends_with("xx") {
            return (format!("{prefix}_response_total"), Some(class.to_string()));
        }
    }
    let mut name = format!("{prefix}_{bare}");
    match kind {
        Kind::Counter if !name.ends_with("_total") => name.push_str("_total"),
        Kind::Histogram => name.push_str("_seconds"),
        _ => {}
    }
    (name, None)
}

/// One line of help for a stat key (the group's own names).
pub fn help(key: &str) -> &'static str {
    match key {
        "downstream_connection_total" => "Downstream connections accepted.",
        "downstream_connection_active" => "Downstream connections open.",
        "downstream_connection_destroy" => "Downstream connections closed.",
        "downstream_request_total" => "Downstream requests received.",
        "downstream_request_active" => "Downstream requests in flight.",
        "downstream_request_time" => {
            "Time from a downstream request's start to the end of its response."
        }
        "downstream_bytes_read_total" => "Bytes read from downstream connections.",
        "downstream_bytes_write_total" => "Bytes written to downstream connections.",
        "downstream_bad_request" => "Downstream requests refused as malformed.",
        "downstream_request_timeout" => "Downstream requests that timed out.",
        "no_route" => "Requests that matched no route.",
        "direct_response" => "Requests answered by a direct-response route.",
        "no_healthy_upstream" => "Requests refused for want of a healthy upstream host.",
        "upstream_connect_failure" => "Requests whose upstream connection failed.",
        "upstream_reset" => "Requests whose upstream reset or closed early.",
        "upstream_timeout" => "Requests whose upstream answer timed out.",
        "upstream_overflow" => "Requests refused by a circuit breaker.",
        "downstream_cancel" => "Requests the downstream gave up on.",
        "no_filter_chain" => "Connections that matched no filter chain.",
        "tls_handshake_success" => "Downstream TLS handshakes completed.",
        "tls_handshake_failure" => "Downstream TLS handshakes failed.",
        "proxy_protocol_error" => "Connections refused for a bad PROXY protocol header.",
        "upstream_connection_total" => "Upstream connections opened.",
        "upstream_connection_active" => "Upstream connections open.",
        "upstream_connection_reused" => "Upstream requests sent on a pooled connection.",
        "upstream_connection_connect_fail" => "Upstream connection attempts failed.",
        "upstream_connection_connect_timeout" => "Upstream connection attempts timed out.",
        "upstream_request_total" => "Upstream requests sent.",
        "upstream_request_active" => "Upstream requests in flight.",
        "upstream_request_duration_time" => {
            "Time from sending an upstream request to the end of its response."
        }
        "upstream_request_timeout" => "Upstream requests that timed out.",
        "upstream_request_reset" => "Upstream requests reset.",
        "upstream_request_pending_overflow" => {
            "Upstream requests refused by the pending-requests breaker."
        }
        "upstream_request_overflow" => "Upstream requests refused by the requests breaker.",
        "upstream_connection_overflow" => {
            "Upstream connections refused by the connections breaker."
        }
        "upstream_request_retry" => "Upstream request retries.",
        "upstream_request_retry_overflow" => "Retries refused by the retry budget or breaker.",
        k if k.contains("response_") => "Responses by status class.",
        _ => "A mosn-rs counter (see /api/v1/stats).",
    }
}

/// Adds every sample of one stats group with its owner's labels.
fn write_group(
    out: &mut Exposition,
    prefix: &str,
    labels: &[(&str, &str)],
    each: impl FnOnce(&mut dyn FnMut(&'static str, Sample)),
) {
    each(&mut |key, sample| {
        let kind = match sample {
            Sample::Counter(_) => Kind::Counter,
            Sample::Gauge(_) => Kind::Gauge,
            Sample::Histogram(_) => Kind::Histogram,
        };
        let (name, class) = metric_name(prefix, key, kind);
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        if let Some(class) = &class {
            l.push(("code_class", class));
        }
        match sample {
            Sample::Counter(v) => out.sample(&name, kind, help(key), &l, v),
            Sample::Gauge(v) => out.sample(&name, kind, help(key), &l, v),
            Sample::Histogram(h) => out.histogram(&name, help(key), &l, &h),
        }
    });
}

impl ListenerStats {
    /// `downstream_*{listener="NAME"}`.
    pub fn write_prometheus(&self, listener: &str, out: &mut Exposition) {
        write_group(out, "downstream", &[("listener", listener)], |f| {
            self.each(f)
        });
    }
}

impl ClusterStats {
    /// `upstream_*{cluster="NAME"}`.
    pub fn write_prometheus(&self, cluster: &str, out: &mut Exposition) {
        write_group(out, "upstream", &[("cluster", cluster)], |f| self.each(f));
    }
}

impl StatsRegistry {
    /// Every listener's and cluster's group.
    pub fn write_prometheus(&self, out: &mut Exposition) {
        for (name, stats) in self.listener_groups() {
            stats.write_prometheus(&name, out);
        }
        for (name, stats) in self.cluster_groups() {
            stats.write_prometheus(&name, out);
        }
    }
}

/// The process metrics Prometheus's client libraries export (`process_*`, as MOSN's
/// exporter does unless `disable_collect_process`), read from /proc (Linux).
pub fn write_process(out: &mut Exposition) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    // Linux reports times in USER_HZ, which is 100 on every architecture it runs on.
    const TICKS: f64 = 100.0;
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        out.sample(
            "process_cpu_seconds_total",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
            &[],
            (utime + stime) as f64 / TICKS,
        );
    }
    if let Some(vsize) = field(23) {
        out.sample(
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "Virtual memory size in bytes.",
            &[],
            vsize,
        );
    }
    if let Some(rss_kib) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
    {
        out.sample(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
            &[],
            rss_kib * 1024,
        );
    }
    if let (Some(start), Some(btime)) = (field(22), boot_time()) {
        out.sample(
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since unix epoch in seconds.",
            &[],
            btime as f64 + start as f64 / TICKS,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        out.sample(
            "process_open_fds",
            Kind::Gauge,
            "Number of open file descriptors.",
            &[],
            dir.count(),
        );
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
    {
        out.sample(
            "process_max_fds",
            Kind::Gauge,
            "Maximum number of open file descriptors.",
            &[],
            max,
        );
    }
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_follow_mosn() {
        let n = |p, k, kind| metric_name(p, k, kind);
        assert_eq!(
            n("downstream", "downstream_request_total", Kind::Counter),
            ("downstream_request_total".into(), None)
        );
        assert_eq!(
            n("downstream", "downstream_connection_active", Kind::Gauge),
            ("downstream_connection_active".into(), None)
        );
        assert_eq!(
            n("downstream", "no_route", Kind::Counter),
            ("downstream_no_route_total".into(), None)
        );
        assert_eq!(
            n("downstream", "downstream_response_2xx", Kind::Counter),
            ("downstream_response_total".into(), Some("2xx".into()))
        );
        assert_eq!(
            n(
                "upstream",
                "upstream_connection_connect_fail",
                Kind::Counter
            ),
            ("upstream_connection_con_fail_total".into(), None)
        );
        assert_eq!(
            n("upstream", "upstream_request_retry", Kind::Counter),
            ("upstream_request_retry_total".into(), None)
        );
    }

    #[test]
    fn families_are_grouped_typed_and_escaped() {
        let reg = StatsRegistry::default();
        reg.listener("a").downstream_request_total.add(3);
        reg.listener("b\"x").response(503);
        reg.cluster("c").upstream_request_active.inc();
        let mut out = Exposition::new();
        reg.write_prometheus(&mut out);
        let text = out.render();
        assert!(text.contains("# TYPE downstream_request_total counter\n"));
        assert!(text.contains("downstream_request_total{listener=\"a\"} 3\n"));
        assert!(text.contains("downstream_request_total{listener=\"b\\\"x\"} 0\n"));
        assert!(
            text.contains("downstream_response_total{listener=\"b\\\"x\",code_class=\"5xx\"} 1\n")
        );
        assert!(text.contains("# TYPE upstream_request_active gauge\n"));
        assert!(text.contains("upstream_request_active{cluster=\"c\"} 1\n"));
        // One TYPE line per family, its samples right under it.
        assert_eq!(text.matches("# TYPE downstream_request_total ").count(), 1);
        let block: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("# TYPE downstream_request_total"))
            .skip(1)
            .take(2)
            .collect();
        assert!(block
            .iter()
            .all(|l| l.starts_with("downstream_request_total{")));
    }

    #[test]
    fn a_histogram_is_one_family_of_cumulative_buckets_in_seconds() {
        let h = crate::Histogram::default();
        h.record(Duration::from_micros(30));
        h.record(Duration::from_millis(2));
        h.record(Duration::from_secs(400));
        let mut out = Exposition::new();
        out.histogram("x_seconds", "Help.", &[("cluster", "c")], &h.snapshot());
        let bucket =
            |le: &str, n: u64| format!("x_seconds_bucket{{cluster=\"c\",le=\"{le}\"}} {n}\n");
        let mut expected = "# HELP x_seconds Help.\n# TYPE x_seconds histogram\n".to_string();
        expected += &bucket("0.000025", 0);
        for le in ["0.00005", "0.0001", "0.00025", "0.0005", "0.001"] {
            expected += &bucket(le, 1);
        }
        for le in [
            "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
            "10", "30", "60", "300",
        ] {
            expected += &bucket(le, 2);
        }
        expected += &bucket("+Inf", 3);
        expected += "x_seconds_sum{cluster=\"c\"} 400.00203\n";
        expected += "x_seconds_count{cluster=\"c\"} 3\n";
        assert_eq!(out.render(), expected);
    }

    #[test]
    fn group_histograms_keep_mosn_names_in_seconds() {
        assert_eq!(
            metric_name("downstream", "downstream_request_time", Kind::Histogram),
            ("downstream_request_time_seconds".into(), None)
        );
        let reg = StatsRegistry::default();
        reg.listener("l")
            .downstream_request_time
            .record(Duration::from_millis(3));
        reg.cluster("c")
            .upstream_request_duration_time
            .record(Duration::from_micros(70));
        let mut out = Exposition::new();
        reg.write_prometheus(&mut out);
        let text = out.render();
        assert!(text.contains("# TYPE downstream_request_time_seconds histogram\n"));
        assert!(text.contains(
            "downstream_request_time_seconds_bucket{listener=\"l\",le=\"0.0025\"} 0\n\
             downstream_request_time_seconds_bucket{listener=\"l\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains("downstream_request_time_seconds_sum{listener=\"l\"} 0.003\n"));
        assert!(text.contains("# TYPE upstream_request_duration_time_seconds histogram\n"));
        assert!(text.contains(
            "upstream_request_duration_time_seconds_bucket{cluster=\"c\",le=\"0.0001\"} 1\n"
        ));
        assert!(text.contains("upstream_request_duration_time_seconds_count{cluster=\"c\"} 1\n"));
    }

    /// promtool from the Debian `prometheus` package (scripts/setup.sh): None when it
    /// is missing, except in CI, where a missing checker must not pass as a skip.
    fn promtool() -> Option<std::path::PathBuf> {
        let found = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
            .iter()
            .map(|d| std::path::Path::new(d).join("promtool"))
            .find(|p| p.exists());
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed; scripts/setup.sh installs it"
            );
            eprintln!("skipping: promtool not installed (run scripts/setup.sh)");
        }
        found
    }

    #[test]
    fn an_exposition_with_histograms_passes_promtool() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let Some(promtool) = promtool() else {
            return;
        };
        let reg = StatsRegistry::default();
        for (l, us) in [("a", 40), ("b", 1_500_000)] {
            let s = reg.listener(l);
            s.downstream_request_total.inc();
            s.response(200);
            s.downstream_request_time.record(Duration::from_micros(us));
        }
        let c = reg.cluster("c");
        c.upstream_request_duration_time
            .record(Duration::from_millis(7));
        let mut out = Exposition::new();
        reg.write_prometheus(&mut out);
        // A second label set in the cluster's family, as the hosts' series are.
        let host = crate::Histogram::default();
        host.record(Duration::from_secs(1_000));
        out.histogram(
            "upstream_request_duration_time_seconds",
            help("upstream_request_duration_time"),
            &[("cluster", "c"), ("host", "127.0.0.1:80")],
            &host.snapshot(),
        );
        write_process(&mut out);
        let text = out.render();
        let child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            panic!("cannot run {}", promtool.display());
        };
        if let Some(mut stdin) = child.stdin.take() {
            assert!(stdin.write_all(text.as_bytes()).is_ok());
        }
        let Ok(done) = child.wait_with_output() else {
            panic!("promtool did not finish");
        };
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(
            done.status.success() && said.trim().is_empty(),
            "{said}\n{text}"
        );
    }

    #[test]
    fn process_metrics_are_read() {
        let mut out = Exposition::new();
        write_process(&mut out);
        let text = out.render();
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_open_fds "));
    }
}
