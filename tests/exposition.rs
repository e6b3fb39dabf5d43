//! Property tests of the rabbitmq_prometheus text parser ([`rabbitmq_watch::rabbitmq::exposition`])
//! and the prometheus source's parsers on the outputs recorded from real brokers
//! (`tests/fixtures/{3.10.8,4.0.5,4.0.5-stats-off}/metrics*.txt`): every recorded output
//! parses; any cut, byte change or inserted garbage gives an answer or an error, never a
//! panic; a cut anywhere but after a newline is an error (truncated); generated label values
//! survive escaping; the incremental parser, fed any pieces of a text, visits the same samples
//! and fails with the same error as the parse of the whole.

use proptest::prelude::*;
use rabbitmq_watch::rabbitmq::exposition;
use rabbitmq_watch::rabbitmq::prometheus::{parse_node, parse_queues};

const RECORDED: [&str; 6] = [
    include_str!("fixtures/3.10.8/metrics.txt"),
    include_str!("fixtures/3.10.8/metrics-detailed.txt"),
    include_str!("fixtures/4.0.5/metrics.txt"),
    include_str!("fixtures/4.0.5/metrics-detailed.txt"),
    include_str!("fixtures/4.0.5-stats-off/metrics.txt"),
    include_str!("fixtures/4.0.5-stats-off/metrics-detailed.txt"),
];

fn samples(text: &str) -> Result<usize, exposition::ParseError> {
    let mut n = 0;
    exposition::parse(text, |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

#[test]
fn pieces_of_every_recorded_output_parse_as_the_whole() {
    for text in RECORDED {
        let (samples, result) = whole(text);
        assert!(result.is_ok());
        // One byte at a time, and in pieces of 4 KiB.
        let every: Vec<usize> = (1..text.len()).collect();
        assert_eq!(
            in_pieces(text.as_bytes(), &every),
            (samples.clone(), Ok(()))
        );
        let pages: Vec<usize> = (1..=text.len() / 4096).map(|k| k * 4096).collect();
        assert_eq!(in_pieces(text.as_bytes(), &pages), (samples, Ok(())));
    }
}

#[test]
fn every_recorded_output_parses_completely() {
    for text in RECORDED {
        let lines = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(samples(text).unwrap(), lines);
        parse_queues(text).unwrap();
        parse_node(text).unwrap();
    }
}

/// Each visited sample as text, and the outcome.
type Visited = (Vec<String>, Result<(), exposition::ParseError>);

fn shown(s: &exposition::Sample<'_>) -> String {
    format!("{} {:?} {:x}", s.name, s.labels, s.value.to_bits())
}

fn whole(text: &str) -> Visited {
    let mut seen = Vec::new();
    let result = exposition::parse(text, |s| {
        seen.push(shown(&s));
        Ok(())
    });
    (seen, result)
}

/// `text` fed to [`exposition::Incremental`] in pieces cut at the byte offsets `cuts`.
fn in_pieces(text: &[u8], cuts: &[usize]) -> Visited {
    let mut seen = Vec::new();
    let mut parser = exposition::Incremental::default();
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(text.len())).collect();
    bounds.sort_unstable();
    bounds.push(text.len());
    for end in bounds {
        let fed = parser.feed(&text[at..end], &mut |s| {
            seen.push(shown(&s));
            Ok(())
        });
        if fed.is_err() {
            return (seen, fed);
        }
        at = end;
    }
    (seen, parser.finish())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

proptest! {
    // proptest's default count (256, or `PROPTEST_CASES`: scripts/fuzz.sh runs 1,000,000).

    #[test]
    fn cuts_are_complete_or_errors(which in 0..RECORDED.len(), at in 0.0f64..1.0) {
        let text = RECORDED[which];
        let mut cut = (text.len() as f64 * at) as usize;
        while !text.is_char_boundary(cut) { cut -= 1; }
        let part = &text[..cut];
        let result = samples(part);
        if part.is_empty() || part.ends_with('\n') {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err(), "a cut mid-line must be reported as truncated");
        }
        let _ = parse_queues(part);
        let _ = parse_node(part);
    }

    #[test]
    fn byte_changes_never_panic(which in 0..RECORDED.len(), at in 0.0f64..1.0, byte in any::<u8>()) {
        let mut bytes = RECORDED[which].as_bytes().to_vec();
        let i = ((bytes.len() - 1) as f64 * at) as usize;
        bytes[i] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = samples(&text);
            let _ = parse_queues(&text);
            let _ = parse_node(&text);
        }
    }

    #[test]
    fn inserted_garbage_never_panics(which in 0..RECORDED.len(), at in 0.0f64..1.0, junk in "\\PC{0,40}") {
        let text = RECORDED[which];
        let mut i = (text.len() as f64 * at) as usize;
        while !text.is_char_boundary(i) { i -= 1; }
        let changed = format!("{}{}{}", &text[..i], junk, &text[i..]);
        let _ = samples(&changed);
        let _ = parse_queues(&changed);
        let _ = parse_node(&changed);
    }

    #[test]
    fn pieces_parse_as_the_whole(
        which in 0..RECORDED.len(),
        end in 0.0f64..1.0,
        junk_at in 0.0f64..1.0,
        junk in "\\PC{0,12}",
        cuts in proptest::collection::vec(0.0f64..1.0, 0..12),
    ) {
        // A cut text (often truncated), with garbage inserted (often malformed).
        let text = RECORDED[which];
        let mut cut = (text.len() as f64 * end) as usize;
        while !text.is_char_boundary(cut) { cut -= 1; }
        let text = &text[..cut];
        let mut i = (text.len() as f64 * junk_at) as usize;
        while !text.is_char_boundary(i) { i -= 1; }
        let text = format!("{}{}{}", &text[..i], junk, &text[i..]);
        let cuts: Vec<usize> = cuts.iter().map(|c| (text.len() as f64 * c) as usize).collect();
        prop_assert_eq!(in_pieces(text.as_bytes(), &cuts), whole(&text));
    }

    #[test]
    fn label_values_round_trip(vhost in "\\PC{0,20}", queue in "[\\PC\n\"\\\\]{0,30}", value in 0u64..1_000_000) {
        let text = format!(
            "# TYPE rabbitmq_detailed_queue_messages_ready gauge\nrabbitmq_detailed_queue_messages_ready{{vhost=\"{}\",queue=\"{}\"}} {value}\n",
            escape(&vhost), escape(&queue)
        );
        let map = parse_queues(&text).unwrap();
        prop_assert_eq!(map[&(vhost, queue)].messages_ready, Some(value));
    }
}
