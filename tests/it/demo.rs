//! `pulse demo`: metrics served and growing; promtool accepts them.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{
    http_get, http_get_with, metric_sum, require_program, spawn_serving, spawn_serving_with,
};

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

/// With `PULSE_HTTP_TOKEN` set, `/api/*` answers only with the token;
/// the probes, the page and (by default) `/metrics` stay open.
#[test]
fn a_token_guards_the_api() {
    const TOKEN: &str = "demo-token-0123456789";
    let demo = spawn_serving_with(
        &["demo", "--for", "30s", "--rate", "1000", "--traders", "100"],
        &[("PULSE_HTTP_TOKEN", TOKEN)],
    );
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/api/status", "/api/kpis", "/api/alerts"] {
        assert_eq!(http_get(&demo.addr, path).0, 401, "{path} without a token");
        let wrong = http_get_with(
            &demo.addr,
            path,
            &[("Authorization", "Bearer demo-token-0123456780")],
        );
        assert_eq!(wrong.0, 401, "{path} with a wrong token");
        assert!(!wrong.1.contains(TOKEN));
        let (code, body) = http_get_with(&demo.addr, path, &[("Authorization", &bearer)]);
        assert_eq!(code, 200, "{path} with the token: {body}");
        assert!(!body.contains(TOKEN), "{path} shows the token");
    }
    for path in ["/healthz", "/", "/metrics"] {
        assert_eq!(http_get(&demo.addr, path).0, 200, "{path} stays open");
    }
}

/// `[http] protect_metrics`: `/metrics` needs the token as well.
#[test]
fn protected_metrics_need_the_token() {
    use veloc_pulse::http::{Access, AppState, serve};
    use veloc_pulse::metrics::Metrics;
    const TOKEN: &str = "scrape-token-0123456789";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let access = Access::resolve(Some(TOKEN), true).unwrap();
    let state = AppState::new(Metrics::new("test")).with_access(access);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    assert_eq!(http_get(&addr, "/metrics").0, 401);
    let (code, body) = http_get_with(
        &addr,
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(code, 200);
    assert!(body.contains("pulse_events_read_total"), "{body}");
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    stop.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
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
