use super::*;
use mosn_config::ClusterConfig;
use mosn_observe::StatsRegistry;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

fn hosts(n: usize) -> Vec<Arc<Host>> {
    (0..n)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
            Arc::new(Host::new(addr, "", 1, BTreeMap::new()))
        })
        .collect()
}

fn detector(cfg: Value) -> Detector {
    let cfg: OutlierDetectionConfig = serde_json::from_value(cfg).unwrap();
    Detector {
        cluster: "c".into(),
        s: cfg.settings(),
        overflow: 0,
    }
}

fn ejected(h: &Host) -> bool {
    h.health_flags() & health::EJECTED != 0
}

fn send(h: &Host, outcome: Outcome, n: usize) {
    for _ in 0..n {
        report(h, outcome);
    }
}

#[test]
fn defaults_are_envoys() {
    let s = OutlierDetectionConfig::default().settings();
    assert_eq!(s.consecutive_5xx, 5);
    assert_eq!(s.consecutive_gateway_failure, 5);
    assert_eq!(s.interval, Duration::from_secs(10));
    assert_eq!(s.base_ejection_time, Duration::from_secs(30));
    assert_eq!(s.max_ejection_time, Duration::from_secs(300));
    assert_eq!(s.max_ejection_percent, 10);
    assert_eq!(s.enforcing_consecutive_5xx, 100);
    assert_eq!(s.enforcing_consecutive_gateway_failure, 0);
    assert_eq!(
        (
            s.success_rate_minimum_hosts,
            s.success_rate_request_volume,
            s.success_rate_stdev_factor,
            s.enforcing_success_rate
        ),
        (5, 100, 1900, 100)
    );
    assert_eq!(
        (
            s.failure_percentage_threshold,
            s.failure_percentage_minimum_hosts,
            s.failure_percentage_request_volume,
            s.enforcing_failure_percentage
        ),
        (85, 5, 50, 0)
    );
    assert!(!s.always_eject_one_host);
    assert!(s.successful_active_health_check_uneject_host);
    // A long base ejection time raises the default cap with it.
    let long: OutlierDetectionConfig =
        serde_json::from_value(json!({"base_ejection_time": "400s"})).unwrap();
    assert_eq!(long.settings().max_ejection_time, Duration::from_secs(400));
}

#[test]
fn unarmed_hosts_count_nothing() {
    let hs = hosts(1);
    send(&hs[0], Outcome::Success(500), 10);
    assert_eq!(hs[0].outlier.window.load(Relaxed), 0);
    assert_eq!(hs[0].outlier.consecutive_5xx.load(Relaxed), 0);
    assert_eq!(hs[0].outlier.pending.load(Relaxed), 0);
}

#[test]
fn five_consecutive_5xx_eject() {
    let hs = hosts(3);
    let mut d = detector(json!({"max_ejection_percent": 100}));
    d.arm(&hs);
    send(&hs[0], Outcome::Success(500), 4);
    send(&hs[0], Outcome::Success(404), 1); // not an error: the run restarts
    send(&hs[0], Outcome::Success(500), 4);
    assert!(!d.process_pending(&hs));
    assert!(!ejected(&hs[0]));
    report(&hs[0], Outcome::Success(503));
    assert!(d.process_pending(&hs));
    assert!(ejected(&hs[0]));
    assert!(hs[0].outlier.is_ejected());
    assert_eq!(hs[0].stats.ejections.load(Relaxed), 1);
    assert_eq!(hs[0].outlier.multiplier(), 1);
    assert!(!ejected(&hs[1]) && !ejected(&hs[2]));
    // Errors while ejected eject nothing more.
    send(&hs[0], Outcome::Success(500), 10);
    assert!(!d.process_pending(&hs));
    assert_eq!(hs[0].stats.ejections.load(Relaxed), 1);
}

#[test]
fn gateway_failures_count_only_when_enforced() {
    let hs = hosts(2);
    // Envoy's default enforcing_consecutive_gateway_failure is 0.
    let mut d = detector(json!({"consecutive_5xx": 100, "max_ejection_percent": 100}));
    d.arm(&hs);
    send(&hs[0], Outcome::Success(502), 5);
    assert!(!d.process_pending(&hs));
    assert!(!ejected(&hs[0]));

    let hs = hosts(2);
    let mut d = detector(json!({
        "consecutive_5xx": 100,
        "consecutive_gateway_failure": 3,
        "enforcing_consecutive_gateway_failure": 100,
        "max_ejection_percent": 100,
    }));
    d.arm(&hs);
    // A 500 is a 5xx but not a gateway failure: it restarts the gateway run.
    send(&hs[0], Outcome::Success(504), 2);
    report(&hs[0], Outcome::Success(500));
    send(&hs[0], Outcome::Success(503), 2);
    assert!(!d.process_pending(&hs));
    // Connect failures, resets and timeouts are gateway failures.
    report(&hs[0], Outcome::LocalOriginFailure);
    assert!(d.process_pending(&hs));
    assert!(ejected(&hs[0]));
}

