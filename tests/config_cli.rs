//! The command line and config errors, against the real binary: `version`, `--help`,
//! `validate` on every error class (exact JSON path and problem), `start` on a bad
//! config, warnings for keys not applied, SIGINT, and MOSN's own example configs.

mod common;
use common::cli::{run_on_config, run_on_file, validate_fails_with};
use common::corpus::{listening_ports, rewrite_ports};
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mosn-rs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The issue lines of a validate/start failure (each printed as `  path: message`).
fn issues(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(str::trim)
        .collect()
}

/// A valid config (HTTP/1 proxy listener `l` to cluster `up`) as JSON.
fn base() -> (HttpConfig, Value) {
    let cfg = HttpConfig::new(&["127.0.0.1:9".parse().unwrap()]);
    let value = serde_json::from_str(&cfg.render()).unwrap();
    (cfg, value)
}

fn at<'a>(v: &'a mut Value, pointer: &str) -> &'a mut Value {
    v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"))
}

/// Appends to the array at `pointer` a copy of its first element, changed by `change`.
fn push_copy_of_first(v: &mut Value, pointer: &str, change: impl FnOnce(&mut Value)) {
    let array = at(v, pointer).as_array_mut().unwrap();
    let mut copy = array[0].clone();
    change(&mut copy);
    array.push(copy);
}

const FILTER: &str = "/servers/0/listeners/0/filter_chains/0/filters/0";
const ROUTE: &str = "/servers/0/routers/0/virtual_hosts/0/routers/0";

/// Asserts that `config` fails validation with exactly one issue, `expected` (the
/// path and the start of the message).
#[track_caller]
fn assert_single_issue(config: &Value, expected: &str) {
    let stderr = validate_fails_with(&config.to_string());
    let list = issues(&stderr);
    assert_eq!(list.len(), 1, "{expected}: {stderr}");
    assert!(
        list[0].starts_with(expected),
        "expected {expected:?}, got:\n{stderr}"
    );
}

/// Asserts that the valid [`base`] config with `value` at `pointer` fails validation
/// with exactly one issue, `expected`.
#[track_caller]
fn assert_single_issue_when_set(pointer: &str, value: Value, expected: &str) {
    let (_, mut v) = base();
    *at(&mut v, pointer) = value;
    assert_single_issue(&v, expected);
}

#[test]
fn version_and_help() {
    let out = run(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let version = stdout
        .trim()
        .strip_prefix("mosn-rs ")
        .unwrap_or_else(|| panic!("{stdout}"));
    let parts: Vec<&str> = version.split('.').collect();
    assert_eq!(parts.len(), 3, "{version}");
    assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{version}");

    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for cmd in ["start", "validate", "version"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} missing from:\n{help}"
        );
    }
}

#[test]
fn validate_accepts_a_valid_config() {
    let (cfg, _) = base();
    let run = run_on_config("validate", &cfg.render());
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.trim_end().ends_with(": valid"), "{}", run.stdout);
}

