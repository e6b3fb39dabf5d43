//! Configuration errors: every broken file under `tests/fixtures/config/` is rejected with the
//! exact message in the `.error` file beside it, and `check-config` prints the effective
//! configuration with secrets redacted.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use rabbitmq_watch::config;

#[test]
fn every_broken_fixture_fails_with_its_exact_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = std::fs::read_to_string(path.with_extension("error"))
            .unwrap_or_else(|_| panic!("{name} has no .error file"));
        let err = config::load(Some(&path), HashMap::new(), &[])
            .expect_err(&format!("{name} was accepted"))
            .to_string();
        // Parser errors end with " in PATH", PATH as the config crate chose to print it.
        let err = match err.rsplit_once(" in ") {
            Some((head, tail)) if tail.ends_with(&name) => format!("{head} in {name}"),
            _ => err,
        };
        assert_eq!(err, expected.trim_end(), "{name}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures found");
}

#[test]
fn environment_errors_name_the_key_too() {
    let env = HashMap::from([(
        "RABBITMQ_WATCH__RABBITMQ__TIMEOUT".to_owned(),
        "soon".to_owned(),
    )]);
    let err = config::load(None, env, &[]).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid value for `rabbitmq.timeout`: \"soon\"; expected a duration with a unit, such as 500ms, 15s, 1m or 1h30m"
    );
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_rabbitmq-watch"))
        .args(["check-config", "--config"])
        .arg(&valid)
        .env("RABBITMQ_WATCH__POLL__INTERVAL", "45s")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let effective: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        effective["rabbitmq"]["url"],
        "https://mq.example.com:15671/rabbitmq/"
    );
    assert_eq!(effective["rabbitmq"]["username"], "watcher");
    assert_eq!(effective["rabbitmq"]["password"], "<redacted>");
    assert_eq!(effective["rabbitmq"]["timeout"], "5s");
    assert_eq!(
        effective["poll"]["interval"], "45s",
        "environment beats the file"
    );
    assert_eq!(effective["listen"], "127.0.0.1:9419");
    assert_eq!(effective["log"]["format"], "json");
    assert!(!stdout.contains("not-printed"));
}

#[test]
fn check_config_rejects_a_broken_file_with_exit_code_2() {
    let broken =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/bad-interval.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_rabbitmq-watch"))
        .args(["check-config", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`poll.interval`: \"fast\""), "{stderr}");
}

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rabbitmq-watch.yaml");
    let c = config::load(Some(&example), HashMap::new(), &[]).unwrap();
    assert_eq!(c.notify.receivers.len(), 3);
    assert_eq!(c.notify.route.routes.len(), 2);
    assert!(
        c.alerting
            .rules
            .iter()
            .any(|r| r.name == "OrdersQueueNearlyFull")
    );
}