#[test]
fn ejection_time_grows_with_ejections_and_decays() {
    let hs = hosts(2);
    let mut d = detector(json!({
        "interval": "10ms",
        "base_ejection_time": "60ms",
        "max_ejection_time": "100ms",
        "max_ejection_percent": 100,
    }));
    d.arm(&hs);
    let eject = |d: &mut Detector| {
        send(&hs[0], Outcome::LocalOriginFailure, 5);
        assert!(d.process_pending(&hs));
    };
    eject(&mut d);
    let started = Instant::now();
    d.sweep(&hs);
    assert!(ejected(&hs[0]));
    while ejected(&hs[0]) {
        std::thread::sleep(Duration::from_millis(5));
        d.sweep(&hs);
    }
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(55), "{first:?}");
    // Ejected again at once: twice the base, capped at max_ejection_time.
    eject(&mut d);
    assert_eq!(hs[0].outlier.multiplier(), 2);
    let started = Instant::now();
    while ejected(&hs[0]) {
        std::thread::sleep(Duration::from_millis(5));
        d.sweep(&hs);
    }
    let second = started.elapsed();
    assert!(second >= Duration::from_millis(95), "{second:?}");
    assert!(second < Duration::from_millis(120) + Duration::from_millis(200));
    // Back for an interval or more: the multiplier decays by one per sweep.
    std::thread::sleep(Duration::from_millis(15));
    d.sweep(&hs);
    assert_eq!(hs[0].outlier.multiplier(), 1);
    d.sweep(&hs);
    assert_eq!(hs[0].outlier.multiplier(), 0);
    d.sweep(&hs);
    assert_eq!(hs[0].outlier.multiplier(), 0);
}

#[test]
fn max_ejection_percent_is_respected() {
    let hs = hosts(4);
    let mut d = detector(json!({"max_ejection_percent": 25}));
    d.arm(&hs);
    send(&hs[0], Outcome::Success(500), 5);
    assert!(d.process_pending(&hs));
    send(&hs[1], Outcome::Success(500), 5);
    assert!(!d.process_pending(&hs), "a second host would be 50%");
    assert!(ejected(&hs[0]) && !ejected(&hs[1]));
    assert_eq!(d.overflow, 1);

    // Envoy's default 10% ejects nobody from a small cluster...
    let hs = hosts(4);
    let mut d = detector(json!({}));
    d.arm(&hs);
    send(&hs[0], Outcome::Success(500), 5);
    assert!(!d.process_pending(&hs));
    assert!(!ejected(&hs[0]));
    // ...unless always_eject_one_host says one host may always go.
    let hs = hosts(4);
    let mut d = detector(json!({"always_eject_one_host": true}));
    d.arm(&hs);
    send(&hs[0], Outcome::Success(500), 5);
    assert!(d.process_pending(&hs));
    send(&hs[1], Outcome::Success(500), 5);
    assert!(!d.process_pending(&hs));
    assert!(ejected(&hs[0]) && !ejected(&hs[1]));
}

/// `n` requests, `errors` of them 500s, spread so no run of errors reaches 5.
fn traffic(h: &Host, n: usize, errors: usize) {
    let mut sent_errors = 0;
    for i in 0..n {
        let error = sent_errors < errors && (i * errors / n.max(1)) >= sent_errors;
        if error {
            sent_errors += 1;
            report(h, Outcome::Success(500));
        } else {
            report(h, Outcome::Success(200));
        }
    }
}

