//! Property tests (proptest, stable Rust) of everything that reads input the sidecar does not
//! control: the management API decoders (mutations and truncations of the recorded fixtures),
//! the configuration loader (arbitrary and mutated YAML), label matchers and silences (the
//! write API's input), rule conditions and annotation templates. Each property is "an error or
//! a value, never a panic" (plus a few round trips).
//!
//! `cargo test` runs proptest's default count (256 cases, or `PROPTEST_CASES`);
//! `scripts/fuzz.sh` runs each target with a million cases in release mode and records the
//! figures in `fuzz/RESULTS.md`. Targets are the test names: `decoders_*`, `config_*`,
//! `matchers_*`, `silences_*`, `conditions_*`, `templates_*`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use rabbitmq_watch::alerting::rules::{format_value, render};
use rabbitmq_watch::config::rules::{Condition, Kind};
use rabbitmq_watch::matcher::Matcher;
use rabbitmq_watch::notify::silence::{Silence, Silences, end_after};
use rabbitmq_watch::rabbitmq::model::{Alarms, Node, Overview, Queue, dead_letter_targets};

/// The recorded management API answers, by endpoint kind, read once.
fn fixtures() -> &'static Vec<(String, Vec<u8>)> {
    static FIXTURES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut out = Vec::new();
        for version in std::fs::read_dir(&root).unwrap().flatten() {
            if !version.path().is_dir() {
                continue;
            }
            for file in std::fs::read_dir(version.path()).unwrap().flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                    out.push((name, std::fs::read(&path).unwrap()));
                }
            }
        }
        assert!(out.len() >= 8, "fixtures missing: {}", out.len());
        out
    })
}

/// Decodes `body` as the endpoint `kind` answers and uses what was decoded, as the poller and
/// the metrics do. Errors are fine; a panic fails the property.
fn decode(kind: &str, body: &[u8]) {
    if kind.starts_with("queues") || kind.starts_with("queue") {
        if let Ok(queues) = serde_json::from_slice::<Vec<Queue>>(body) {
            for q in &queues {
                let _ = (q.utilisation(), q.total_messages(), q.total_bytes());
                let _ = q.max_priority();
            }
            let _ = dead_letter_targets(&queues);
        }
    } else if kind.starts_with("nodes") {
        if let Ok(nodes) = serde_json::from_slice::<Vec<Node>>(body) {
            let _ = format!("{nodes:?}");
        }
    } else if kind.starts_with("overview") {
        if let Ok(o) = serde_json::from_slice::<Overview>(body) {
            let _ = o.stats_enabled();
        }
    } else if let Ok(a) = serde_json::from_slice::<Alarms>(body) {
        let _ = a.validate();
    }
}

/// An arbitrary JSON value of bounded depth, biased to what breaks decoders: extreme
/// numbers, negative counts, floats for integers, strings for numbers, nulls.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(-1)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a position chosen by `pick` (walking objects and arrays) with `new`.
fn replace_somewhere(value: &mut serde_json::Value, mut pick: u64, new: serde_json::Value) {
    let mut node = value;
    loop {
        let len = match node {
            serde_json::Value::Array(a) => a.len(),
            serde_json::Value::Object(o) => o.len(),
            _ => 0,
        };
        if len == 0 || pick.is_multiple_of(4) {
            *node = new;
            return;
        }
        let i = usize::try_from(pick % len as u64).unwrap_or(0);
        pick /= 7;
        node = match node {
            serde_json::Value::Array(a) => &mut a[i],
            serde_json::Value::Object(o) => o.values_mut().nth(i).unwrap(),
            _ => unreachable!(),
        };
    }
}

/// A byte-level mutation of `body`.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b'{'),
                    Just(b'}'),
                    Just(b'['),
                    Just(b']'),
                    Just(b','),
                    Just(b':'),
                    Just(b'-'),
                    Just(b'9'),
                    any::<u8>()
                ],
                1..8
            )
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(body: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = body.to_vec();
    let at = |i: usize| if out.is_empty() { 0 } else { i % out.len() };
    match m {
        Mutation::Truncate(i) => {
            let i = at(*i);
            out.truncate(i);
        }
        Mutation::Flip(i, b) => {
            if !out.is_empty() {
                let i = at(*i);
                out[i] = *b;
            }
        }
        Mutation::Delete(i, n) => {
            let i = at(*i);
            let end = (i + n).min(out.len());
            out.drain(i..end);
        }
        Mutation::Insert(i, bytes) => {
            let i = at(*i);
            out.splice(i..i, bytes.iter().copied());
        }
    }
    out
}

