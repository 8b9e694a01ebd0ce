//! nginx as a test peer: one foreground process (no daemon, no master) with its
//! config, pid, logs and temp folders under a temp dir, stopped when the [`Nginx`]
//! handle drops.
//!
//! ```ignore
//! let Some(bin) = nginx_program() else { return };  // skips outside CI without nginx
//! let port = free_port();
//! let nginx = Nginx::start(&bin, &format!("server {{ listen 127.0.0.1:{port}; }}"), &[port]);
//! ```

use super::peers::peer_program;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary, or None (after a note) when it is not installed; panics instead
/// when env `CI` is set (scripts/setup.sh installs it).
pub fn nginx_program() -> Option<PathBuf> {
    peer_program("nginx")
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx under a fresh temp dir; see [`Nginx::start_in`].
    pub fn start(bin: &Path, http: &str, ports: &[u16]) -> Nginx {
        Self::start_in(tempfile::tempdir().unwrap(), bin, http, ports)
    }

    /// nginx in the foreground, one process, under `dir` (which may already hold
    /// files it serves), with `http` (directives and `server` blocks) inside its
    /// `http { }` block after an access log and temp paths in `dir`; waits until every
    /// port in `ports` accepts connections, and panics with nginx's error log when
    /// one does not within 10 s or nginx exits.
    pub fn start_in(dir: tempfile::TempDir, bin: &Path, http: &str, ports: &[u16]) -> Nginx {
        let d = dir.path().display();
        let conf = format!(
            r#"daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  {http}
}}"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut n = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline || n.child.try_wait().unwrap().is_some() {
                    panic!("nginx did not start:\n{}", n.error_log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        n
    }

    /// The folder nginx runs in (its logs are there).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
