//! The depth history each [`super::Report`] copies for the status page's sparklines, compact
//! and lossless: the sample times are shared by every queue of a report whose window holds the
//! same times (every window gets a sample at each poll, so in steady state one list serves all
//! queues), and each queue keeps only its `messages_ready` values, as `u32` when every one of
//! them fits (else as `u64`). At 10,000 queues with 22 samples this is about 1 MB a report
//! instead of 3.5 MB as `(at, ready)` pairs (issue #13: two or three reports are alive at
//! once).

use std::sync::Arc;

/// A queue's depth over its window, oldest first: `(at, messages_ready)` of each sample held,
/// `at` in seconds since the Unix epoch. Read with [`Depth::points`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Depth {
    /// The sample times, shared with the other queues of the same report that hold the same.
    at: Arc<[f64]>,
    /// `messages_ready` of each sample, as many as `at`.
    ready: Ready,
}

/// The `messages_ready` values of a [`Depth`].
#[derive(Debug, Clone, PartialEq)]
enum Ready {
    /// Every value fits in 32 bits (the usual case).
    Narrow(Box<[u32]>),
    /// Some value does not.
    Wide(Box<[u64]>),
}

impl Default for Ready {
    fn default() -> Self {
        Ready::Narrow(Box::default())
    }
}

impl Ready {
    /// Value `i`.
    fn get(&self, i: usize) -> u64 {
        match self {
            Ready::Narrow(v) => u64::from(v[i]),
            Ready::Wide(v) => v[i],
        }
    }

    /// Number of values.
    fn len(&self) -> usize {
        match self {
            Ready::Narrow(v) => v.len(),
            Ready::Wide(v) => v.len(),
        }
    }
}

impl Depth {
    /// The samples as `(at, messages_ready)`, oldest first.
    pub fn points(&self) -> Vec<(f64, u64)> {
        self.at
            .iter()
            .enumerate()
            .map(|(i, &at)| (at, self.ready.get(i)))
            .collect()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.ready.len() == 0
    }
}

/// Builds the [`Depth`]s of one report, sharing a time list with the previous queue's when
/// the two are equal (bit for bit).
#[derive(Debug, Default)]
pub(super) struct Depths {
    /// The time list of the last depth built.
    last: Option<Arc<[f64]>>,
    /// Scratch for the times being read.
    times: Vec<f64>,
    /// Scratch for the values being read.
    values: Vec<u64>,
}

impl Depths {
    /// The depth of `samples` (`(at, messages_ready)`, oldest first).
    pub(super) fn depth(&mut self, samples: impl Iterator<Item = (f64, u64)>) -> Depth {
        self.times.clear();
        self.values.clear();
        for (at, ready) in samples {
            self.times.push(at);
            self.values.push(ready);
        }
        let narrow: Option<Box<[u32]>> =
            self.values.iter().map(|&v| u32::try_from(v).ok()).collect();
        let ready = match narrow {
            Some(narrow) => Ready::Narrow(narrow),
            None => Ready::Wide(self.values.as_slice().into()),
        };
        let same = |last: &Arc<[f64]>| {
            last.len() == self.times.len()
                && last
                    .iter()
                    .zip(&self.times)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
        };
        let at = match &self.last {
            Some(last) if same(last) => Arc::clone(last),
            _ => {
                let at: Arc<[f64]> = Arc::from(&self.times[..]);
                self.last = Some(Arc::clone(&at));
                at
            }
        };
        Depth { at, ready }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_the_samples_and_shares_equal_times() {
        let mut depths = Depths::default();
        let a = depths.depth([(10.0, 1), (40.0, 5)].into_iter());
        let b = depths.depth([(10.0, 7), (40.0, 0)].into_iter());
        let c = depths.depth([(40.0, 3)].into_iter());
        let d = depths.depth([(40.0, 9)].into_iter());
        assert_eq!(a.points(), [(10.0, 1), (40.0, 5)]);
        assert_eq!(b.points(), [(10.0, 7), (40.0, 0)]);
        assert_eq!(c.points(), [(40.0, 3)]);
        assert_eq!(d.points(), [(40.0, 9)]);
        assert!(Arc::ptr_eq(&a.at, &b.at), "equal times are one list");
        assert!(!Arc::ptr_eq(&b.at, &c.at));
        assert!(Arc::ptr_eq(&c.at, &d.at));
        assert_eq!((a.len(), c.len()), (2, 1));
        let empty = depths.depth(std::iter::empty());
        assert!(empty.is_empty() && empty.points().is_empty());
        assert_eq!(empty, Depth::default());
    }

    #[test]
    fn values_beyond_32_bits_are_kept_whole() {
        let mut depths = Depths::default();
        let big = u64::from(u32::MAX) + 1;
        let wide = depths.depth([(1.0, 3), (2.0, big), (3.0, u64::MAX)].into_iter());
        assert_eq!(wide.points(), [(1.0, 3), (2.0, big), (3.0, u64::MAX)]);
        assert!(matches!(wide.ready, Ready::Wide(_)));
        let narrow = depths.depth([(1.0, 3), (2.0, u64::from(u32::MAX))].into_iter());
        assert_eq!(narrow.points(), [(1.0, 3), (2.0, u64::from(u32::MAX))]);
        assert!(matches!(narrow.ready, Ready::Narrow(_)));
    }
}
