//! xDS updates under load: wrk drives mosn-rs (2 workers, delta ADS) while the test
//! control plane pushes 20 snapshots, alternating a route change (RDS: the virtual
//! host switches between clusters ca and cb) and an endpoint change (EDS: the
//! routed cluster's ClusterLoadAssignment moves to other upstreams among u0..u3),
//! every 150-250 ms. wrk must see no non-2xx/3xx response and no socket error.
//! After each ACK, requests on new connections go to the new target (checked
//! during the wrk phase, then again in a second phase of 20 pushes without wrk,
//! where a keep-alive connection opened before the push must follow both: as in
//! Envoy, the next request on an open connection is routed by the newest route
//! configuration).

mod common;

use common::peers::peer_program;
use common::xds::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "mosn";
const LIMIT: Duration = Duration::from_secs(15);
/// How long mosn-rs may take to ACK one push.
const ACK_LIMIT: Duration = Duration::from_secs(3);
const PUSHES: usize = 20;
const TAGS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const CLUSTERS: [&str; 2] = ["ca", "cb"];
/// Endpoint sets an EDS push picks from (indexes into the upstreams).
const SETS: [&[usize]; 8] = [&[0], &[1], &[2], &[3], &[0, 1], &[2, 3], &[1, 2], &[0, 3]];

/// What a snapshot routes to: the routed cluster and each cluster's endpoints.
#[derive(Clone, Debug)]
struct State {
    target: usize,
    eps: [Vec<usize>; 2],
    /// Position in SETS of the next endpoint set to try.
    next_set: usize,
}

/// A push: which type it changes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Change {
    Route,
    Endpoints,
}

impl State {
    fn expected(&self) -> BTreeSet<&'static str> {
        self.eps[self.target].iter().map(|&i| TAGS[i]).collect()
    }

    /// The next state: push `n` (1-based) flips the route when odd, moves the
    /// routed cluster's endpoints when even. Every push changes what is expected,
    /// and the two clusters' endpoint sets never overlap (so a flip changes it too, and
    /// an answer tells which cluster served it).
    fn step(&self, n: usize) -> (State, Change) {
        let mut s = self.clone();
        if n % 2 == 1 {
            s.target = 1 - s.target;
            return (s, Change::Route);
        }
        let other = s.eps[1 - s.target].clone();
        loop {
            let set = SETS[s.next_set % SETS.len()].to_vec();
            s.next_set += 1;
            if set != s.eps[s.target] && set.iter().all(|u| !other.contains(u)) {
                s.eps[s.target] = set;
                return (s, Change::Endpoints);
            }
        }
    }

    fn resources(&self, port: u16, ups: &[Upstream]) -> Vec<Value> {
        let mut out = vec![
            listener_http("l", port, "rc"),
            route_config("rc", vhosts_to(CLUSTERS[self.target])),
        ];
        for (i, name) in CLUSTERS.iter().enumerate() {
            let hosts: Vec<_> = self.eps[i].iter().map(|&u| (ups[u].addr, 1)).collect();
            out.push(cluster_eds(name));
            out.push(cla(name, &hosts));
        }
        out
    }
}

fn type_of(change: Change) -> &'static str {
    match change {
        Change::Route => RDS,
        Change::Endpoints => EDS,
    }
}

/// Pushes `state` as `version` and waits for mosn-rs's ACK of the type it changes;
/// how long the ACK took.
fn push(
    xds: &XdsServer,
    port: u16,
    ups: &[Upstream],
    state: &State,
    change: Change,
    version: &str,
) -> Duration {
    let t = Instant::now();
    xds.snapshot(version, state.resources(port, ups));
    let ty = type_of(change);
    let ok = xds.wait_for(ACK_LIMIT, |e| acked(&of_node(e, NODE), ty, version));
    assert!(
        ok,
        "mosn-rs did not ACK {version} ({change:?}) within {ACK_LIMIT:?}; NACK: {:?}",
        nacked(&xds.events_of(NODE), ty)
    );
    t.elapsed()
}

/// One GET on `s` (keep-alive): the body of a 200, or what came instead.
fn get_on(s: &mut TcpStream) -> Result<String, String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: load.test\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    match read_response(s, false) {
        Some(r) if r.status == 200 => Ok(r.body_text()),
        Some(r) => Err(format!("status {} {:?}", r.status, r.body_text())),
        None => Err("no response".into()),
    }
}

fn get_fresh(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    get_on(&mut s)
}

