//! Issue #14, "State file that never blocks start-up": a state file that cannot be saved
//! shows in readiness and a metric. The real `rabbitmq-watch` binary against the real
//! RabbitMQ node (shared by this binary), its `notify.state_file` under a parent that is a
//! regular file, so every save fails (with ENOTDIR, even as root, where permission bits do
//! not stop writes): it starts and serves, `/-/ready` answers 503 naming the file while
//! `/-/healthy` answers 200, and `rabbitmq_watch_state_file_writable` is 0; once the
//! directory exists, the next save (after every evaluation, each 300 ms poll) succeeds and
//! both recover.

mod support;

use std::time::Duration;

use support::{RabbitNode, Sidecar, eventually, temp_dir};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn an_unwritable_state_file_fails_readiness_and_the_writable_gauge_until_a_save_succeeds() {
    let node = RabbitNode::shared();
    let dir = temp_dir("unwritable-state");
    let parent = dir.join("file");
    std::fs::write(&parent, b"not a directory").unwrap();
    let state = parent.join("state.json");
    let state_text = state.display().to_string();
    let sidecar = Sidecar::start(
        &node.mgmt_url,
        &[("RABBITMQ_WATCH__NOTIFY__STATE_FILE", state_text.as_str())],
    );
    let body = eventually(WAIT, "/-/ready answering 503 naming the state file", || {
        let (status, body) = sidecar.get("/-/ready");
        (status == 503 && body.contains(&state_text)).then_some(body)
    });
    assert!(body.contains("cannot save the state file"), "{body}");
    assert_eq!(sidecar.get("/-/healthy").0, 200, "alerting goes on");
    // The exposition is encoded after each evaluation: up to one poll interval old.
    let failures = eventually(WAIT, "rabbitmq_watch_state_file_writable 0", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_watch_state_file_writable", &[]) == Some(0.0))
            .then(|| m.get("rabbitmq_watch_state_file_write_failures_total", &[]))
    });
    assert!(failures.is_some_and(|n| n >= 1.0), "{failures:?}");

    // Make the path writable: the next save succeeds and both recover.
    std::fs::remove_file(&parent).unwrap();
    std::fs::create_dir(&parent).unwrap();
    eventually(WAIT, "/-/ready answering 200 again", || {
        (sidecar.get("/-/ready").0 == 200).then_some(())
    });
    eventually(WAIT, "rabbitmq_watch_state_file_writable 1", || {
        let m = sidecar.metrics();
        (m.get("rabbitmq_watch_state_file_writable", &[]) == Some(1.0)).then_some(())
    });
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    let logs = sidecar.terminate();
    assert!(logs.contains("the state file is saved again"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}
