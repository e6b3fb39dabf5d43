//! Rendering of one notification as an email: the subject (Alertmanager's default template)
//! and the text and HTML bodies listing the alerts; every value in the HTML is escaped with
//! the one escaper, [`crate::util::html::escape`].

use std::fmt::Write as _;

use crate::notify::{Message, MessageAlert};
use crate::util::html::escape;

/// Alertmanager's default subject: `[FIRING:<firing alerts>]` or `[RESOLVED]`, the group
/// labels' values (sorted by label name), then the common labels not in the group labels as
/// `name=value` in parentheses. Control characters become spaces.
pub fn subject(msg: &Message) -> String {
    let mut parts = Vec::new();
    if msg.status == "firing" {
        let firing = msg.alerts.iter().filter(|a| a.status == "firing").count();
        parts.push(format!("[FIRING:{firing}]"));
    } else {
        parts.push(format!("[{}]", msg.status.to_uppercase()));
    }
    parts.extend(msg.group_labels.values().filter(|v| !v.is_empty()).cloned());
    let rest: Vec<String> = msg
        .common_labels
        .iter()
        .filter(|(k, _)| !msg.group_labels.contains_key(*k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !rest.is_empty() {
        parts.push(format!("({})", rest.join(" ")));
    }
    parts
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The alerts of `msg` with `status`.
fn with_status<'a>(msg: &'a Message, status: &'a str) -> impl Iterator<Item = &'a MessageAlert> {
    msg.alerts.iter().filter(move |a| a.status == status)
}

/// Annotations shown under their own heading before the others.
const MAIN_ANNOTATIONS: [&str; 2] = ["summary", "description"];

/// The text/plain body: the subject, then each alert (firing first, then resolved) with its
/// summary, description, labels, other annotations, start/end and source link.
pub fn text_body(msg: &Message) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", subject(msg));
    let _ = writeln!(out, "Receiver: {}", msg.receiver);
    if !msg.group_labels.is_empty() {
        let group: Vec<String> = msg
            .group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "Group: {}", group.join(" "));
    }
    if !msg.external_url.is_empty() {
        let _ = writeln!(out, "Sent by: {}", msg.external_url);
    }
    for (status, title) in [("firing", "Firing"), ("resolved", "Resolved")] {
        let alerts: Vec<&MessageAlert> = with_status(msg, status).collect();
        if alerts.is_empty() {
            continue;
        }
        let heading = format!("{title} alerts ({})", alerts.len());
        let _ = writeln!(out, "\n{heading}\n{}", "=".repeat(heading.chars().count()));
        for (i, a) in alerts.iter().enumerate() {
            let name = a.labels.get("alertname").map_or("", String::as_str);
            let _ = writeln!(out, "\n{}. [{}] {name}", i + 1, a.status.to_uppercase());
            for key in MAIN_ANNOTATIONS {
                if let Some(v) = a.annotations.get(key) {
                    let label = if key == "summary" {
                        "Summary"
                    } else {
                        "Description"
                    };
                    let _ = writeln!(out, "   {label}: {}", indent(v, "     "));
                }
            }
            let _ = writeln!(out, "   Labels:");
            for (k, v) in a.labels.iter() {
                let _ = writeln!(out, "     {k} = {}", indent(v, "       "));
            }
            let others: Vec<_> = a
                .annotations
                .iter()
                .filter(|(k, _)| !MAIN_ANNOTATIONS.contains(&k.as_str()))
                .collect();
            if !others.is_empty() {
                let _ = writeln!(out, "   Annotations:");
                for (k, v) in others {
                    let _ = writeln!(out, "     {k} = {}", indent(v, "       "));
                }
            }
            let _ = writeln!(out, "   Started: {}", a.starts_at);
            if a.status == "resolved" {
                let _ = writeln!(out, "   Ended: {}", a.ends_at);
            }
            let _ = writeln!(out, "   Source: {}", a.generator_url);
        }
    }
    out
}

/// `text` with every line after the first prefixed by `prefix`.
fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{prefix}"))
}

