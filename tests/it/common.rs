//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `pulse` binary under test.
pub fn pulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pulse"))
}

/// Runs `pulse ARGS`, panicking with its output when it fails.
pub fn pulse_ok(args: &[&str]) -> Output {
    let out = pulse().args(args).output().expect("pulse runs");
    assert!(
        out.status.success(),
        "pulse {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scratch directory, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A scratch directory removed at the end of the test. (No tempfile
/// crate: a dev-dependency would change the features of shared crates and
/// make `cargo test` rebuild what `cargo build` built.)
pub fn scratch() -> Scratch {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pulse-it-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    Scratch(dir)
}

/// A simulated events file (cached per settings within one test run).
pub fn simulated(dir: &Path, seed: u64, traders: u32, days: u32) -> PathBuf {
    let path = dir.join(format!("sim-{seed}-{traders}-{days}.ndjson"));
    if !path.exists() {
        pulse_ok(&[
            "simulate",
            "--seed",
            &seed.to_string(),
            "--traders",
            &traders.to_string(),
            "--days",
            &days.to_string(),
            "--out",
            path.to_str().unwrap(),
        ]);
    }
    path
}

/// A background `pulse` process, killed when dropped.
pub struct Running {
    pub child: Child,
    pub addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pulse ARGS` with `--listen 127.0.0.1:0` and waits for the line
/// that names the address it serves on.
pub fn spawn_serving(args: &[&str]) -> Running {
    spawn_serving_with(args, &[])
}

/// As [`spawn_serving`], with environment variables set.
pub fn spawn_serving_with(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = pulse()
        .args(args)
        .envs(env.iter().copied())
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pulse starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "pulse did not announce its address"
        );
        let line = lines
            .next()
            .expect("pulse printed its address line")
            .expect("utf-8 line");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().expect("address").to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, addr }
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_get_with(addr, path, &[])
}

/// As [`http_get`], with extra request headers (ureq, plain HTTP).
pub fn http_get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let mut request = agent.get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request
        .call()
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap_or_else(|e| panic!("body of http://{addr}{path}: {e}"));
    (status, body)
}

/// Sum of the samples of a metric family in a text exposition.
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A program the tests need, with how to install it when missing.
pub fn require_program(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is needed by this test: run scripts/install-test-deps (Debian package {package})")
    })
}

/// Opens `http://ADDR/` in headless Chromium with `scripts/page-check`
/// (its environment settings in `env`), keeps the screenshot at `shot`,
/// and fails with the check's report unless the page passed; returns the
/// report.
pub fn page_check(addr: &str, shot: &str, env: &[(&str, &str)]) -> String {
    require_program("chromium", "chromium");
    require_program("node", "nodejs");
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/page-check/check.mjs"
        ))
        .arg(format!("http://{addr}/"))
        .arg(shot)
        .envs(env.iter().copied())
        .output()
        .expect("node runs the page check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "page check of http://{addr}/ failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
