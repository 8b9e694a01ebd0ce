//! Test certificates made with the `openssl` command line, in a temp dir per test
//! (removed when the [`Pki`] drops): a CA, server and client certificates it signs
//! (EC P-256, with the subject alternative names a test chooses), wildcard, expired
//! and self-signed ones, chains through an intermediate CA, a second CA that signed
//! none of them; and small runners for
//! `openssl s_client` and `curl` with a time limit.
//!
//! Nothing here is committed: every key is generated when a test runs.
//!
//! ```ignore
//! let Some(pki) = Pki::new() else { return };          // skips outside CI without openssl
//! let server = pki.server("server", "server.test", &["DNS:server.test", "IP:127.0.0.1"]);
//! // server.cert, server.key: PEM files; pki.ca_cert(): the CA that signed them
//! ```

use super::peers::peer_program;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A certificate and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPair {
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).unwrap()
    }

    /// `cert` as a string (for JSON).
    pub fn cert_path(&self) -> String {
        self.cert.display().to_string()
    }

    pub fn key_path(&self) -> String {
        self.key.display().to_string()
    }
}

/// What a certificate may be used for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// A private CA in a temp dir, and the certificates it issues there.
pub struct Pki {
    pub dir: tempfile::TempDir,
    openssl: PathBuf,
    ca: CertPair,
}

/// Minimal config for `openssl req`: no default extensions (the system openssl.cnf
/// would mark every self-signed certificate as a CA).
const REQ_CNF: &str = "[req]\ndistinguished_name = dn\n[dn]\n";

/// Config for `openssl ca` (paths relative to the Pki's folder, the commands' cwd).
const CA_CNF: &str = "[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = issued
serial = serial.txt
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
[any_name]
commonName = supplied
organizationName = optional
";