#[test]
fn validate_names_path_and_problem_for_each_error_class() {
    // Unknown router name.
    assert_single_issue_when_set(
        &format!("{FILTER}/config/router_config_name"),
        json!("x"),
        "servers[0].listeners[0].filter_chains[0].filters[0].config.router_config_name: no router named \"x\"",
    );

    // Unknown cluster in a route.
    assert_single_issue_when_set(
        &format!("{ROUTE}/route/cluster_name"),
        json!("nope"),
        "servers[0].routers[0].virtual_hosts[0].routers[0].route.cluster_name: no cluster named \"nope\"",
    );

    // Duplicate listener name (on another address).
    let (_, mut v) = base();
    push_copy_of_first(&mut v, "/servers/0/listeners", |l| {
        l["address"] = json!(format!("127.0.0.1:{}", free_port()))
    });
    assert_single_issue(
        &v,
        "servers[0].listeners[1].name: duplicate listener name \"l\"",
    );

    // Duplicate listener address (under another name).
    let (cfg, mut v) = base();
    push_copy_of_first(&mut v, "/servers/0/listeners", |l| l["name"] = json!("l2"));
    assert_single_issue(
        &v,
        &format!(
            "servers[0].listeners[1].address: address 127.0.0.1:{} is already used by servers[0].listeners[0]",
            cfg.port
        ),
    );

    // Bad listener address.
    assert_single_issue_when_set(
        "/servers/0/listeners/0/address",
        json!("localhost:80"),
        "servers[0].listeners[0].address: bad address \"localhost:80\"",
    );

    // Bad host address.
    assert_single_issue_when_set(
        "/cluster_manager/clusters/0/hosts/0/address",
        json!("10.0.0.1"),
        "cluster_manager.clusters[0].hosts[0].address: bad address \"10.0.0.1\"",
    );

    // Duplicate cluster name.
    let (_, mut v) = base();
    push_copy_of_first(&mut v, "/cluster_manager/clusters", |_| {});
    assert_single_issue(
        &v,
        "cluster_manager.clusters[1].name: duplicate cluster name \"up\"",
    );

    // Bad duration string.
    let (_, mut v) = base();
    at(&mut v, &format!("{ROUTE}/route"))["timeout"] = json!("10 parsecs");
    assert_single_issue(
        &v,
        "servers[0].routers[0].virtual_hosts[0].routers[0].route.timeout: invalid duration \"10 parsecs\"",
    );

    // Bad regex.
    assert_single_issue_when_set(
        &format!("{ROUTE}/match"),
        json!({"regex": "(unclosed"}),
        "servers[0].routers[0].virtual_hosts[0].routers[0].match.regex: bad regex",
    );

    // Wrong JSON type.
    assert_single_issue_when_set(
        "/servers/0/listeners/0/bind_port",
        json!("yes"),
        "servers[0].listeners[0].bind_port: invalid type: string \"yes\", expected a boolean",
    );

    // Unknown network filter type.
    assert_single_issue_when_set(
        &format!("{FILTER}/type"),
        json!("frobnicator"),
        "servers[0].listeners[0].filter_chains[0].filters[0].type: unknown network filter \"frobnicator\"",
    );

    // A MOSN protocol not implemented yet.
    assert_single_issue_when_set(
        &format!("{FILTER}/config/downstream_protocol"),
        json!("tars"),
        "servers[0].listeners[0].filter_chains[0].filters[0].config.downstream_protocol: protocol \"tars\" is valid MOSN but not supported by mosn-rs yet",
    );
}

