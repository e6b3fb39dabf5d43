//! Faults a real broker cannot be made to produce on demand, from a fake management API on a
//! raw TCP socket: malformed JSON, HTTP 500, a response slower than the timeout, a body cut
//! short. The sidecar must report each with its reason, keep serving and keep polling.

mod support;

use std::time::Duration;

use support::{FakeApi, Sidecar, eventually, json_response, repo_file};

/// Answers each request according to its path with one kind of fault.
fn faulty(target: &str) -> Vec<u8> {
    if target.starts_with("/api/vhosts") {
        json_response("200 OK", "[{\"name\":\"/\"}]")
    } else if target.starts_with("/api/overview") {
        json_response("200 OK", "{\"cluster_name\": \"broken\", ")
    } else if target.starts_with("/api/nodes") {
        json_response("500 Internal Server Error", "{\"error\":\"boom\"}")
    } else if target.starts_with("/api/queues") {
        std::thread::sleep(Duration::from_secs(5)); // the sidecar's timeout is 2 s
        json_response("200 OK", "{\"items\":[],\"page\":1,\"page_count\":0}")
    } else if target.starts_with("/api/health/checks/alarms") {
        // Promises 1000 bytes, sends 12, hangs up.
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"status\":\"o".to_vec()
    } else {
        json_response("404 Not Found", "{}")
    }
}

#[test]
fn garbled_failing_slow_and_cut_answers_are_reported_and_the_sidecar_keeps_serving() {
    let api = FakeApi::start(faulty);
    let sidecar = Sidecar::start(&api.url, &[]);
    let expected = [
        ("/api/overview", "decode"),
        ("/api/nodes", "status"),
        ("/api/queues", "timeout"),
        ("/api/health/checks/alarms", "request"),
    ];
    let m = eventually(Duration::from_secs(30), "every fault counted", || {
        let m = sidecar.metrics();
        expected
            .iter()
            .all(|(endpoint, reason)| {
                m.get(
                    "rabbitmq_watch_endpoint_failures_total",
                    &[("endpoint", endpoint), ("reason", reason)],
                )
                .unwrap_or(0.0)
                    >= 1.0
            })
            .then_some(m)
    });
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    for (endpoint, _) in expected {
        assert_eq!(
            m.get("rabbitmq_watch_endpoint_success", &[("endpoint", endpoint)]),
            Some(0.0),
            "{endpoint}"
        );
    }
    // Nothing invented from garbage: no cluster, node or queue series.
    assert!(m.find("rabbitmq_identity_info", &[]).is_empty());
    assert!(m.find("rabbitmq_queues", &[]).is_empty());
    assert!(
        m.find("rabbitmq_alarms_memory_used_watermark", &[])
            .is_empty()
    );
    // Still serving and still polling.
    assert_eq!(sidecar.get("/-/healthy").0, 200);
    assert_eq!(sidecar.get("/-/ready").0, 503);
    let polls = m.get("rabbitmq_watch_polls_total", &[]).unwrap();
    eventually(Duration::from_secs(20), "polling goes on", || {
        (sidecar
            .metrics()
            .get("rabbitmq_watch_polls_total", &[])
            .unwrap()
            > polls)
            .then_some(())
    });
    let (_, page) = sidecar.get("/");
    assert!(page.contains("HTTP 500"), "{page}");
    assert!(page.contains("cannot decode response"), "{page}");
    assert!(page.contains("timed out after 2000 ms"), "{page}");
    let logs = sidecar.terminate();
    for (endpoint, reason) in expected {
        assert!(
            logs.contains(&format!("endpoint=\"{endpoint}\" reason=\"{reason}\""))
                || logs.contains(&format!("endpoint={endpoint} reason={reason}")),
            "no log line for {endpoint} {reason}:\n{logs}"
        );
    }
}

/// Fixture answers for everything but `/api/queues`, which `queues` answers.
fn fixture_or(target: &str, queues: fn() -> Vec<u8>) -> Vec<u8> {
    let fixture = |name: &str| repo_file(&format!("tests/fixtures/3.10/{name}"));
    if target.starts_with("/api/queues") {
        queues()
    } else if target.starts_with("/api/vhosts") {
        json_response("200 OK", "[{\"name\":\"/\"}]")
    } else if target.starts_with("/api/overview") {
        json_response("200 OK", &fixture("overview-columns.json"))
    } else if target.starts_with("/api/nodes") {
        json_response("200 OK", &fixture("nodes-columns.json"))
    } else if target.starts_with("/api/health/checks/alarms") {
        json_response("200 OK", &fixture("alarms-ok.json"))
    } else {
        json_response("404 Not Found", "{}")
    }
}

/// How a fake API answers a request target.
type Respond = fn(&str) -> Vec<u8>;

