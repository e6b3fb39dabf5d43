//! The `notify:` block of a test sidecar's configuration: one route to one webhook receiver
//! (usually a real [`HttpReceiver`](super::HttpReceiver)), grouped and sent without delay.

use std::fmt;

/// A `notify:` block with one route to the receiver `team`, whose one webhook posts to
/// `{url}/hook`: `group_wait` and `group_interval` 1 s, `repeat_interval` 1 h, `group_by`
/// `[alertname, queue]` unless [`Notify::group_by`] says otherwise. Rendered (with
/// `to_string()` or `{}`) as YAML ending with the webhook's last line and a newline, so that
/// more webhook keys or top-level sections can follow it.
#[derive(Clone, Debug)]
pub struct Notify {
    url: String,
    group_by: String,
    settings: Vec<String>,
    webhook_options: Vec<String>,
}

impl Notify {
    /// The block for a webhook receiver at `url` (its base URL: `/hook` is appended).
    pub fn webhook(url: &str) -> Notify {
        Notify {
            url: url.to_owned(),
            group_by: "alertname, queue".to_owned(),
            settings: Vec::new(),
            webhook_options: Vec::new(),
        }
    }

    /// Groups by `labels` (a comma-separated list, as written between `[` and `]`).
    pub fn group_by(mut self, labels: &str) -> Notify {
        labels.clone_into(&mut self.group_by);
        self
    }

    /// Adds `yaml` (one or more lines, written as at the top of the block) under `notify:`,
    /// before the route: `external_url: ...`, `state_file: ...`, `inhibit_rules: ...`.
    pub fn setting(mut self, yaml: &str) -> Notify {
        self.settings.push(yaml.to_owned());
        self
    }

    /// Adds `yaml` (one or more lines, as at the top of a webhook config) to the webhook:
    /// `hmac_secret: ...`, `headers: ...`.
    pub fn webhook_option(mut self, yaml: &str) -> Notify {
        self.webhook_options.push(yaml.to_owned());
        self
    }
}

/// Writes every line of `yaml` indented by `indent` spaces, each ending with a newline.
fn indented(f: &mut fmt::Formatter<'_>, yaml: &str, indent: usize) -> fmt::Result {
    for line in yaml.lines() {
        writeln!(f, "{:indent$}{line}", "")?;
    }
    Ok(())
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "notify:")?;
        for setting in &self.settings {
            indented(f, setting, 2)?;
        }
        writeln!(f, "  route:")?;
        writeln!(f, "    receiver: team")?;
        writeln!(f, "    group_by: [{}]", self.group_by)?;
        writeln!(f, "    group_wait: 1s")?;
        writeln!(f, "    group_interval: 1s")?;
        writeln!(f, "    repeat_interval: 1h")?;
        writeln!(f, "  receivers:")?;
        writeln!(f, "    - name: team")?;
        writeln!(f, "      webhook_configs:")?;
        writeln!(f, "        - url: {}/hook", self.url)?;
        for option in &self.webhook_options {
            indented(f, option, 10)?;
        }
        Ok(())
    }
}