/// wrk, killed if the test ends (fails) while it runs.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// wrk's summary: (requests, non-2xx/3xx responses, socket errors).
fn parse_wrk(out: &str) -> (u64, u64, u64) {
    let mut requests = None;
    let mut non_2xx = 0;
    let mut socket = 0;
    for line in out.lines().map(str::trim) {
        if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().expect("wrk's non-2xx count");
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket = rest
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    (requests.expect("wrk's request count"), non_2xx, socket)
}

#[test]
fn twenty_updates_under_load() {
    let started = Instant::now();
    let Some(wrk) = peer_program("wrk") else {
        return;
    };
    let Some(xds) = XdsServer::start() else {
        return;
    };
    let ups: Vec<Upstream> = TAGS.iter().map(|t| tagged_upstream(t)).collect();
    let port = free_port();
    let admin = free_port();

    let mut state = State {
        target: 0,
        eps: [vec![0], vec![2]],
        next_set: 1,
    };
    xds.snapshot("v0", state.resources(port, &ups));
    let mut bootstrap = envoy_ads_bootstrap_variant(xds.port(), NODE, admin, AdsVariant::Delta);
    // MOSN's own keys beside the bootstrap: 2 workers.
    bootstrap["servers"] =
        json!([{"default_log_path": "stderr", "default_log_level": "INFO", "processor": 2}]);
    let mosn = Mosn::start(&bootstrap.to_string(), &[admin, port]);
    assert!(mosn.log_text().contains("workers=2"), "{}", mosn.log_text());
    assert!(
        xds.wait_acked(&[CDS, EDS, LDS, RDS], "v0", LIMIT),
        "v0 not ACKed: {:#?}",
        xds.events_of(NODE)
    );
    let deadline = Instant::now() + LIMIT;
    while get_fresh(port).as_deref() != Ok("u0") {
        assert!(
            Instant::now() < deadline,
            "v0 does not route to u0: {:?}",
            get_fresh(port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Phase 1: 20 pushes while wrk runs.
    let url = format!("http://127.0.0.1:{port}/");
    let mut guard = KillOnDrop(Some(
        Command::new(&wrk)
            .args(["-t1", "-c16", "-d6s", "--timeout", "3s", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wrk"),
    ));
    let child = guard.0.as_mut().unwrap();
    let wrk_started = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let mut acks = Vec::new();
    for n in 1..=PUSHES {
        let t = Instant::now();
        let (next, change) = state.step(n);
        state = next;
        let version = format!("v{n}");
        acks.push(push(&xds, port, &ups, &state, change, &version));
        // Under load too, a new request after the ACK follows the new config.
        let want = state.expected();
        for i in 0..2 {
            let got = get_fresh(port);
            assert!(
                got.as_deref().is_ok_and(|t| want.contains(t)),
                "{version} ({change:?}) ACKed under load, request {i}: {got:?}, want one of {want:?}"
            );
        }
        let interval = Duration::from_millis(150 + (n as u64 * 37) % 100);
        if let Some(rest) = interval.checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let pushes_done = wrk_started.elapsed();
    assert!(
        child.try_wait().unwrap().is_none(),
        "wrk ended before the {PUSHES} pushes were ACKed ({pushes_done:?})"
    );
    let wrk_deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < wrk_deadline, "wrk did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (requests, non_2xx, socket_errors) = parse_wrk(&text);
    eprintln!(
        "phase 1: {PUSHES} pushes ACKed within {pushes_done:?} of wrk's start (slowest ACK {:?}); wrk:\n{text}",
        acks.iter().max().unwrap()
    );
    assert!(
        requests > 1000,
        "wrk made only {requests} requests:\n{text}"
    );
    assert_eq!(non_2xx, 0, "non-2xx/3xx responses under updates:\n{text}");
    assert_eq!(socket_errors, 0, "socket errors under updates:\n{text}");

    // Phase 2: after each ACK, every new request follows the new config.
    for n in PUSHES + 1..=2 * PUSHES {
        let mut before = TcpStream::connect(("127.0.0.1", port)).unwrap();
        before
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let old = get_on(&mut before);
        let (next, change) = state.step(n);
        state = next;
        let version = format!("v{n}");
        push(&xds, port, &ups, &state, change, &version);
        let want = state.expected();
        for i in 0..4 {
            let got = get_fresh(port);
            assert!(
                got.as_deref().is_ok_and(|t| want.contains(t)),
                "{version} ({change:?}) ACKed, new connection request {i}: {got:?}, want one of {want:?}"
            );
        }
        // A connection opened before the push follows the change too.
        let got = get_on(&mut before);
        assert!(
            got.as_deref().is_ok_and(|t| want.contains(t)),
            "{version} ({change:?}) ACKed, request on a connection opened before: {got:?} (before the push {old:?}), want one of {want:?}"
        );
    }
    eprintln!("done after {:?}", started.elapsed());
    drop(mosn);
}

#[test]
fn state_walk_changes_the_target_every_push() {
    let mut s = State {
        target: 0,
        eps: [vec![0], vec![2]],
        next_set: 1,
    };
    for n in 1..=2 * PUSHES {
        let (next, change) = s.step(n);
        assert_ne!(next.expected(), s.expected(), "push {n} ({change:?})");
        assert!(next.eps[0].iter().all(|u| !next.eps[1].contains(u)));
        s = next;
    }
}

#[test]
fn wrk_summary_is_parsed() {
    let clean = "Running 6s test @ http://127.0.0.1:1/\n  1 threads and 16 connections\n  \
                 72226 requests in 6.12s, 2.76MB read\nRequests/sec:  11808.07\n";
    assert_eq!(parse_wrk(clean), (72226, 0, 0));
    let bad = "  100 requests in 6.00s, 1.00MB read\n  Socket errors: connect 1, read 2, write 0, timeout 3\n  \
               Non-2xx or 3xx responses: 7\nRequests/sec: 16.6\n";
    assert_eq!(parse_wrk(bad), (100, 7, 6));
}
