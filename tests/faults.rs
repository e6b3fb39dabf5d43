//! Faults a real broker cannot be made to produce on demand, from a fake management API on a
//! raw TCP socket: malformed JSON, HTTP 500, a response slower than the timeout, a body cut
//! short. The sidecar must report each with its reason, keep serving and keep polling.

mod support;

use std::time::Duration;

use support::{FakeApi, Sidecar, eventually, json_response};

/// Answers each request according to its path with one kind of fault.
fn faulty(target: &str) -> Vec<u8> {
    if target.starts_with("/api/overview") {
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