#[test]
fn validate_reports_malformed_json_with_line_and_column() {
    let stderr = validate_fails_with("{\n  \"servers\": [\n    {\"name\": }\n  ]\n}\n");
    let list = issues(&stderr);
    assert_eq!(list.len(), 1, "{stderr}");
    assert!(
        list[0].starts_with("malformed JSON at line 3, column 14:"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_every_issue_of_a_config() {
    let p = free_port();
    let config = format!(
        r#"{{"servers": [{{
  "routers": [{{"router_config_name": "r", "virtual_hosts": [{{"name": "h", "domains": ["*"],
    "routers": [{{"match": {{"prefix": "/"}}, "route": {{"cluster_name": "nope"}}}}]}}]}}],
  "listeners": [
    {{"name": "l", "address": "127.0.0.1:{p}", "bind_port": true,
      "filter_chains": [{{"filters": [{{"type": "frobnicator", "config": {{}}}}]}}]}},
    {{"name": "l", "address": "127.0.0.1:{p}", "bind_port": true,
      "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "tars", "router_config_name": "x"}}}}]}}]}},
    {{"name": "l3", "address": "nowhere", "bind_port": true,
      "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "router_config_name": "r"}}}}]}}]}}
  ]}}],
  "cluster_manager": {{"clusters": [
    {{"name": "up", "hosts": [{{"address": "10.0.0.1"}}]}},
    {{"name": "up", "hosts": []}}
  ]}}
}}"#
    );
    let stderr = validate_fails_with(&config);
    let expected = [
        "cluster_manager.clusters[0].hosts[0].address: bad address \"10.0.0.1\"",
        "cluster_manager.clusters[1].name: duplicate cluster name \"up\"",
        "servers[0].routers[0].virtual_hosts[0].routers[0].route.cluster_name: no cluster named \"nope\"",
        "servers[0].listeners[0].filter_chains[0].filters[0].type: unknown network filter \"frobnicator\"",
        "servers[0].listeners[1].filter_chains[0].filters[0].config.downstream_protocol: protocol \"tars\" is valid MOSN but not supported by mosn-rs yet",
        "servers[0].listeners[1].filter_chains[0].filters[0].config.router_config_name: no router named \"x\"",
        "servers[0].listeners[1].name: duplicate listener name \"l\"",
        &format!("servers[0].listeners[1].address: address 127.0.0.1:{p} is already used by servers[0].listeners[0]"),
        "servers[0].listeners[2].address: bad address \"nowhere\"",
    ];
    let list = issues(&stderr);
    for e in expected {
        assert!(
            list.iter().any(|l| l.starts_with(e)),
            "missing {e:?} in:\n{stderr}"
        );
    }
    assert_eq!(list.len(), expected.len(), "{stderr}");
}

/// Each issue is one line `path: message`, so scripts can read them line by line.
#[test]

fn every_issue_is_one_line() {
    let (_, mut v) = base();
    *at(&mut v, &format!("{ROUTE}/match")) = json!({"regex": "(unclosed"});
    let stderr = validate_fails_with(&v.to_string());
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("mosn-rs: config "), "{stderr}");
    assert_eq!(
        lines.len(),
        2,
        "one header line and one issue line:\n{stderr}"
    );
}

#[test]
fn start_with_a_bad_config_exits_2_without_listening() {
    let (cfg, mut v) = base();
    *at(&mut v, &format!("{ROUTE}/route/cluster_name")) = json!("nope");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let mut child = Command::new(BIN)
        .args(["start", "-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        assert!(
            TcpStream::connect(("127.0.0.1", cfg.port)).is_err(),
            "a bad config listens"
        );
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "start on a bad config did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        issues(&stderr).iter().any(|l| l.starts_with(
            "servers[0].routers[0].virtual_hosts[0].routers[0].route.cluster_name: no cluster named \"nope\""
        )),
        "{stderr}"
    );
    assert!(std::net::TcpListener::bind(("127.0.0.1", cfg.port)).is_ok());
    assert!(std::net::TcpListener::bind(("127.0.0.1", cfg.admin_port)).is_ok());
}

#[test]
fn start_warns_once_about_keys_it_does_not_apply() {
    let up = echo_upstream();
    let mut cfg = HttpConfig::new(&[up.addr]);
    cfg.listener_extra = r#", "perconnection_buffer_limit_bytes": 1, "frobnicate": 1"#.into();
    let m = cfg.start();
    let log = m.log_text();
    let mosn_key = "servers[0].listeners[0].perconnection_buffer_limit_bytes";
    let unknown = "servers[0].listeners[0].frobnicate";
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(mosn_key) || l.contains(unknown))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("WARN"), "{log}");
    assert!(
        lines[0].contains(mosn_key) && lines[0].contains(unknown),
        "{log}"
    );
    // The config still runs.
    let resp = http_exchange(cfg.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(resp.status, 200);
}

/// Waits for `m` to exit within `limit`; its exit status (the child is taken out).
fn exit_status(m: &mut Mosn, limit: Duration) -> ExitStatus {
    let mut child = m.child.take().unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mosn-rs did not exit within {limit:?}:\n{}", m.log_text());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigint_stops_start_promptly() {
    let up = echo_upstream();
    let cfg = HttpConfig::new(&[up.addr]);
    let mut m = cfg.start();
    // An open client connection must not hold the exit back.
    let _client = connect(cfg.port);
    let started = Instant::now();
    m.signal(libc::SIGINT);
    let status = exit_status(&mut m, Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{status:?}");
}

/// Once a listener accepts connections, SIGTERM drains and exits 0 (and SIGINT exits
/// 130): the handlers must be in place before the process looks ready.
#[test]

fn signals_right_after_listening_are_handled() {
    for (sig, code) in [(libc::SIGTERM, 0), (libc::SIGINT, 130)] {
        for _ in 0..5 {
            let cfg = HttpConfig::new(&["127.0.0.1:9".parse().unwrap()]);
            let mut m = Mosn::start(&cfg.render(), &[]);
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", cfg.port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "never listened:\n{}",
                    m.log_text()
                );
            }
            m.signal(sig);
            let status = exit_status(&mut m, Duration::from_secs(5));
            assert_eq!(status.code(), Some(code), "signal {sig}: {status:?}");
        }
    }
}