#[test]
fn success_rate_ejects_the_outlier_among_five() {
    let hs = hosts(5);
    let mut d = detector(json!({"max_ejection_percent": 50}));
    d.arm(&hs);
    for h in &hs[..4] {
        traffic(h, 100, 0);
    }
    // Envoy's example: {50, 100, 100, 100, 100}: mean 90, stdev 20, threshold 52.
    traffic(&hs[4], 100, 50);
    assert!(!d.process_pending(&hs));
    assert!(d.sweep(&hs));
    assert!(ejected(&hs[4]));
    assert!(hs[..4].iter().all(|h| !ejected(h)));
    // The counters start over each interval.
    assert_eq!(hs[0].outlier.window.load(Relaxed), 0);

    // Too few hosts with enough volume: no analysis.
    let hs = hosts(5);
    let mut d = detector(json!({"max_ejection_percent": 50}));
    d.arm(&hs);
    for h in &hs[..3] {
        traffic(h, 100, 0);
    }
    traffic(&hs[3], 99, 0);
    traffic(&hs[4], 100, 50);
    assert!(!d.sweep(&hs));
    assert!(!ejected(&hs[4]));
}

#[test]
fn failure_percentage_ejects_when_enforced() {
    let run = |cfg: Value| {
        let hs = hosts(5);
        let mut d = detector(cfg);
        d.arm(&hs);
        for h in &hs[..4] {
            traffic(h, 60, 0);
        }
        traffic(&hs[4], 60, 54); // 90% failures
        d.process_pending(&hs);
        d.sweep(&hs);
        hs.iter().map(|h| ejected(h)).collect::<Vec<_>>()
    };
    // Success rate off, failure percentage at its default enforcement (0): nothing.
    let base = json!({"max_ejection_percent": 50, "enforcing_success_rate": 0,
                      "consecutive_5xx": 0});
    assert_eq!(run(base.clone()), vec![false; 5]);
    let mut on = base;
    on["enforcing_failure_percentage"] = json!(100);
    assert_eq!(run(on), vec![false, false, false, false, true]);
}

fn cluster(hosts: &[&str], od: Option<Value>) -> ClusterConfig {
    let mut v = json!({
        "name": "o",
        "hosts": hosts.iter().map(|a| json!({"address": a})).collect::<Vec<_>>(),
    });
    if let Some(od) = od {
        v["outlier_detection"] = od;
    }
    let (cfg, warnings) = mosn_config::parse_value::<ClusterConfig>(&v, "cluster").unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    mosn_config::check_cluster(&cfg).unwrap();
    cfg
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

#[tokio::test]
async fn detector_tasks_eject_and_return_hosts() {
    let od = json!({"interval": "50ms", "base_ejection_time": "200ms",
                    "max_ejection_percent": 100});
    let addrs = ["127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"];
    let m = Arc::new(ClusterManager::build(
        &[cluster(&addrs, Some(od.clone()))],
        Arc::new(StatsRegistry::default()),
    ));
    let task = spawn_outlier_detection(m.clone());
    let c = m.get("o").unwrap();
    let h = c.hosts()[0].clone();
    wait_until(Duration::from_secs(1), || h.outlier.armed.load(Relaxed))
        .await
        .expect("the detector arms the hosts");
    let in_rotation = |m: &ClusterManager| {
        m.get("o")
            .unwrap()
            .eligible_hosts()
            .0
            .iter()
            .any(|x| Arc::ptr_eq(x, &h))
    };
    send(&h, Outcome::Success(500), 5);
    let out = wait_until(Duration::from_secs(1), || !in_rotation(&m))
        .await
        .expect("ejected");
    assert!(out <= PENDING_POLL + Duration::from_millis(150), "{out:?}");
    assert_eq!(h.stats.ejections.load(Relaxed), 1);
    let back = wait_until(Duration::from_secs(2), || in_rotation(&m))
        .await
        .expect("returned");
    assert!(back >= Duration::from_millis(150), "{back:?}");
    assert!(back <= Duration::from_millis(200 + 50 + 250), "{back:?}");

    // A long ejection this time, then outlier_detection removed: the host returns at
    // once.
    let long = json!({"interval": "50ms", "base_ejection_time": "10s",
                      "max_ejection_percent": 100});
    m.add_or_update(&cluster(&addrs, Some(long))).unwrap();
    tokio::time::sleep(RESCAN_INTERVAL + Duration::from_millis(200)).await;
    send(&h, Outcome::Success(500), 5);
    wait_until(Duration::from_secs(1), || !in_rotation(&m))
        .await
        .expect("ejected again");
    m.add_or_update(&cluster(&addrs, None)).unwrap();
    wait_until(RESCAN_INTERVAL + Duration::from_secs(1), || in_rotation(&m))
        .await
        .expect("detection off returns ejected hosts");
    assert!(!h.outlier.armed.load(Relaxed));
    send(&h, Outcome::Success(500), 20);
    assert_eq!(h.outlier.window.load(Relaxed), 0);
    task.abort();
}
