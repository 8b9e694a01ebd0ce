//! The mosn-rs command line on a config file: `validate` and `start` on a config that
//! does not load exit with status 2 and print its issues on stderr, one a line.

use super::tls::run_limited;
use super::BIN;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What `mosn-rs VERB -c FILE` did: its exit code (None when it was killed) and output.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// stderr, then stdout.
    pub fn output(&self) -> String {
        format!("{}{}", self.stderr, self.stdout)
    }
}

/// `mosn-rs VERB -c PATH`, stdin closed, killed after 30 s.
pub fn run_on_file(verb: &str, path: &Path) -> CliRun {
    let mut cmd = Command::new(BIN);
    cmd.args([verb, "-c", path.to_str().unwrap()]);
    let out = run_limited(cmd, Duration::from_secs(30));
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`run_on_file`] with `config` written to a file in a temp dir.
pub fn run_on_config(verb: &str, config: &str) -> CliRun {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config).unwrap();
    run_on_file(verb, &path)
}

/// Asserts that `mosn-rs VERB` refuses `config` with exit code 2; what it printed.
#[track_caller]
pub fn refused_with_exit_2(verb: &str, config: &str) -> CliRun {
    let run = run_on_config(verb, config);
    assert_eq!(
        run.code,
        Some(2),
        "{verb}: exit 2 expected\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

/// Asserts that `mosn-rs validate` refuses `config` with exit code 2; its stderr (the
/// issues).
#[track_caller]
pub fn validate_fails_with(config: &str) -> String {
    refused_with_exit_2("validate", config).stderr
}
