//! Prometheus text exposition (format 0.0.4) of the stats, as MOSN's prometheus sink
//! names them (`pkg/metrics/sink/prometheus`): the metrics type as prefix
//! (`downstream_` for a listener's, `upstream_` for a cluster's and a host's), the key,
//! and the owner as labels (`listener`, `cluster`, `host`). Counters end in `_total`
//! (MOSN's keys without it get the suffix, as `promtool check metrics` wants), and every
//! family has `# HELP` and `# TYPE` lines.
//!
//! Rendering only loads the atomics the hot path adds to; it takes no lock the hot
//! path takes.

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
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One value read from a stats group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    Counter(u64),
    Gauge(i64),
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
        let out = &mut family.lines;
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (n, (k, v)) in labels.iter().enumerate() {
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
    if kind == Kind::Counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    (name, None)
}

/// One line of help for a stat key (the group's own names).
pub fn help(key: &str) -> &'static str {
    match key {
        "downstream_connection_total" => "Downstream connections accepted.",
        "downstream_connection_active" => "Downstream connections open.",
        "downstream_request_total" => "Downstream requests received.",
        "downstream_request_active" => "Downstream requests in flight.",
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
        };
        let (name, class) = metric_name(prefix, key, kind);
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        if let Some(class) = &class {
            l.push(("code_class", class));
        }
        match sample {
            Sample::Counter(v) => out.sample(&name, kind, help(key), &l, v),
            Sample::Gauge(v) => out.sample(&name, kind, help(key), &l, v),
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
    fn process_metrics_are_read() {
        let mut out = Exposition::new();
        write_process(&mut out);
        let text = out.render();
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_open_fds "));
    }
}