/// Seed configurations: the example and the valid test fixture.
fn config_seeds() -> &'static Vec<String> {
    static SEEDS: OnceLock<Vec<String>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        ["examples/rabbitmq-watch.yaml", "tests/fixtures/valid.yaml"]
            .iter()
            .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
            .collect()
    })
}

/// YAML-ish text built from the configuration's own vocabulary, so that the validators (not
/// only the YAML parser) see arbitrary values.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("rabbitmq"),
        Just("url"),
        Just("password"),
        Just("password_file"),
        Just("timeout"),
        Just("poll"),
        Just("interval"),
        Just("queues"),
        Just("include"),
        Just("max_total"),
        Just("alerting"),
        Just("rules"),
        Just("alert"),
        Just("kind"),
        Just("expr"),
        Just("for"),
        Just("select"),
        Just("notify"),
        Just("receivers"),
        Just("name"),
        Just("webhook_configs"),
        Just("hmac_secret"),
        Just("email_configs"),
        Just("route"),
        Just("group_by"),
        Just("matchers"),
        Just("listen"),
        Just("cluster"),
        Just("web"),
        Just("log"),
    ];
    let scalar = prop_oneof![
        Just("007".to_owned()),
        Just(String::new()),
        Just("~".to_owned()),
        Just("10000y".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e400".to_owned()),
        Just("\"http://u:p@h/\"".to_owned()),
        Just("messages_ready > 5".to_owned()),
        Just("[a, b]".to_owned()),
        Just("{x: 1}".to_owned()),
        "[ -~]{0,16}",
    ];
    prop::collection::vec((0..4usize, key, scalar, any::<bool>()), 0..24).prop_map(|lines| {
        let mut out = String::new();
        for (depth, key, value, list) in lines {
            out.push_str(&"  ".repeat(depth));
            if list {
                out.push_str("- ");
            }
            out.push_str(key);
            out.push_str(": ");
            out.push_str(&value);
            out.push('\n');
        }
        out
    })
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

proptest! {
    #[test]
    fn decoders_never_panic_on_mutated_fixtures(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let (kind, body) = which.get(fixtures());
        let mut bytes = body.clone();
        for m in &mutations {
            bytes = apply(&bytes, m);
        }
        decode(kind, &bytes);
    }

    #[test]
    fn decoders_never_panic_on_fixtures_with_replaced_values(
        which in any::<prop::sample::Index>(),
        picks in prop::collection::vec((any::<u64>(), json_value()), 1..4),
    ) {
        let (kind, body) = which.get(fixtures());
        let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
        for (pick, new) in picks {
            replace_somewhere(&mut value, pick, new);
        }
        decode(kind, &serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn config_loader_never_panics_on_yamlish_text(text in yamlish()) {
        let _ = rabbitmq_watch::config::load_yaml(&text, no_env(), &[]);
    }

    #[test]
    fn config_loader_never_panics_on_mutated_valid_files(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..3),
    ) {
        let mut bytes = which.get(config_seeds()).clone().into_bytes();
        for m in &mutations {
            bytes = apply(&bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = rabbitmq_watch::config::load_yaml(&text, no_env(), &[]);
    }

    #[test]
    fn config_loader_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = rabbitmq_watch::config::load_yaml(&text, no_env(), &[]);
    }

    #[test]
    fn matchers_parse_or_fail_and_round_trip(
        name in prop_oneof![Just(String::new()), "[a-zA-Z_][a-zA-Z0-9_]{0,8}", "\\PC{0,6}"],
        op in prop_oneof![Just("="), Just("!="), Just("=~"), Just("!~"), Just("=="), Just("")],
        value in "\\PC{0,12}",
        quoted in any::<bool>(),
        label in "\\PC{0,8}",
    ) {
        let text = if quoted {
            format!("{name}{op}{value:?}")
        } else {
            format!("{name}{op}{value}")
        };
        if let Ok(m) = Matcher::parse(&text) {
            let labels: BTreeMap<String, String> = [(name.clone(), label)].into();
            let _ = m.matches(&labels);
            let _ = m.matches(&BTreeMap::new());
            let _ = format!("{m:?}");
        }
        let _ = Matcher::parse(&value);
    }

    #[test]
    fn silences_are_validated_never_panicking(
        matchers in prop::collection::vec("\\PC{0,20}", 0..4),
        start_offset in any::<i64>(),
        length in any::<u64>(),
        comment in "\\PC{0,40}",
        created_by in "\\PC{0,10}",
        duration_nanos in any::<u64>(),
    ) {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_500_000);
        let shift = |secs: i64| -> SystemTime {
            if secs >= 0 {
                now.checked_add(Duration::from_secs(secs.unsigned_abs())).unwrap_or(now)
            } else {
                now.checked_sub(Duration::from_secs(secs.unsigned_abs())).unwrap_or(now)
            }
        };
        let starts_at = shift(start_offset);
        let ends_at = starts_at.checked_add(Duration::from_secs(length)).unwrap_or(starts_at);
        let _ = end_after(starts_at, Duration::from_nanos(duration_nanos));
        let silence = Silence {
            id: String::new(),
            matchers,
            starts_at,
            ends_at,
            created_by,
            comment,
        };
        let store = Silences::default();
        if let Ok(id) = store.add(silence, now) {
            // Whatever was accepted can be saved (the state file) and read back.
            let saved = store.list(now);
            let text = serde_json::to_string(&saved).expect("an accepted silence serializes");
            let back: Vec<Silence> = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back.len(), 1);
            let _ = store.mutes(&BTreeMap::new(), now);
            prop_assert!(store.expire(&id, now));
        }
    }

    #[test]
    fn silences_decode_from_arbitrary_json_without_panicking(value in json_value()) {
        let _ = serde_json::from_value::<Silence>(value);
    }

    #[test]
    fn conditions_parse_or_fail(
        field in prop_oneof![
            Just("messages_ready".to_owned()),
            Just("messages".to_owned()),
            Just("consumers".to_owned()),
            Just("running_nodes".to_owned()),
            "\\PC{0,10}",
        ],
        op in prop_oneof![Just(">"), Just(">="), Just("<"), Just("<="), Just("=="), Just("!="), Just("=>"), Just("")],
        number in prop_oneof![
            any::<f64>().prop_map(|f| f.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("1e400".to_owned()),
            Just("NaN".to_owned()),
            Just("inf".to_owned()),
            "\\PC{0,8}",
        ],
        kind in prop_oneof![Just(Kind::Queue), Just(Kind::Node), Just(Kind::Cluster)],
        spaces in any::<bool>(),
    ) {
        let text = if spaces { format!(" {field} {op} {number} ") } else { format!("{field}{op}{number}") };
        let _ = Condition::parse(&text, kind);
        let _ = Condition::parse(&number, kind);
    }

    #[test]
    fn templates_render_anything(
        template in prop_oneof![
            "\\PC{0,60}",
            prop::collection::vec(
                prop_oneof![
                    Just("{{".to_owned()),
                    Just("}}".to_owned()),
                    Just("{{ $value }}".to_owned()),
                    Just("{{ $labels.queue }}".to_owned()),
                    Just("{{ $details.".to_owned()),
                    Just("{{ $cluster.nodes }}".to_owned()),
                    Just("é".to_owned()),
                    "\\PC{0,6}",
                ],
                0..10,
            ).prop_map(|parts| parts.concat()),
        ],
        value in any::<f64>(),
        label in "\\PC{0,10}",
    ) {
        let labels: BTreeMap<String, String> = [("queue".to_owned(), label)].into();
        let details: BTreeMap<String, String> = [("growth".to_owned(), "1".to_owned())].into();
        let out = render(&template, &labels, value, &details, &BTreeMap::new(), &BTreeMap::new());
        // Text outside `{{ … }}` is kept.
        if !template.contains("{{") {
            prop_assert_eq!(out, template);
        }
        let _ = format_value(value);
    }
}