/// The text/html body: the same content as [`text_body`], every value HTML-escaped.
pub fn html_body(msg: &Message) -> String {
    let mut out = String::new();
    let title = escape(&subject(msg));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: sans-serif; font-size: 14px;\">\n<h2>{title}</h2>\n"
    );
    let _ = writeln!(out, "<p>Receiver: {}", escape(&msg.receiver));
    if !msg.group_labels.is_empty() {
        let group: Vec<String> = msg
            .group_labels
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        let _ = write!(out, "<br>Group: {}", group.join(" "));
    }
    if !msg.external_url.is_empty() {
        let _ = write!(out, "<br>Sent by: {}", link(&msg.external_url));
    }
    out.push_str("</p>\n");
    for (status, title, color) in [
        ("firing", "Firing", "#d9534f"),
        ("resolved", "Resolved", "#5cb85c"),
    ] {
        let alerts: Vec<&MessageAlert> = with_status(msg, status).collect();
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<h3 style=\"color: {color};\">{title} alerts ({})</h3>",
            alerts.len()
        );
        for a in alerts {
            let name = a.labels.get("alertname").map_or("", String::as_str);
            let _ = writeln!(
                out,
                "<table style=\"border-collapse: collapse; margin-bottom: 16px;\" cellpadding=\"4\">\n\
                 <tr><th colspan=\"2\" style=\"text-align: left; background: {color}; color: #fff;\">[{}] {}</th></tr>",
                escape(&a.status.to_uppercase()),
                escape(name)
            );
            let row = |out: &mut String, k: &str, v: &str| {
                let _ = writeln!(
                    out,
                    "<tr><td style=\"vertical-align: top;\"><b>{k}</b></td>\
                     <td style=\"white-space: pre-wrap;\">{v}</td></tr>"
                );
            };
            for key in MAIN_ANNOTATIONS {
                if let Some(v) = a.annotations.get(key) {
                    let label = if key == "summary" {
                        "Summary"
                    } else {
                        "Description"
                    };
                    row(&mut out, label, &escape(v));
                }
            }
            let labels: Vec<String> = a
                .labels
                .iter()
                .map(|(k, v)| format!("{} = {}", escape(k), escape(v)))
                .collect();
            row(&mut out, "Labels", &labels.join("<br>"));
            let others: Vec<String> = a
                .annotations
                .iter()
                .filter(|(k, _)| !MAIN_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| format!("{} = {}", escape(k), escape(v)))
                .collect();
            if !others.is_empty() {
                row(&mut out, "Annotations", &others.join("<br>"));
            }
            row(&mut out, "Started", &escape(&a.starts_at));
            if a.status == "resolved" {
                row(&mut out, "Ended", &escape(&a.ends_at));
            }
            row(&mut out, "Source", &link(&a.generator_url));
            out.push_str("</table>\n");
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// `url` as a link when it is http(s), else as escaped text.
fn link(url: &str) -> String {
    let url = escape(url);
    if url.starts_with("http://") || url.starts_with("https://") {
        format!("<a href=\"{url}\">{url}</a>")
    } else {
        url
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::notify::NO_END;

    fn alert(status: &str, queue: &str, summary: &str) -> MessageAlert {
        let labels = [
            ("alertname", "RabbitmqQueueMessagesReady"),
            ("severity", "warning"),
            ("vhost", "/"),
            ("queue", queue),
        ];
        MessageAlert {
            status: status.into(),
            labels: Arc::new(labels.map(|(k, v)| (k.to_owned(), v.to_owned())).into()),
            annotations: Arc::new(
                [
                    ("summary".to_owned(), summary.to_owned()),
                    (
                        "description".to_owned(),
                        "Ready messages <b>grow</b> & grow".to_owned(),
                    ),
                ]
                .into(),
            ),
            starts_at: "2026-01-01T00:00:00.000Z".into(),
            ends_at: if status == "resolved" {
                "2026-01-01T00:10:00.000Z".into()
            } else {
                NO_END.into()
            },
            generator_url: "http://watch:9419/api/v1/alerts".into(),
            fingerprint: "0123456789abcdef".into(),
        }
    }

    fn message(group_by: &[&str], alerts: Vec<MessageAlert>) -> Message {
        let group_labels: BTreeMap<String, String> = group_by
            .iter()
            .map(|k| ((*k).to_owned(), alerts[0].labels[*k].clone()))
            .collect();
        Message::new("team", "{}:{}", group_labels, alerts, "http://watch:9419")
    }

    #[test]
    fn subject_is_status_count_group_values_then_other_common_labels() {
        let m = message(
            &["alertname"],
            vec![
                alert("firing", "orders", "a"),
                alert("firing", "orders", "b"),
                alert("resolved", "orders", "c"),
            ],
        );
        assert_eq!(
            subject(&m),
            "[FIRING:2] RabbitmqQueueMessagesReady (queue=orders severity=warning vhost=/)"
        );
        let m = message(
            &["alertname", "vhost"],
            vec![
                alert("firing", "orders", "a"),
                alert("firing", "billing", "b"),
            ],
        );
        assert_eq!(
            subject(&m),
            "[FIRING:2] RabbitmqQueueMessagesReady / (severity=warning)"
        );
        let m = message(&["alertname"], vec![alert("resolved", "orders", "a")]);
        assert_eq!(
            subject(&m),
            "[RESOLVED] RabbitmqQueueMessagesReady (queue=orders severity=warning vhost=/)"
        );
        let mut m = message(&[], vec![alert("firing", "new\nline", "a")]);
        m.common_labels.retain(|k, _| k == "queue");
        assert_eq!(subject(&m), "[FIRING:1] (queue=new line)");
    }

    #[test]
    fn bodies_list_every_alert_and_html_escapes_values() {
        let m = message(
            &["alertname"],
            vec![
                alert("firing", "orders", "Queue orders is <late>"),
                alert("resolved", "billing", "Queue billing is back"),
            ],
        );
        let text = text_body(&m);
        for needle in [
            "Firing alerts (1)",
            "Resolved alerts (1)",
            "Summary: Queue orders is <late>",
            "Description: Ready messages <b>grow</b> & grow",
            "queue = orders",
            "queue = billing",
            "Started: 2026-01-01T00:00:00.000Z",
            "Ended: 2026-01-01T00:10:00.000Z",
            "Source: http://watch:9419/api/v1/alerts",
        ] {
            assert!(text.contains(needle), "{needle} not in\n{text}");
        }
        let html = html_body(&m);
        assert!(html.contains("Queue orders is &lt;late&gt;"), "{html}");
        assert!(html.contains("Ready messages &lt;b&gt;grow&lt;/b&gt; &amp; grow"));
        assert!(!html.contains("<late>") && !html.contains("<b>grow"));
        assert!(html.contains(
            "<a href=\"http://watch:9419/api/v1/alerts\">http://watch:9419/api/v1/alerts</a>"
        ));
        assert_eq!(link("javascript:alert(1)"), "javascript:alert(1)");
    }
}
