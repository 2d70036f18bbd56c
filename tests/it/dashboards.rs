//! The dashboards and rules against a real Prometheus scraping a running
//! demo, and the live page in a real headless Chromium.

use std::process::Command;

use crate::common::{http_get, page_check, require_program, spawn_serving};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every PromQL expression of `dashboards/` returns series from a
/// Prometheus that scraped `pulse demo` (scripts/check-dashboards).
#[test]
fn every_dashboard_expression_returns_series_in_prometheus() {
    let prometheus = require_program("prometheus", "prometheus");
    let demo = spawn_serving(&["demo", "--for", "240s", "--rate", "20000"]);
    let out = Command::new(format!("{ROOT}/scripts/check-dashboards"))
        .args(["--target", &demo.addr, "--wait", "20", "--prometheus"])
        .arg(&prometheus)
        .output()
        .expect("scripts/check-dashboards runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "dashboard expressions failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// The live page loads in headless Chromium without console errors, its
/// KPI tiles fill and change; the screenshot is kept.
#[test]
fn live_page_renders_and_updates_in_chromium() {
    let demo = spawn_serving(&["demo", "--for", "120s", "--rate", "20000"]);
    let (status, page) = http_get(&demo.addr, "/");
    assert_eq!(status, 200);
    assert!(
        page.contains("Veloc Pulse") && !page.contains("https://"),
        "self-contained page"
    );
    let shot = concat!(env!("CARGO_TARGET_TMPDIR"), "/live-page.png");
    let stdout = page_check(&demo.addr, shot, &[]);
    assert!(
        std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
        "screenshot saved at {shot}"
    );
    println!("screenshot: {shot}\n{stdout}");
}