// ---- MOSN's example configs ----------------------------------------------------

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn corpus_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    json_files(root, &mut files);
    assert!(!files.is_empty(), "no JSON under {}", root.display());
    files
}

#[test]
fn corpus_configs_validate_or_are_not_supported_yet() {
    let Some(root) = require_mosn_corpus() else {
        return;
    };
    let mut valid = Vec::new();
    let mut not_yet = Vec::new();
    let mut wrong = Vec::new();
    for file in corpus_files(&root) {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let run = run_on_file("validate", &file);
        let (stdout, stderr) = (&run.stdout, &run.stderr);
        match run.code {
            Some(0) => valid.push(name),
            Some(2) => {
                let list = issues(stderr);
                if !list.is_empty()
                    && list
                        .iter()
                        .all(|l| l.contains("not supported by mosn-rs yet"))
                {
                    not_yet.push(name);
                } else {
                    wrong.push(format!("{name}:\n{stderr}"));
                }
            }
            other => wrong.push(format!("{name}: exit {other:?}\n{stdout}{stderr}")),
        }
    }
    println!("valid: {valid:#?}\nnot supported yet: {not_yet:#?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn rewrite_ports_is_consistent() {
    let mut map = HashMap::new();
    let text = r#"{"a": "127.0.0.1:2045", "b": ["0.0.0.0:2045", "127.0.0.1:2046"], "port_value": 2046, "weight": 100, "x": "not:an:addr"}"#;
    let out = rewrite_ports(text, &mut map);
    let v: Value = serde_json::from_str(&out).unwrap();
    let p45 = map[&2045];
    let p46 = map[&2046];
    assert_ne!(p45, p46);
    assert_eq!(v["a"], json!(format!("127.0.0.1:{p45}")));
    assert_eq!(v["b"][0], json!(format!("0.0.0.0:{p45}")));
    assert_eq!(v["b"][1], json!(format!("127.0.0.1:{p46}")));
    assert_eq!(v["port_value"], json!(p46));
    assert_eq!(v["weight"], json!(100));
    assert_eq!(v["x"], json!("not:an:addr"));
}

#[test]
fn corpus_configs_that_validate_start_and_serve() {
    let Some(root) = require_mosn_corpus() else {
        return;
    };
    let mut started = Vec::new();
    let mut welcome_checked = false;
    for file in corpus_files(&root) {
        let name = file.strip_prefix(&root).unwrap().to_path_buf();
        if run_on_file("validate", &file).code != Some(0) {
            continue;
        }
        let original = std::fs::read_to_string(&file).unwrap();
        let mut map = HashMap::new();
        let rewritten = rewrite_ports(&original, &mut map);
        let value: Value = serde_json::from_str(&rewritten)
            .unwrap_or_else(|e| panic!("{}: rewrite broke the JSON: {e}", name.display()));
        let ports = listening_ports(&value);
        if ports.is_empty() {
            continue;
        }
        // The copy sits at the same relative place, beside a link to the corpus's
        // certs, so relative paths in it still resolve.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(root.join("certs"), dir.path().join("certs")).unwrap();
        let copy = dir.path().join(&name);
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(&copy, &rewritten).unwrap();
        let mut m = Mosn::start_file(&copy, dir, &ports);
        if name == Path::new("mosn_config.json") {
            let client_port = map[&2045];
            let resp = http_exchange(client_port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(resp.status, 200, "{}", m.log_text());
            assert!(
                resp.body_text().starts_with("Welcome to MOSN!"),
                "{}",
                resp.body_text()
            );
            welcome_checked = true;
        }
        // SIGTERM drains (no exchange is open) and exits 0.
        m.signal(libc::SIGTERM);
        let status = exit_status(&mut m, Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "{}: {status:?}\n{}",
            name.display(),
            m.log_text()
        );
        started.push(name.display().to_string());
    }
    println!("started: {started:#?}");
    assert!(welcome_checked, "mosn_config.json did not start");
}
