//! The documentation holds together, without a broker: every relative link and `#anchor` in
//! README.md and docs/*.md resolves (the file or directory exists; the anchor is a heading of
//! the target file by GitHub's slug rules), every document in docs/ has a table of contents
//! naming each of its sections, and every Prometheus alert in alerts/*.rules.yml has a
//! `runbook_url` annotation pointing at its own section of docs/runbooks.md.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use support::{repo_file, yaml};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as paths relative to the repository root.
fn documents() -> Vec<String> {
    let mut docs = vec!["README.md".to_owned()];
    let mut more: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    more.sort();
    assert!(more.len() >= 6, "docs/ holds only {more:?}");
    docs.extend(more);
    docs
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// `text` without inline code spans (`` `…` ``), so that code is never read as a link.
fn without_code(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// A heading's anchor as GitHub makes it: markup and punctuation dropped (letters, digits,
/// `_`, `-` kept), lowercase, each space a `-`.
fn slug(heading: &str) -> String {
    // [text](url) → text
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](").and_then(|close| {
            let url_end = rest[open + close..].find(')')?;
            Some((open + close, open + close + url_end))
        }) {
            Some((close, end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..close]);
                rest = &rest[end + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

/// The headings of a Markdown text (outside code blocks): (level, text).
fn headings(text: &str) -> Vec<(usize, String)> {
    prose(text)
        .into_iter()
        .filter_map(|line| {
            let level = line.chars().take_while(|&c| c == '#').count();
            let title = line.get(level..)?.strip_prefix(' ')?;
            (1..=6)
                .contains(&level)
                .then(|| (level, title.trim().to_owned()))
        })
        .collect()
}

/// Every anchor of a Markdown text; a repeated heading gets `-1`, `-2`, … as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut all = BTreeSet::new();
    for (_, title) in headings(text) {
        let base = slug(&title);
        let n = seen.entry(base.clone()).or_insert(0);
        all.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    all
}

/// Every inline link target `[text](target)` of a Markdown text, outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in prose(text) {
        let line = without_code(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            found.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    found
}

/// The broken links of document `doc` (its path relative to `base`), with `text` as its
/// contents: a missing file or directory, or an anchor the target file does not have.
fn broken_links(base: &Path, doc: &str, text: &str) -> Vec<String> {
    let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
    let mut broken = Vec::new();
    for target in links(text) {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let file: PathBuf = if path.is_empty() {
            base.join(doc)
        } else {
            base.join(dir).join(path)
        };
        if !file.exists() {
            broken.push(format!(
                "{doc}: `{target}`: {} does not exist",
                file.display()
            ));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        let Ok(target_text) = std::fs::read_to_string(&file) else {
            broken.push(format!("{doc}: `{target}`: an anchor into a directory"));
            continue;
        };
        if !anchors(&target_text).contains(anchor) {
            broken.push(format!(
                "{doc}: `{target}`: no heading with anchor #{anchor} in {}",
                file.display()
            ));
        }
    }
    broken
}

#[test]
fn anchors_follow_github_rules() {
    assert_eq!(
        slug("Prometheus rules (`alerts/`)"),
        "prometheus-rules-alerts"
    );
    assert_eq!(
        slug("Cluster detector (every member's own `/api/nodes`)"),
        "cluster-detector-every-members-own-apinodes"
    );
    assert_eq!(
        slug("What it is for, and how it compares"),
        "what-it-is-for-and-how-it-compares"
    );
    assert_eq!(slug("RabbitmqQueueNoConsumers"), "rabbitmqqueuenoconsumers");
    assert_eq!(
        slug("`rabbitmq_up` and [the API](x.md)"),
        "rabbitmq_up-and-the-api"
    );
    let twice = anchors("# A\n\n## Notes\n\n```\n# not a heading\n```\n\n## Notes\n");
    let expected: BTreeSet<String> = ["a", "notes", "notes-1"].map(String::from).into();
    assert_eq!(twice, expected);
}

#[test]
fn the_link_check_finds_broken_links() {
    let text = "[ok](README.md) [dir](docs) [anchor](docs/runbooks.md#rabbitmqqueuenoconsumers)\n\
                [gone](docs/nothing.md) [bad anchor](docs/runbooks.md#no-such-alert)\n\
                [self](#title) [bad self](#nothing) `[code](nowhere.md)`\n\n# Title\n";
    let dir = support::temp_dir("docs-links");
    std::fs::write(dir.join("x.md"), text).unwrap();
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("README.md"), "").unwrap();
    std::fs::copy(
        root().join("docs/runbooks.md"),
        dir.join("docs/runbooks.md"),
    )
    .unwrap();
    let broken = broken_links(&dir, "x.md", text);
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].contains("docs/nothing.md"), "{broken:#?}");
    assert!(broken[1].contains("#no-such-alert"), "{broken:#?}");
    assert!(broken[2].contains("#nothing"), "{broken:#?}");
}

#[test]
fn every_link_and_anchor_of_the_documentation_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = repo_file(&doc);
        checked += links(&text).len();
        broken.extend(broken_links(root(), &doc, &text));
    }
    assert!(checked >= 50, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_document_in_docs_has_a_table_of_contents_naming_each_section() {
    for doc in documents().iter().filter(|d| d.starts_with("docs/")) {
        let text = repo_file(doc);
        let contents = text
            .split_once("\n## Contents\n")
            .unwrap_or_else(|| panic!("{doc} has no `## Contents` section"))
            .1;
        let contents = contents.split("\n## ").next().unwrap();
        let listed: BTreeSet<String> = links(contents)
            .into_iter()
            .filter_map(|l| l.strip_prefix('#').map(str::to_owned))
            .collect();
        for (level, title) in headings(&text) {
            if level == 2 && title != "Contents" {
                let anchor = slug(&title);
                assert!(
                    listed.contains(&anchor),
                    "{doc}: section `{title}` (#{anchor}) is not in its table of contents"
                );
            }
        }
    }
}

#[test]
fn every_prometheus_alert_has_a_runbook_url_to_its_own_runbook() {
    let runbooks = repo_file("docs/runbooks.md");
    let sections: BTreeSet<String> = headings(&runbooks)
        .into_iter()
        .filter(|(level, _)| *level == 2)
        .map(|(_, title)| slug(&title))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("alerts"))
        .expect("alerts/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no alerts/*.rules.yml");
    let mut alerts = 0;
    for file in files {
        let name = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let rules = yaml(&repo_file(&name), &name);
        for group in rules["groups"].as_array().expect("groups") {
            for rule in group["rules"].as_array().expect("rules") {
                let Some(alert) = rule["alert"].as_str() else {
                    continue; // a recording rule
                };
                alerts += 1;
                let url = rule["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: {alert} has no runbook_url annotation"));
                let anchor = slug(alert);
                assert!(
                    url.ends_with(&format!("docs/runbooks.md#{anchor}")),
                    "{name}: {alert}: runbook_url {url:?} does not point at docs/runbooks.md#{anchor}"
                );
                assert!(
                    sections.contains(&anchor),
                    "{name}: {alert}: docs/runbooks.md has no section `## {alert}`"
                );
            }
        }
    }
    assert!(alerts >= 20, "only {alerts} alerts found");
}

/// No merge conflict markers were committed in the documentation (a docs file once carried a
/// whole unresolved conflict that no other check noticed).
#[test]
fn no_document_carries_merge_conflict_markers() {
    let mut found = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(root().join(&doc)).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("<<<<<<< ") || line.starts_with(">>>>>>> ") || line == "=======" {
                found.push(format!("{doc}:{}: {line}", i + 1));
            }
        }
    }
    assert!(found.is_empty(), "conflict markers:\n{}", found.join("\n"));
}