impl Pki {
    /// A new CA ("mosn-rs test CA") in a fresh temp dir; None (after a note) when the
    /// openssl command is not installed outside CI.
    pub fn new() -> Option<Pki> {
        let openssl = peer_program("openssl")?;
        let dir = tempfile::Builder::new()
            .prefix("mosn-tls-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("req.cnf"), REQ_CNF).unwrap();
        std::fs::write(dir.path().join("ca.cnf"), CA_CNF).unwrap();
        std::fs::write(dir.path().join("index.txt"), "").unwrap();
        std::fs::write(dir.path().join("serial.txt"), "1000\n").unwrap();
        std::fs::create_dir(dir.path().join("issued")).unwrap();
        let mut pki = Pki {
            dir,
            openssl,
            ca: CertPair {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
        };
        pki.ca = pki.new_ca("ca", "mosn-rs test CA");
        Some(pki)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM file) that signs [`Pki::server`] and [`Pki::client`]
    /// certificates.
    pub fn ca_cert(&self) -> &Path {
        &self.ca.cert
    }

    pub fn ca_cert_path(&self) -> String {
        self.ca.cert.display().to_string()
    }

    pub fn ca(&self) -> &CertPair {
        &self.ca
    }

    /// Another self-signed CA (`name.pem`, `name.key`); it signs nothing here, so a
    /// peer verifying against it rejects every certificate of this Pki.
    pub fn new_ca(&self, name: &str, cn: &str) -> CertPair {
        let pair = self.pair(name);
        let (key, cert, subject) = (pair.key_path(), pair.cert_path(), format!("/CN={cn}"));
        let mut args = new_key_request("-x509", &key, &cert, &subject);
        args.extend([
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ]);
        self.openssl(&args);
        pair
    }

    /// A server certificate signed by the CA, subject `CN=cn`, with `sans` in openssl's
    /// syntax (`"DNS:a.example.com"`, `"DNS:*.b.example.com"`, `"IP:127.0.0.1"`).
    pub fn server(&self, name: &str, cn: &str, sans: &[&str]) -> CertPair {
        self.issue(name, cn, sans, Usage::Server, None)
    }

    /// A client certificate signed by the CA (`sans` as for [`Pki::server`]).
    pub fn client(&self, name: &str, cn: &str, sans: &[&str]) -> CertPair {
        self.issue(name, cn, sans, Usage::Client, None)
    }

    /// A certificate signed by the CA that expired in January 2020.
    pub fn expired(&self, name: &str, cn: &str, sans: &[&str], usage: Usage) -> CertPair {
        self.issue(
            name,
            cn,
            sans,
            usage,
            Some(("20200101000000Z", "20200102000000Z")),
        )
    }

    /// An intermediate CA signed by the CA (it signs end-entity certificates only).
    pub fn intermediate(&self, name: &str, cn: &str) -> CertPair {
        self.sign(
            &self.ca,
            name,
            cn,
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
                .to_string(),
            None,
        )
    }

    /// A certificate signed by `issuer` (an [`Pki::intermediate`]); its `cert` file
    /// holds the full chain, the certificate then the issuer's, as a server or a
    /// client presents it. Only the CA itself is a trust anchor.
    pub fn issued_by(
        &self,
        issuer: &CertPair,
        name: &str,
        cn: &str,
        sans: &[&str],
        usage: Usage,
    ) -> CertPair {
        let pair = self.sign(issuer, name, cn, leaf_extensions(sans, usage), None);
        let chain = format!("{}{}", pair.cert_pem(), issuer.cert_pem());
        std::fs::write(&pair.cert, chain).unwrap();
        pair
    }

    /// A self-signed end-entity certificate (no CA signed it), for server and client
    /// use.
    pub fn self_signed(&self, name: &str, cn: &str, sans: &[&str]) -> CertPair {
        let pair = self.pair(name);
        let (key, cert, subject) = (pair.key_path(), pair.cert_path(), format!("/CN={cn}"));
        let mut args = new_key_request("-x509", &key, &cert, &subject);
        args.extend([
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
        ]);
        let san = format!("subjectAltName={}", sans.join(","));
        if !sans.is_empty() {
            args.extend(["-addext", &san]);
        }
        self.openssl(&args);
        pair
    }

    /// Files `name.pem` and `name.key` in the Pki's folder.
    fn pair(&self, name: &str) -> CertPair {
        assert!(
            !self.dir.path().join(format!("{name}.pem")).exists(),
            "certificate {name} made twice"
        );
        CertPair {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }

    fn issue(
        &self,
        name: &str,
        cn: &str,
        sans: &[&str],
        usage: Usage,
        dates: Option<(&str, &str)>,
    ) -> CertPair {
        self.sign(&self.ca, name, cn, leaf_extensions(sans, usage), dates)
    }

    /// A new key and a certificate for it (`CN=cn`, `extensions` in openssl's
    /// extfile syntax) signed by `issuer`, valid for 30 days or between `dates`.
    fn sign(
        &self,
        issuer: &CertPair,
        name: &str,
        cn: &str,
        extensions: String,
        dates: Option<(&str, &str)>,
    ) -> CertPair {
        let pair = self.pair(name);
        let csr = self.dir.path().join(format!("{name}.csr"));
        let ext = self.dir.path().join(format!("{name}.ext"));
        let (key, subject) = (pair.key_path(), format!("/CN={cn}"));
        self.openssl(&new_key_request(
            "-new",
            &key,
            csr.to_str().unwrap(),
            &subject,
        ));
        std::fs::write(&ext, extensions).unwrap();
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-notext",
            "-cert",
            issuer.cert.to_str().unwrap(),
            "-keyfile",
            issuer.key.to_str().unwrap(),
            "-in",
            csr.to_str().unwrap(),
            "-out",
            pair.cert.to_str().unwrap(),
            "-extfile",
            ext.to_str().unwrap(),
        ];
        match dates {
            Some((start, end)) => args.extend(["-startdate", start, "-enddate", end]),
            None => args.extend(["-days", "30"]),
        }
        self.openssl(&args);
        pair
    }

    /// Runs openssl in the Pki's folder; panics with its output when it fails.
    fn openssl(&self, args: &[&str]) {
        let out = Command::new(&self.openssl)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `openssl x509 -noout -subject -serial -ext subjectAltName` of a PEM file.
    pub fn describe(&self, cert: &Path) -> String {
        let out = Command::new(&self.openssl)
            .args(["x509", "-noout", "-subject", "-serial", "-dates", "-in"])
            .arg(cert)
            .args(["-ext", "subjectAltName"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `openssl verify -CAfile ca cert` succeeds (intermediates taken from the
    /// certificate's own file).
    pub fn verifies(&self, ca: &Path, cert: &Path) -> bool {
        Command::new(&self.openssl)
            .args(["verify", "-CAfile"])
            .arg(ca)
            .arg("-untrusted")
            .arg(cert)
            .arg(cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Runs `openssl s_client -connect 127.0.0.1:port` with `args` (e.g.
    /// `["-servername", "a.example.com", "-tls1_3"]`), stdin closed, so it ends after
    /// the handshake. See [`SClient`].
    pub fn s_client(&self, port: u16, args: &[&str]) -> SClient {
        let mut cmd = Command::new(&self.openssl);
        cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(args);
        let out = run_limited(cmd, Duration::from_secs(15));
        SClient {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `openssl req` arguments that make a new P-256 key (unencrypted) in `key` and, for
/// `subject` (`/CN=...`), a self-signed certificate (`kind` "-x509") or a certificate
/// request (`kind` "-new") in `out`.
fn new_key_request<'a>(
    kind: &'a str,
    key: &'a str,
    out: &'a str,
    subject: &'a str,
) -> Vec<&'a str> {
    vec![
        "req",
        kind,
        "-config",
        "req.cnf",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        subject,
    ]
}

/// Extensions of an end-entity certificate for `usage` with `sans`.
fn leaf_extensions(sans: &[&str], usage: Usage) -> String {
    let mut extensions = format!(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage={}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        match usage {
            Usage::Server => "serverAuth",
            Usage::Client => "clientAuth",
        }
    );
    if !sans.is_empty() {
        extensions.push_str(&format!("subjectAltName={}\n", sans.join(",")));
    }
    extensions
}

/// What `openssl s_client` printed.
#[derive(Debug)]
pub struct SClient {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl SClient {
    /// The server certificate's subject (`"CN = a.example.com"`), when the handshake
    /// got that far.
    pub fn subject(&self) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("subject="))
            .map(|s| s.trim().to_string())
    }

    /// The negotiated protocol version (`"TLSv1.3"`), when a handshake completed.
    pub fn protocol(&self) -> Option<String> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("New, ") && l.contains(", Cipher is "))?;
        if line.contains("(NONE)") {
            return None;
        }
        line.strip_prefix("New, ")
            .and_then(|l| l.split(',').next())
            .map(|s| s.trim().to_string())
    }

    /// A handshake completed (a cipher was agreed).
    pub fn handshake_done(&self) -> bool {
        self.protocol().is_some()
    }

    pub fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) and kills it after `limit`;
/// a killed command has no exit code (its output so far is returned).
pub fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a peer program");
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut v);
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

/// What curl did: its exit code (None when killed), `-w` output and body on stdout,
/// and its error messages (and `-v` trace) on stderr.
#[derive(Debug)]
pub struct CurlOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CurlOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `curl -sS --max-time 10 ARGS`, killed after 20 s.
pub fn curl(args: &[&str]) -> Option<CurlOut> {
    let bin = peer_program("curl")?;
    let mut cmd = Command::new(bin);
    cmd.args(["-sS", "--max-time", "10"]).args(args);
    let out = run_limited(cmd, Duration::from_secs(20));
    Some(CurlOut {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
