//! Which queues are exported: the `queues.*` filters applied to a listing, then the caps.
//! What was left out, and why, is counted in [`Selection`] and exported, so that a cap is
//! never a silent disappearance.

use crate::config::QueuesConfig;
use crate::rabbitmq::model::Queue;

/// How a listing was narrowed down to the exported queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Queues the API returned (after any server-side filtering).
    pub listed: u64,
    /// Queues removed by the `queues.*` filters (names, vhosts, exclusive).
    pub excluded: u64,
    /// Queues dropped by `queues.max_per_vhost`.
    pub dropped_per_vhost: u64,
    /// Queues dropped by `queues.max_total`.
    pub dropped_total: u64,
    /// Queues exported.
    pub exported: u64,
}

/// Whether `queue` passes the `queues.*` filters.
pub fn wanted(cfg: &QueuesConfig, queue: &Queue) -> bool {
    cfg.include_vhosts.is_match(&queue.vhost)
        && !cfg
            .exclude_vhosts
            .as_ref()
            .is_some_and(|r| r.is_match(&queue.vhost))
        && cfg.include.is_match(&queue.name)
        && !cfg
            .exclude
            .as_ref()
            .is_some_and(|r| r.is_match(&queue.name))
        && !(cfg.exclude_exclusive && queue.exclusive == Some(true))
}

/// Filters `queues` (sorted by vhost, name) and applies the caps: the first
/// `max_per_vhost` queues of each vhost, then the first `max_total` overall, in (vhost, name)
/// order, so the exported set is stable from poll to poll.
pub fn select(cfg: &QueuesConfig, queues: Vec<Queue>) -> (Vec<Queue>, Selection) {
    let mut selection = Selection {
        listed: queues.len() as u64,
        ..Selection::default()
    };
    let mut kept: Vec<Queue> = Vec::with_capacity(queues.len());
    let mut in_vhost = 0u64;
    for queue in queues {
        if !wanted(cfg, &queue) {
            selection.excluded += 1;
            continue;
        }
        if kept.last().is_none_or(|last| last.vhost != queue.vhost) {
            in_vhost = 0;
        }
        in_vhost += 1;
        if cfg.max_per_vhost > 0 && in_vhost > cfg.max_per_vhost {
            selection.dropped_per_vhost += 1;
            continue;
        }
        if cfg.max_total > 0 && kept.len() as u64 >= cfg.max_total {
            selection.dropped_total += 1;
            continue;
        }
        kept.push(queue);
    }
    selection.exported = kept.len() as u64;
    (kept, selection)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cfg(env: &[(&str, &str)]) -> QueuesConfig {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (format!("RABBITMQ_WATCH__QUEUES__{k}"), v.to_string()))
            .collect();
        crate::config::load(None, env, &[]).unwrap().queues
    }

    fn q(vhost: &str, name: &str) -> Queue {
        Queue {
            vhost: vhost.into(),
            name: name.into(),
            exclusive: Some(false),
            ..Queue::default()
        }
    }

    fn names(queues: &[Queue]) -> Vec<String> {
        queues
            .iter()
            .map(|q| format!("{}/{}", q.vhost, q.name))
            .collect()
    }

    #[test]
    fn defaults_drop_server_named_and_exclusive_queues() {
        let mut exclusive = q("/", "rpc-reply");
        exclusive.exclusive = Some(true);
        let (kept, s) = select(
            &cfg(&[]),
            vec![q("/", "amq.gen-AbC"), q("/", "orders"), exclusive],
        );
        assert_eq!(names(&kept), ["//orders"]);
        assert_eq!(
            s,
            Selection {
                listed: 3,
                excluded: 2,
                exported: 1,
                ..Selection::default()
            }
        );
    }

    #[test]
    fn vhost_and_name_filters_are_anchored() {
        let c = cfg(&[
            ("INCLUDE_VHOSTS", "prod-.*"),
            ("EXCLUDE_VHOSTS", "prod-legacy"),
            ("EXCLUDE", "tmp"),
        ]);
        let (kept, s) = select(
            &c,
            vec![
                q("prod-eu", "orders"),
                q("prod-eu", "tmp"),
                q("prod-eu", "tmp2"),
                q("prod-legacy", "orders"),
                q("staging", "orders"),
                q("x-prod-eu", "orders"),
            ],
        );
        assert_eq!(names(&kept), ["prod-eu/orders", "prod-eu/tmp2"]);
        assert_eq!(s.excluded, 4);
    }

    #[test]
    fn caps_count_what_they_drop() {
        let c = cfg(&[("MAX_PER_VHOST", "2"), ("MAX_TOTAL", "3")]);
        let (kept, s) = select(
            &c,
            vec![
                q("a", "1"),
                q("a", "2"),
                q("a", "3"),
                q("b", "1"),
                q("b", "2"),
                q("c", "1"),
            ],
        );
        assert_eq!(names(&kept), ["a/1", "a/2", "b/1"]);
        assert_eq!(s.dropped_per_vhost, 1);
        assert_eq!(s.dropped_total, 2);
        assert_eq!(s.exported, 3);
        assert_eq!(s.listed, 6);
    }
}
