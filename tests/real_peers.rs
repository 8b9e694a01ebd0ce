//! mosn-rs between real third-party peers: curl as the client and nginx as the
//! upstream, both installed by scripts/setup.sh.

mod common;
use common::nginx::{nginx_program, Nginx};
use common::peers::peer_program;
use common::*;
use std::path::Path;
use std::process::Command;

/// nginx serving files from `root/` (index.html, and big.bin: [`big_file`]) and
/// logging each request with its X-Forwarded-For in `xff.log`; its port.
fn start_file_server(bin: &Path) -> (Nginx, u16) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "hello from nginx\n").unwrap();
    std::fs::write(root.join("big.bin"), big_file()).unwrap();
    let port = free_port();
    let d = dir.path().display();
    let http = format!(
        r#"log_format xff '$request $http_x_forwarded_for';
  server {{
    listen 127.0.0.1:{port};
    access_log {d}/xff.log xff;
    root {d}/root;
    location /status {{ return 418 "teapot\n"; }}
  }}"#
    );
    (Nginx::start_in(dir, bin, &http, &[port]), port)
}

/// The 5 MiB that nginx serves as big.bin.
fn big_file() -> Vec<u8> {
    (0..5 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect()
}

fn curl(bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn curl_through_mosn_to_nginx() {
    let (Some(nginx_bin), Some(curl_bin)) = (nginx_program(), peer_program("curl")) else {
        return;
    };
    let (nginx, nginx_port) = start_file_server(&nginx_bin);
    let cfg = HttpConfig::new(&[format!("127.0.0.1:{nginx_port}").parse().unwrap()]);
    let _m = cfg.start();
    let base = format!("http://127.0.0.1:{}", cfg.port);

    let out = curl(&curl_bin, &[&format!("{base}/index.html")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from nginx\n");

    // A 5 MiB file arrives byte for byte.
    let out = curl(&curl_bin, &[&format!("{base}/big.bin")]);
    assert!(
        out.stdout == big_file(),
        "big.bin differs ({} bytes)",
        out.stdout.len()
    );

    // Status and HEAD pass through; one curl reuses its connection for several URLs.
    let out = curl(
        &curl_bin,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &format!("{base}/status"),
            &format!("{base}/status"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "418 1\n418 0\n");
    let out = curl(&curl_bin, &["-I", &format!("{base}/index.html")]);
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 17"),
        "{head}"
    );

    // HTTP/1.0 client.
    let out = curl(&curl_bin, &["--http1.0", &format!("{base}/index.html")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from nginx\n");

    // nginx saw the client address appended to X-Forwarded-For.
    let log = std::fs::read_to_string(nginx.path().join("xff.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l == "GET /index.html HTTP/1.1 127.0.0.1"),
        "{log}"
    );
}

#[test]
fn quickstart_example_serves_through_its_chained_listeners() {
    // The bundled quickstart, with its fixed ports rewritten to free ones.
    let text = std::fs::read_to_string(repo_root().join("examples/quickstart.json")).unwrap();
    let (p1, p2, admin) = (free_port(), free_port(), free_port());
    let text = text
        .replace("127.0.0.1:2045", &format!("127.0.0.1:{p1}"))
        .replace("127.0.0.1:2046", &format!("127.0.0.1:{p2}"))
        .replace("34901", &admin.to_string());
    let _m = Mosn::start(&text, &[p1, p2, admin]);
    let r = http_exchange(p1, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text(), "Hello from mosn-rs!\n");
}

/// An example config with its fixed ports moved: 2045 -> a free port, 8080 -> `upstream`.
fn example_with_ports(name: &str, listen: u16, upstream: u16) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name))
        .unwrap()
        .replace("127.0.0.1:2045", &format!("127.0.0.1:{listen}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{upstream}"))
        .replace("34901", &free_port().to_string())
}

#[test]
fn http_and_tcp_proxy_examples_front_nginx() {
    let (Some(nginx_bin), Some(curl_bin)) = (nginx_program(), peer_program("curl")) else {
        return;
    };
    let (_nginx, nginx_port) = start_file_server(&nginx_bin);
    for example in ["http_proxy.json", "tcp_proxy.json"] {
        let port = free_port();
        let _m = Mosn::start(&example_with_ports(example, port, nginx_port), &[port]);
        let out = curl(&curl_bin, &[&format!("http://127.0.0.1:{port}/index.html")]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from nginx\n",
            "{example}"
        );
    }
}
