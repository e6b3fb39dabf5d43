//! Which queues are exported: the `queues.*` filters applied to a listing, then the caps.
//! What was left out, and why, is counted in [`Selection`] and exported, so that a cap is
//! never a silent disappearance.

use std::collections::{BTreeMap, HashMap};

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
    let mut vhost: Option<String> = None;
    for queue in queues {
        if !wanted(cfg, &queue) {
            selection.excluded += 1;
            continue;
        }
        if vhost.as_deref() != Some(queue.vhost.as_str()) {
            vhost = Some(queue.vhost.clone());
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

/// [`select`] for queues seen one at a time in any order (a streamed, unsorted listing):
/// keeps only the queues that can still be exported, so memory follows the caps, not the
/// listing. [`Selector::finish`] gives exactly what [`select`] gives for the same queues
/// sorted by (vhost, name).
#[derive(Debug)]
pub struct Selector<'a> {
    /// The filters and caps.
    cfg: &'a QueuesConfig,
    /// The queues that can still be exported: vhost → name → queue. Boxed: a B-tree shifts
    /// its values on every insert, and a `Queue` is ~400 bytes (at 10,000 queues those moves
    /// were 7 % of the sidecar's CPU per poll, issue #13).
    kept: BTreeMap<String, BTreeMap<String, Box<Queue>>>,
    /// Queues in `kept`.
    kept_count: u64,
    /// Wanted queues seen per vhost (for the per-vhost drop count).
    wanted_per_vhost: HashMap<String, u64>,
    /// The counts so far (`dropped_*` and `exported` are set by [`Selector::finish`]).
    selection: Selection,
}

impl<'a> Selector<'a> {
    /// An empty selection under `cfg`.
    pub fn new(cfg: &'a QueuesConfig) -> Self {
        Self {
            cfg,
            kept: BTreeMap::new(),
            kept_count: 0,
            wanted_per_vhost: HashMap::new(),
            selection: Selection::default(),
        }
    }

    /// Takes one listed queue: counted, and kept only while it can still be exported. A queue
    /// listed twice (same vhost and name) while kept counts once; the later answer wins
    /// (an unpaged listing names each queue once).
    pub fn push(&mut self, queue: Queue) {
        if !wanted(self.cfg, &queue) {
            self.selection.listed += 1;
            self.selection.excluded += 1;
            return;
        }
        // The vhost's name is copied only for its first queue.
        if !self.kept.contains_key(&queue.vhost) {
            self.kept.insert(queue.vhost.clone(), BTreeMap::new());
        }
        let Some(names) = self.kept.get_mut(&queue.vhost) else {
            return;
        };
        if let Some(old) = names.get_mut(&queue.name) {
            **old = queue;
            return;
        }
        self.selection.listed += 1;
        match self.wanted_per_vhost.get_mut(&queue.vhost) {
            Some(count) => *count += 1,
            None => {
                self.wanted_per_vhost.insert(queue.vhost.clone(), 1);
            }
        }
        names.insert(queue.name.clone(), Box::new(queue));
        self.kept_count += 1;
        let cap = self.cfg.max_per_vhost;
        if cap > 0 && names.len() as u64 > cap {
            names.pop_last();
            self.kept_count -= 1;
        }
        let cap = self.cfg.max_total;
        if cap > 0 && self.kept_count > cap {
            if let Some(mut last) = self.kept.last_entry() {
                last.get_mut().pop_last();
                if last.get().is_empty() {
                    last.remove();
                }
            }
            self.kept_count -= 1;
        }
    }

    /// The exported queues, sorted by (vhost, name), and how they were selected.
    pub fn finish(self) -> (Vec<Queue>, Selection) {
        let mut selection = self.selection;
        let per_vhost_cap = self.cfg.max_per_vhost;
        let mut after_vhost_cap = 0;
        for wanted in self.wanted_per_vhost.values() {
            if per_vhost_cap > 0 && *wanted > per_vhost_cap {
                selection.dropped_per_vhost += wanted - per_vhost_cap;
                after_vhost_cap += per_vhost_cap;
            } else {
                after_vhost_cap += wanted;
            }
        }
        // Sized exactly: collecting the flattened maps grew the vector by doubling, to 16,384
        // slots (6.7 MB) for 10,000 queues, kept for as long as the snapshot (#13).
        let mut kept: Vec<Queue> = Vec::with_capacity(self.kept.values().map(BTreeMap::len).sum());
        kept.extend(
            self.kept
                .into_values()
                .flat_map(BTreeMap::into_values)
                .map(|queue| *queue),
        );
        selection.exported = kept.len() as u64;
        selection.dropped_total = after_vhost_cap - selection.exported;
        (kept, selection)
    }
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

    proptest::proptest! {
        /// The streaming selector keeps and counts exactly what `select` does on the sorted
        /// listing, for any order and any caps.
        #[test]
        fn selector_equals_select_on_the_sorted_listing(
            queues in proptest::collection::btree_set((0u8..4, 0u16..40), 0..120),
            order in proptest::collection::vec(proptest::prelude::any::<u32>(), 120),
            per_vhost in 0u64..12,
            total in 0u64..60,
        ) {
            let c = cfg(&[("MAX_PER_VHOST", &per_vhost.to_string()), ("MAX_TOTAL", &total.to_string()), ("EXCLUDE", ".*7")]);
            let sorted: Vec<Queue> = queues
                .iter()
                .map(|(v, n)| q(&format!("v{v}"), &format!("q{n:03}")))
                .collect();
            let mut shuffled: Vec<(u32, Queue)> = sorted
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, q)| (order[i], q))
                .collect();
            shuffled.sort_by_key(|(k, _)| *k);
            let mut selector = Selector::new(&c);
            for (_, queue) in shuffled {
                selector.push(queue);
            }
            let streamed = selector.finish();
            let expected = select(&c, sorted);
            proptest::prop_assert_eq!(names(&streamed.0), names(&expected.0));
            proptest::prop_assert_eq!(streamed.1, expected.1);
        }
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
