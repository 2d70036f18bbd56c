//! `pulse demo`: metrics served and growing; promtool accepts them.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{http_get, metric_sum, require_program, spawn_serving};

#[test]
fn demo_serves_growing_metrics_that_promtool_accepts() {
    let promtool = require_program("promtool", "prometheus");
    let demo = spawn_serving(&[
        "demo",
        "--for",
        "60s",
        "--rate",
        "20000",
        "--traders",
        "2000",
    ]);
    assert_eq!(http_get(&demo.addr, "/healthz").0, 200);
    // Readiness comes within moments of the start.
    let mut ready = false;
    for _ in 0..50 {
        if http_get(&demo.addr, "/readyz").0 == 200 {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready, "/readyz turns 200");
    let (status, first) = http_get(&demo.addr, "/metrics");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, second) = http_get(&demo.addr, "/metrics");
    let (a, b) = (
        metric_sum(&first, "pulse_events_read_total"),
        metric_sum(&second, "pulse_events_read_total"),
    );
    assert!(b > a, "events read grow between scrapes: {a} -> {b}");
    assert!(metric_sum(&second, "pulse_events_valid_total") > 0.0);
    assert!(metric_sum(&second, "pulse_state_traders") > 0.0);

    // Every pipeline of the catalogue shows up on /api/kpis and /metrics.
    let catalogue: Vec<&str> = veloc_pulse::pipeline::BUILTIN
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let mut missing = catalogue.clone();
    for _ in 0..100 {
        let (_, body) = http_get(&demo.addr, "/api/kpis");
        let kpis: serde_json::Value = serde_json::from_str(&body).expect("/api/kpis is JSON");
        missing.retain(|p| {
            kpis["pipelines"][p]["rows"]
                .as_array()
                .is_none_or(|r| r.is_empty())
        });
        if missing.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        missing.is_empty(),
        "pipelines without rows on /api/kpis: {missing:?}"
    );
    let (_, second) = http_get(&demo.addr, "/metrics");
    for p in &catalogue {
        assert!(
            second.contains(&format!("pulse_kpi_{p}_")),
            "pulse_kpi_{p}_* on /metrics"
        );
    }

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(second.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics is clean: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_stops_by_itself_after_its_duration() {
    let mut demo = spawn_serving(&["demo", "--for", "1s", "--rate", "1000", "--traders", "100"]);
    let status =
        wait_exit(&mut demo.child, Duration::from_secs(20)).expect("demo exits after --for");
    assert!(status.success());
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