/// A valid listing of `n` queues.
fn listing(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"vhost\":\"/\",\"name\":\"q{i:06}\",\"messages_ready\":{i},\"consumers\":0}}"
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `/api/queues` larger than `rabbitmq.max_response_bytes` (100,000 here; the body is ~0.14 MB,
/// sent with and without a Content-Length) fails that read with a reason naming the key;
/// nothing is exported from it and the sidecar keeps serving.
#[test]
fn an_oversized_listing_fails_that_read_with_a_clear_reason() {
    for (framing, respond) in [
        (
            "content-length",
            (|t: &str| fixture_or(t, || json_response("200 OK", &listing(2_000))))
                as fn(&str) -> Vec<u8>,
        ),
        ("until close", |t: &str| {
            fixture_or(t, || {
                let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
                r.extend_from_slice(listing(2_000).as_bytes());
                r
            })
        }),
    ] {
        let api = FakeApi::start(respond);
        let sidecar = Sidecar::start(
            &api.url,
            &[("RABBITMQ_WATCH__RABBITMQ__MAX_RESPONSE_BYTES", "100000")],
        );
        let m = eventually(
            Duration::from_secs(30),
            "the oversized read counted",
            || {
                let m = sidecar.metrics();
                (m.get(
                    "rabbitmq_watch_endpoint_failures_total",
                    &[("endpoint", "/api/queues"), ("reason", "request")],
                )
                .unwrap_or(0.0)
                    >= 1.0)
                    .then_some(m)
            },
        );
        assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0), "{framing}");
        assert_eq!(
            m.get(
                "rabbitmq_watch_endpoint_success",
                &[("endpoint", "/api/overview")]
            ),
            Some(1.0),
            "{framing}"
        );
        assert!(
            m.find("rabbitmq_queue_messages_ready", &[]).is_empty(),
            "{framing}"
        );
        let (_, page) = sidecar.get("/");
        assert!(
            page.contains("larger than rabbitmq.max_response_bytes (100000 bytes)"),
            "{framing}: {page}"
        );
        assert_eq!(sidecar.get("/-/healthy").0, 200);
        // The same listing under the default cap is read.
        drop(sidecar);
        let sidecar = Sidecar::start(&api.url, &[]);
        let read = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(300));
            sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)
        });
        assert!(read, "{framing}: {}", sidecar.get("/").1);
        let m = sidecar.metrics();
        assert_eq!(
            m.get("rabbitmq_watch_queues_exported", &[]),
            Some(2_000.0),
            "{framing}"
        );
    }
}

/// A listing body cut short: inside an element, between elements, with and without a
/// Content-Length promising more. The read fails (decode or request), nothing is exported
/// from it, and the sidecar keeps polling.
#[test]
fn a_truncated_listing_fails_that_read_without_a_crash() {
    let cases: [(&str, Respond, &str); 3] = [
        (
            "closed inside an element",
            |t| {
                fixture_or(t, || {
                    let body = listing(100);
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
                    r.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
                    r
                })
            },
            "decode",
        ),
        (
            "closed after an element",
            |t| {
                fixture_or(t, || {
                    let body = listing(100);
                    let cut = body.find("},{").unwrap() + 1;
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_vec();
                    r.extend_from_slice(&body.as_bytes()[..cut]);
                    r
                })
            },
            "decode",
        ),
        (
            "shorter than its Content-Length",
            |t| {
                fixture_or(t, || {
                    let body = listing(100);
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
                    r
                })
            },
            "request",
        ),
    ];
    for (case, respond, reason) in cases {
        let api = FakeApi::start(respond);
        let sidecar = Sidecar::start(&api.url, &[]);
        let m = eventually(Duration::from_secs(30), case, || {
            let m = sidecar.metrics();
            (m.get(
                "rabbitmq_watch_endpoint_failures_total",
                &[("endpoint", "/api/queues"), ("reason", reason)],
            )
            .unwrap_or(0.0)
                >= 2.0)
                .then_some(m)
        });
        assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0), "{case}");
        assert!(
            m.find("rabbitmq_queue_messages_ready", &[]).is_empty(),
            "{case}"
        );
        assert_eq!(sidecar.get("/-/healthy").0, 200, "{case}");
        let logs = sidecar.terminate();
        assert!(!logs.contains("panicked"), "{case}: {logs}");
        if reason == "decode" {
            assert!(logs.contains("truncated"), "{case}: {logs}");
        }
    }
}

/// RabbitMQ 3.13.0 answers `sort=` (empty) with HTTP 500: the sidecar reads the listing again
/// without it, and leaves it out from then on.
#[test]
fn a_broker_rejecting_sort_is_read_sorted() {
    let api = FakeApi::start(|t| fixture_or(t, || json_response("200 OK", &listing(3))));
    let api_500 = FakeApi::start(|t| {
        if t.starts_with("/api/queues") && t.contains("sort=") {
            json_response("500 Internal Server Error", "{\"error\":\"badarg\"}")
        } else {
            fixture_or(t, || json_response("200 OK", &listing(3)))
        }
    });
    // A broker that accepts it is asked without sorting.
    let sidecar = Sidecar::start(&api.url, &[]);
    eventually(Duration::from_secs(30), "up", || {
        (sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)).then_some(())
    });
    drop(sidecar);
    let listed: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|t| t.starts_with("/api/queues"))
        .collect();
    assert!(
        listed
            .iter()
            .all(|t| t.contains("sort=") && !t.contains("page")),
        "{listed:?}"
    );

    let sidecar = Sidecar::start(&api_500.url, &[]);
    let m = eventually(Duration::from_secs(30), "up without sort=", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_up", &[]) == Some(1.0)
            && m.get("rabbitmq_watch_polls_total", &[]).unwrap_or(0.0) >= 3.0)
            .then_some(m)
    });
    assert_eq!(m.get("rabbitmq_watch_queues_exported", &[]), Some(3.0));
    drop(sidecar);
    let listed: Vec<String> = api_500
        .requests()
        .into_iter()
        .filter(|t| t.starts_with("/api/queues"))
        .collect();
    assert!(listed.len() >= 3, "{listed:?}");
    assert!(listed[0].contains("sort="), "{listed:?}");
    assert!(
        listed[1..].iter().all(|t| !t.contains("sort=")),
        "{listed:?}"
    );
}
