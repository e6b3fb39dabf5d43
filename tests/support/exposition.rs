//! The parser of a text exposition (OpenMetrics or Prometheus text) scraped from `/metrics`.

/// One sample of an exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name as written (with `_total`, `_info` suffixes).
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// Whether the sample has the label `key` with the value `value`.
    pub fn has_label(&self, key: &str, value: &str) -> bool {
        self.labels.iter().any(|(k, v)| k == key && v == value)
    }
}

/// The node's memory and disk series, each with its limit (labelled `node`), as every source
/// exports them.
pub const NODE_MEMORY_AND_DISK: [&str; 4] = [
    "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_resident_memory_limit_bytes",
    "rabbitmq_disk_space_available_bytes",
    "rabbitmq_disk_space_available_limit_bytes",
];

/// A parsed text exposition (OpenMetrics or Prometheus text), comments dropped.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// Every sample in order.
    pub samples: Vec<Sample>,
    /// The raw text.
    pub text: String,
}

impl Exposition {
    /// Parses sample lines: `name{k="v",...} value`, with `\\`, `\"` and `\n` escapes.
    pub fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name_end, labels, rest) = match line.find('{') {
                Some(i) => {
                    let (labels, used) = parse_labels(&line[i + 1..]);
                    (i, labels, &line[i + 1 + used..])
                }
                None => {
                    let i = line.find(' ').expect("sample without value");
                    (i, Vec::new(), &line[i..])
                }
            };
            let value = rest
                .split_whitespace()
                .next()
                .expect("value")
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
            samples.push(Sample {
                name: line[..name_end].to_owned(),
                labels,
                value,
            });
        }
        Exposition {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self.find(name, labels);
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }

    /// Asserts that each series of `names` has one sample whose labels include `labels`, with
    /// a value above 0; the failure names `context`, the series, and the whole text.
    pub fn assert_positive(&self, names: &[&str], labels: &[(&str, &str)], context: &str) {
        for name in names {
            let value = self.get(name, labels);
            assert!(
                value.is_some_and(|v| v > 0.0),
                "{context}: {name} {labels:?}: {value:?}\n{}",
                self.text
            );
        }
    }

    /// Every sample named `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .collect()
    }
}

/// Parses `k="v",k2="v2"}` and returns the labels and the bytes consumed (through `}`).
fn parse_labels(s: &str) -> (Vec<(String, String)>, usize) {
    let b = s.as_bytes();
    let mut labels = Vec::new();
    let mut i = 0;
    loop {
        match b[i] {
            b'}' => return (labels, i + 1),
            b',' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let eq = i + s[i..].find('=').expect("label without =");
        let key = s[i..eq].to_owned();
        i = eq + 2; // past `="`
        let mut value = Vec::new();
        while b[i] != b'"' {
            if b[i] == b'\\' {
                i += 1;
                value.push(if b[i] == b'n' { b'\n' } else { b[i] });
            } else {
                value.push(b[i]);
            }
            i += 1;
        }
        i += 1;
        labels.push((key, String::from_utf8(value).expect("UTF-8 label value")));
    }
}
