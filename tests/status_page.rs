//! The status page in a real browser: the real `rabbitmq-watch` binary against a real RabbitMQ
//! node carrying the demo's AMQP traffic (`examples/demo/traffic.rs`: growing, stalled, no
//! consumers, a dead-letter queue filling) plus a queue named `<script>alert(1)</script>`,
//! loaded in headless Chromium (Debian's `chromium`, installed by `scripts/test.sh`). Checks
//! the DOM Chromium rendered and keeps a screenshot at `target/status-page/status.png`.

mod support;

#[allow(dead_code)] // the demo example uses all of it; this test only starts and stops it
#[path = "../examples/demo/traffic.rs"]
mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{RabbitNode, Sidecar, amqp, declare, eventually, publish, temp_dir};

/// The browser, from Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A queue name that is HTML: it must render as text.
const SCRIPT_QUEUE: &str = "<script>alert(1)</script>";

/// Runs headless Chromium with `args` (after the flags this machine needs: no sandbox as root,
/// no GPU, no background network, a fresh profile), killed after 60 s; returns its stdout.
fn chromium(args: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/test.sh installs it (scripts/install-deps.sh chromium)"
    );
    let profile = temp_dir("chromium-profile");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium {args:?} exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().expect("chromium stdout")
}

/// Where test artefacts go: `$CARGO_TARGET_DIR` or `target/`, under `status-page/`.
fn artefact_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("status-page");
    std::fs::create_dir_all(&dir).expect("artefact directory");
    dir
}

/// The `<tr …>…</tr>` of the rendered queue table whose name cell is `name` (as serialized in
/// the DOM, i.e. HTML-escaped).
fn queue_row<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let cell = format!("<td class=\"name\">{name}");
    dom.split("<tr class=\"queue\"")
        .skip(1)
        .map(|row| row.split("</tr>").next().unwrap_or(""))
        .find(|row| row.contains(&cell))
}

/// The active alerts of `/api/v1/alerts` as (alertname, queue, state).
fn alerts(sidecar: &Sidecar) -> Vec<(String, String, String)> {
    let (status, body) = sidecar.get("/api/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("alerts JSON");
    v["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let s = |x: &Value| x.as_str().unwrap_or("").to_owned();
            (
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["queue"]),
                s(&a["state"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_demo_cases_in_a_real_browser() {
    let node = RabbitNode::shared();
    let (_conn, ch) = amqp(node, "/").await;
    declare(&ch, SCRIPT_QUEUE).await;
    publish(&ch, SCRIPT_QUEUE, 3).await;
    let traffic = traffic::start(&node.amqp_url, "page")
        .await
        .expect("demo traffic");
    // 1 s polls, 10 s windows: every case is judged within about 15 s of traffic.
    let sidecar = Sidecar::start_with_config(
        &node.mgmt_url,
        r#"
alerting:
  backlog:
    window: 10s
    min_completeness: 0.8
  rules:
    - alert: RabbitmqQueueNoConsumers
      for: 2s
"#,
        &[("RABBITMQ_WATCH__POLL__INTERVAL", "1s")],
    );

    let wanted = [
        ("RabbitmqQueueGrowing", "page.growing"),
        ("RabbitmqQueueStalled", "page.stalled"),
        ("RabbitmqQueueNoConsumers", "page.no-consumers"),
        ("RabbitmqDeadLetterQueueGrowing", "page.dead-letter"),
    ];
    eventually(Duration::from_secs(120), "every demo case firing", || {
        let now = alerts(&sidecar);
        wanted
            .iter()
            .all(|(name, queue)| {
                now.iter()
                    .any(|(n, q, s)| n == name && q == queue && s == "firing")
            })
            .then_some(())
    });

    let url = format!("{}/", sidecar.base);
    let dom = chromium(&["--dump-dom", &url]);
    let screenshot = artefact_dir().join("status.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(&[
        &format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,2000",
        &url,
    ]);
    traffic.stop().await;
    let logs = sidecar.terminate();

    // The growing queue: its status, its cause with both rates, and a sparkline.
    let growing =
        queue_row(&dom, "page.growing").unwrap_or_else(|| panic!("no page.growing row:\n{dom}"));
    assert!(growing.contains(">GROWING<"), "{growing}");
    assert!(
        growing.contains("ingress ") && growing.contains("msg/s &gt; egress"),
        "{growing}"
    );
    assert!(
        growing.contains("<svg") && growing.contains("<polyline points="),
        "{growing}"
    );
    let stalled = queue_row(&dom, "page.stalled").expect("page.stalled row");
    assert!(
        stalled.contains(">STALLED<") && stalled.contains("consumers stalled"),
        "{stalled}"
    );
    let orphan = queue_row(&dom, "page.no-consumers").expect("page.no-consumers row");
    assert!(
        orphan.contains(">NO CONSUMERS<") && orphan.contains("no consumers"),
        "{orphan}"
    );
    let dead = queue_row(&dom, "page.dead-letter").expect("page.dead-letter row");
    assert!(dead.contains(">DLQ<"), "{dead}");
    let healthy = queue_row(&dom, "page.healthy").expect("page.healthy row");
    assert!(healthy.contains(">OK<"), "{healthy}");
    // Problems are listed before the healthy queue.
    let position = |name: &str| dom.find(&format!("<td class=\"name\">{name}")).unwrap();
    assert!(position("page.growing") < position("page.healthy"));

    // The alerts they raised, with summaries and how long they have fired.
    let alerts_section = dom
        .split("<section id=\"alerts\">")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .expect("alerts section");
    for (name, _) in wanted {
        assert!(
            alerts_section.contains(name),
            "{name} missing:\n{alerts_section}"
        );
    }
    assert!(alerts_section.contains("firing for "), "{alerts_section}");
    // Cluster summary and sidecar health.
    assert!(dom.contains("1 of 1 running"), "cluster summary missing");
    assert!(dom.contains("all running"), "sidecar health missing");

    // The queue named like a script element is text, not an element.
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    assert!(
        queue_row(&dom, escaped).is_some(),
        "the <script> queue is not listed as text"
    );
    assert!(
        !dom.contains(SCRIPT_QUEUE),
        "the queue name was rendered as markup"
    );
    assert!(!dom.contains("<script"), "a script element in the page");

    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot {} is not a rendered page ({} bytes)",
        screenshot.display(),
        png.len()
    );
    assert!(!logs.contains("panicked"), "{logs}");
}
