//! Route lookup in a 10,000-route virtual host: a mix of exact paths (60 %), prefixes
//! (30 %), regexes (5 %) and prefixes with a header matcher (5 %), in config order.
//! Measures the first, middle and last route, the last regex route, and a miss.
//!
//! Run: `cargo bench -p mosn-router --bench route_match`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mosn_config::RouterConfiguration;
use mosn_router::{RequestView, RouteAction, RouteTable};
use serde_json::{json, Value};

const ROUTES: usize = 10_000;

struct Req {
    host: &'static [u8],
    path: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
}

impl RequestView for Req {
    fn host(&self) -> &[u8] {
        self.host
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn header(&self, lower_name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == lower_name)
            .map(|(_, v)| v.as_slice())
    }
}

fn route_json(i: usize) -> Value {
    let to = json!({"cluster_name": format!("c{i}")});
    match i % 20 {
        0..=11 => json!({"match": {"path": format!("/api/v{}/svc{i}/get", i % 3)}, "route": to}),
        12..=17 => json!({"match": {"prefix": format!("/p/svc{i}/")}, "route": to}),
        18 => json!({"match": {"regex": format!("/re/svc{i}/[0-9]+")}, "route": to}),
        _ => json!({"match": {"prefix": format!("/h/svc{i}/"),
                   "headers": [{"name": "x-tenant", "value": format!("t{i}")}]}, "route": to}),
    }
}

/// A request that matches route `i`.
fn request_for(i: usize) -> Req {
    let (path, headers) = match i % 20 {
        0..=11 => (format!("/api/v{}/svc{i}/get", i % 3), vec![]),
        12..=17 => (format!("/p/svc{i}/items/42"), vec![]),
        18 => (format!("/re/svc{i}/12345"), vec![]),
        _ => (
            format!("/h/svc{i}/x"),
            vec![("x-tenant", format!("t{i}").into_bytes())],
        ),
    };
    Req {
        host: b"api.example.com",
        path: path.into_bytes(),
        headers,
    }
}

fn table() -> RouteTable {
    let routes: Vec<Value> = (0..ROUTES).map(route_json).collect();
    let cfg: RouterConfiguration = serde_json::from_value(json!({
        "router_config_name": "bench",
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routers": routes}]
    }))
    .expect("router config");
    RouteTable::build(&cfg).expect("route table")
}

fn cluster(t: &RouteTable, req: &Req) -> Option<String> {
    t.route(req).map(|r| match &r.action {
        RouteAction::Cluster(a) => a
            .pick_cluster(req, 0)
            .map(|c| c.name.to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    })
}

fn bench(c: &mut Criterion) {
    let t = table();
    let cases = [
        ("first", request_for(0)),
        ("middle", request_for(ROUTES / 2)),
        ("last", request_for(ROUTES - 1)),
        ("last_regex", request_for(ROUTES - 2)),
        (
            "missing",
            Req {
                host: b"api.example.com",
                path: b"/nothing/here".to_vec(),
                headers: vec![],
            },
        ),
    ];
    for (name, req) in &cases {
        let want = match *name {
            "first" => Some("c0".to_owned()),
            "middle" => Some(format!("c{}", ROUTES / 2)),
            "last" => Some(format!("c{}", ROUTES - 1)),
            "last_regex" => Some(format!("c{}", ROUTES - 2)),
            _ => None,
        };
        assert_eq!(cluster(&t, req), want, "{name}");
        c.bench_function(&format!("route_10k/{name}"), |b| {
            b.iter(|| t.route(black_box(req)).is_some())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
