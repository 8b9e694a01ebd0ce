//! STRICT_DNS refresh with a scripted resolver (answers, failures, call counts), and
//! once with the system resolver on `localhost`.

use super::*;
use mosn_config::GoDuration;
use mosn_observe::StatsRegistry;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Instant;

/// A resolver whose answers the test sets per name; unset names fail.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    calls: Arc<AtomicUsize>,
}

impl Script {
    fn set(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|s| s.parse().unwrap()).collect();
        self.answers.lock().unwrap().insert(name.into(), Ok(ips));
    }

    fn fail(&self, name: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert(name.into(), Err("scripted failure".into()));
    }

    fn resolver(&self) -> Resolver {
        let me = self.clone();
        Arc::new(move |name, _port| {
            me.calls.fetch_add(1, SeqCst);
            let answer = me
                .answers
                .lock()
                .unwrap()
                .get(&name)
                .cloned()
                .unwrap_or_else(|| Err(format!("{name}: not found")));
            Box::pin(async move { answer })
        })
    }
}

fn dns_cluster(name: &str, hosts: serde_json::Value, extra: serde_json::Value) -> ClusterConfig {
    let mut v =
        json!({"name": name, "type": "STRICT_DNS", "hosts": hosts, "dns_refresh_rate": "100ms"});
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        obj.extend(more.clone());
    }
    let cfg: ClusterConfig = serde_json::from_value(v).unwrap();
    assert!(
        mosn_config::check_cluster(&cfg).is_ok(),
        "valid test cluster"
    );
    cfg
}

fn manager(cfgs: &[ClusterConfig]) -> Arc<ClusterManager> {
    Arc::new(ClusterManager::build(
        cfgs,
        Arc::new(StatsRegistry::default()),
    ))
}

fn addrs(c: &Cluster) -> Vec<String> {
    c.hosts().iter().map(|h| h.addr.to_string()).collect()
}

