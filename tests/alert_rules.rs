//! The Prometheus alerting rules in `alerts/`: `promtool check rules` and `promtool test rules`
//! (Debian's prometheus package, installed by scripts/test.sh) pass, every rule has a unit test
//! in which it fires and one in which it does not, every default rule of the built-in engine
//! has a Prometheus twin with the same name, threshold, `for`, `keep_firing_for`, severity and
//! annotations, and docs/runbooks.md has a runbook for every alert.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rabbitmq_watch::alerting::rules::{Condition, DEFAULTS};
use serde_json::Value;
use support::{repo_file, yaml};

const PROMTOOL: &str = "/usr/bin/promtool";
const RULES: &str = "alerts/rabbitmq-watch.rules.yml";
const TESTS: &str = "alerts/tests/rabbitmq-watch.test.yml";

fn promtool(args: &[&str]) -> String {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} not found: install Debian's prometheus package (scripts/test.sh does)"
    );
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Every rule of the rules file by alert name.
fn rules() -> BTreeMap<String, Value> {
    let file = yaml(&repo_file(RULES), RULES);
    let mut rules = BTreeMap::new();
    for group in file["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            assert!(
                rules.insert(name.clone(), rule.clone()).is_none(),
                "{name} twice"
            );
        }
    }
    rules
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let out = promtool(&["check", "rules", RULES]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules().len())),
        "{out}"
    );
    let out = promtool(&["test", "rules", TESTS]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_rule_has_a_test_where_it_fires_and_one_where_it_does_not() {
    let tests = yaml(&repo_file(TESTS), TESTS);
    let mut fires = BTreeMap::<String, bool>::new();
    let mut silent = BTreeMap::<String, bool>::new();
    for test in tests["tests"].as_array().expect("tests") {
        for case in test["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected > 0 {
                fires.insert(name, true);
            } else {
                silent.insert(name, true);
            }
        }
    }
    for name in rules().keys() {
        assert!(fires.contains_key(name), "{name}: no test where it fires");
        assert!(
            silent.contains_key(name),
            "{name}: no test where it does not fire"
        );
    }
}

/// `5m`, `0s`, absent (= 0) → seconds.
fn seconds(v: &Value) -> u64 {
    v.as_str()
        .map(|t| humantime::parse_duration(t).expect("duration").as_secs())
        .unwrap_or(0)
}

#[test]
fn the_built_in_catalogue_has_the_same_rules_in_prometheus() {
    let rules = rules();
    for d in DEFAULTS {
        let rule = rules
            .get(d.name)
            .unwrap_or_else(|| panic!("{} of DEFAULTS is missing in {RULES}", d.name));
        let expr = rule["expr"].as_str().unwrap();
        // Each comparison of the built-in condition, with its threshold, is in the PromQL.
        let condition = Condition::parse(d.expr, d.kind).unwrap();
        for c in &condition.0 {
            // Flags of the backlog detector are label matchers there (`status="growing"`,
            // `rabbitmq_queue_dead_letter_queue_info`), not comparisons.
            if c.field.name().starts_with("backlog_") || c.field.name() == "dead_letter_queue" {
                continue;
            }
            let whole = Condition(vec![c.clone()]).to_string();
            let tokens: Vec<&str> = whole.split_whitespace().collect();
            let text = tokens[tokens.len() - 2..].join(" "); // `> 1000`
            assert!(
                expr.contains(&text),
                "{}: `{expr}` lacks `{text}` of `{}`",
                d.name,
                d.expr
            );
        }
        let for_ = humantime::parse_duration(d.for_).unwrap().as_secs();
        assert_eq!(seconds(&rule["for"]), for_, "{}: for", d.name);
        let keep = humantime::parse_duration(d.keep_firing_for)
            .unwrap()
            .as_secs();
        assert_eq!(
            seconds(&rule["keep_firing_for"]),
            keep,
            "{}: keep_firing_for",
            d.name
        );
        assert_eq!(rule["labels"]["severity"], d.severity, "{}", d.name);
        // The detectors' views ({{ $details.cause }}, {{ $cluster.sides }} …) exist only in the
        // built-in engine: such annotations are written for Prometheus, about the same object.
        let own = |t: &str| t.contains("$details") || t.contains("$cluster");
        if own(d.summary) || own(d.description) {
            let summary = rule["annotations"]["summary"].as_str().unwrap();
            let object = if d.summary.contains("$labels.queue") {
                "{{ $labels.queue }} in vhost {{ $labels.vhost }}"
            } else {
                "RabbitMQ"
            };
            assert!(summary.contains(object), "{}: {summary}", d.name);
            continue;
        }
        // `{{ $for }}` / `{{ $keep_firing_for }}` are the rule's own durations in words;
        // Prometheus rules spell out their own.
        let words =
            |d: &str| rabbitmq_watch::alerting::rules::words(humantime::parse_duration(d).unwrap());
        let description = d
            .description
            .replace("{{ $for }}", &words(d.for_))
            .replace("{{ $keep_firing_for }}", &words(d.keep_firing_for));
        assert_eq!(
            rule["annotations"]["description"], description,
            "{}",
            d.name
        );
        // Prometheus prints $value in full; a ratio is rounded as the built-in engine does.
        let summary = rule["annotations"]["summary"]
            .as_str()
            .unwrap()
            .replace(r#"{{ printf "%.3g" $value }}"#, "{{ $value }}");
        assert_eq!(summary, d.summary, "{}: summary", d.name);
    }
}

#[test]
fn the_runbooks_have_a_section_for_every_alert() {
    let runbooks = repo_file("docs/runbooks.md");
    for name in rules().keys() {
        let heading = format!("\n## {name}\n");
        let section = runbooks
            .split_once(&heading)
            .unwrap_or_else(|| panic!("no runbook `## {name}` in docs/runbooks.md"))
            .1;
        let section = section.split("\n## ").next().unwrap();
        for part in ["**Means**", "**Check**", "**Fix**"] {
            assert!(
                section.contains(part),
                "runbook {name} lacks {part}:\n{section}"
            );
        }
    }
}