/// Polls `cond` every 10 ms for up to 5 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn entries_become_targets() {
    let cfg = dns_cluster(
        "c",
        json!([
            {"address": "svc.test:8080", "weight": 3,
             "metadata": {"filter_metadata": {"mosn.lb": {"stage": "blue"}}}},
            {"address": "10.0.0.9"},
            {"address": "api.test", "hostname": "api.example.com"},
        ]),
        json!({}),
    );
    let t = targets(&cfg);
    assert_eq!(t.len(), 3);
    match &t[0] {
        Target::Name {
            name,
            port,
            template,
        } => {
            assert_eq!((name.as_str(), *port), ("svc.test", 8080));
            assert_eq!(
                template.hostname, "svc.test",
                "the name stands in for hostname"
            );
            assert_eq!(template.weight, Some(3));
            let h = answer_host(template, "10.1.1.1".parse().unwrap(), *port);
            let host = Host::from_config(&h).unwrap();
            assert_eq!(host.addr.to_string(), "10.1.1.1:8080");
            assert_eq!((host.weight, host.authority.as_str()), (3, "svc.test"));
            assert_eq!(host.metadata.get("stage").map(String::as_str), Some("blue"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&t[1], Target::Fixed(h) if h.address == "10.0.0.9:80"));
    assert!(
        matches!(&t[2], Target::Name { port: 80, template, .. } if template.hostname == "api.example.com")
    );
    let v6 = answer_host(&HostConfig::default(), "::1".parse().unwrap(), 9);
    assert_eq!(v6.address, "[::1]:9");
}

#[tokio::test]
async fn hosts_follow_the_answers_and_survivors_keep_their_objects() {
    let script = Script::default();
    script.set("svc.test", &["10.0.0.1", "10.0.0.2"]);
    let m = manager(&[dns_cluster(
        "c",
        json!([{"address": "svc.test:80"}, {"address": "192.0.2.7:81"}]),
        json!({}),
    )]);
    let c = m.get("c").unwrap();
    assert_eq!(addrs(&c), ["192.0.2.7:81"], "IP entries are hosts at once");
    let _runner = AbortOnDrop(spawn_with(m.clone(), script.resolver()));
    wait_until("first answers", || addrs(&c).len() == 3).await;
    assert_eq!(addrs(&c), ["10.0.0.1:80", "10.0.0.2:80", "192.0.2.7:81"]);
    let before = c.hosts();
    assert_eq!(before[0].hostname, "svc.test");

    script.set("svc.test", &["10.0.0.3", "10.0.0.2"]);
    wait_until("new answers", || {
        addrs(&c).contains(&"10.0.0.3:80".to_string())
    })
    .await;
    let after = c.hosts();
    assert_eq!(addrs(&c), ["10.0.0.2:80", "10.0.0.3:80", "192.0.2.7:81"]);
    assert!(
        Arc::ptr_eq(&before[1], &after[0]),
        "10.0.0.2 kept its host object"
    );
    assert!(
        Arc::ptr_eq(&before[2], &after[2]),
        "the IP entry kept its host object"
    );
    assert!(before[0].is_removed(), "10.0.0.1 left");

    // A failure keeps the previous hosts.
    script.fail("svc.test");
    let calls = script.calls.load(SeqCst);
    wait_until("three failed lookups", || {
        script.calls.load(SeqCst) >= calls + 3
    })
    .await;
    assert_eq!(addrs(&c), ["10.0.0.2:80", "10.0.0.3:80", "192.0.2.7:81"]);
    assert!(Arc::ptr_eq(&after[0], &c.hosts()[0]));

    // So does an answer without an address of the wanted family (default: IPv4, else IPv6).
    script.set("svc.test", &["::2"]);
    wait_until("IPv6 fallback", || {
        addrs(&c).contains(&"[::2]:80".to_string())
    })
    .await;
    assert_eq!(addrs(&c), ["[::2]:80", "192.0.2.7:81"]);
}

#[tokio::test]
async fn lookup_family_filters_answers() {
    let script = Script::default();
    script.set("a.test", &["10.0.0.1", "::1"]);
    let cfgs = [
        dns_cluster(
            "v4",
            json!([{"address": "a.test:1"}]),
            json!({"dns_lookup_family": "V4_ONLY"}),
        ),
        dns_cluster(
            "v6",
            json!([{"address": "a.test:1"}]),
            json!({"dns_lookup_family": "V6_ONLY"}),
        ),
        dns_cluster(
            "all",
            json!([{"address": "a.test:1"}]),
            json!({"dns_lookup_family": "ALL"}),
        ),
    ];
    let m = manager(&cfgs);
    let _runner = AbortOnDrop(spawn_with(m.clone(), script.resolver()));
    let (v4, v6, all) = (
        m.get("v4").unwrap(),
        m.get("v6").unwrap(),
        m.get("all").unwrap(),
    );
    wait_until("all resolved", || {
        !v4.hosts().is_empty() && !v6.hosts().is_empty() && !all.hosts().is_empty()
    })
    .await;
    assert_eq!(addrs(&v4), ["10.0.0.1:1"]);
    assert_eq!(addrs(&v6), ["[::1]:1"]);
    assert_eq!(addrs(&all), ["10.0.0.1:1", "[::1]:1"]);

    // V4_ONLY with only an IPv6 answer keeps what it had.
    script.set("a.test", &["::3"]);
    wait_until("v6 follows", || addrs(&v6) == ["[::3]:1"]).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(addrs(&v4), ["10.0.0.1:1"]);
}

#[tokio::test]
async fn a_name_that_never_resolved_has_no_host_and_others_are_served() {
    let script = Script::default();
    script.set("good.test", &["10.0.0.1"]);
    let m = manager(&[dns_cluster(
        "c",
        json!([{"address": "bad.test:80"}, {"address": "good.test:80"}]),
        json!({}),
    )]);
    let c = m.get("c").unwrap();
    let _runner = AbortOnDrop(spawn_with(m.clone(), script.resolver()));
    wait_until("good resolved", || !c.hosts().is_empty()).await;
    assert_eq!(addrs(&c), ["10.0.0.1:80"]);
    // Both names answer the same address: one host, the first entry's.
    script.set("bad.test", &["10.0.0.1"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(addrs(&c), ["10.0.0.1:80"]);
    assert_eq!(c.hosts()[0].hostname, "bad.test");
}

#[tokio::test]
async fn rebuilt_clusters_keep_resolved_hosts_and_follow_new_names() {
    let script = Script::default();
    script.set("a.test", &["10.0.0.1"]);
    script.set("b.test", &["10.0.0.2"]);
    let cfg = dns_cluster("c", json!([{"address": "a.test:80"}]), json!({}));
    let m = manager(std::slice::from_ref(&cfg));
    let _runner = AbortOnDrop(spawn_with(m.clone(), script.resolver()));
    let first = m.get("c").unwrap();
    wait_until("a resolved", || !first.hosts().is_empty()).await;
    let host = first.hosts()[0].clone();

    // update_cluster with other settings: the new object starts with a.test's host.
    let mut changed = cfg.clone();
    changed.lb_type = "LB_RANDOM".into();
    m.add_or_update(&changed).unwrap();
    let second = m.get("c").unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(
        Arc::ptr_eq(&second.hosts()[0], &host),
        "no gap, same host object"
    );
    assert!(!host.is_removed());

    // update_hosts names other hosts: b.test is resolved by the new cluster's task.
    m.set_hosts(
        "c",
        &[HostConfig {
            address: "b.test:80".into(),
            ..Default::default()
        }],
    )
    .unwrap();
    let third = m.get("c").unwrap();
    assert_eq!(third.config.hosts[0].address, "b.test:80");
    assert!(third.hosts().is_empty(), "a.test's host is not b.test's");
    assert!(host.is_removed());
    wait_until("b resolved", || addrs(&third) == ["10.0.0.2:80"]).await;
    assert_eq!(third.hosts()[0].hostname, "b.test");
    // A bad name is refused whole; the cluster stays.
    let bad = m.set_hosts(
        "c",
        &[HostConfig {
            address: "b..test:80".into(),
            ..Default::default()
        }],
    );
    assert!(bad.is_err());
    assert!(Arc::ptr_eq(&m.get("c").unwrap(), &third));
}

#[tokio::test]
async fn removed_clusters_are_no_longer_resolved() {
    let script = Script::default();
    script.set("a.test", &["10.0.0.1"]);
    let m = manager(&[dns_cluster(
        "c",
        json!([{"address": "a.test:80"}]),
        json!({}),
    )]);
    let _runner = AbortOnDrop(spawn_with(m.clone(), script.resolver()));
    let c = m.get("c").unwrap();
    wait_until("resolved", || !c.hosts().is_empty()).await;
    m.remove("c").unwrap();
    // The runner notices within its rescan interval.
    tokio::time::sleep(RESCAN_INTERVAL + Duration::from_millis(200)).await;
    let calls = script.calls.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(script.calls.load(SeqCst), calls, "no lookups after removal");

    // A cluster added at runtime is picked up.
    m.add_or_update(&dns_cluster(
        "d",
        json!([{"address": "a.test:80"}]),
        json!({}),
    ))
    .unwrap();
    let d = m.get("d").unwrap();
    wait_until("added cluster resolved", || !d.hosts().is_empty()).await;
}

#[tokio::test]
async fn the_system_resolver_finds_localhost() {
    let m = manager(&[ClusterConfig {
        name: "local".into(),
        kind: "STRICT_DNS".into(),
        dns_refresh_rate: Some(GoDuration(Duration::from_secs(60))),
        hosts: vec![HostConfig {
            address: "localhost:4567".into(),
            weight: Some(2),
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let _runner = AbortOnDrop(spawn_dns_refresh(m.clone()));
    let c = m.get("local").unwrap();
    wait_until("localhost resolved", || !c.hosts().is_empty()).await;
    let hosts = c.hosts();
    // /etc/hosts may also list ::1; the default family prefers IPv4.
    assert_eq!(addrs(&c), ["127.0.0.1:4567"]);
    assert_eq!(
        (hosts[0].hostname.as_str(), hosts[0].weight),
        ("localhost", 2)
    );
}
