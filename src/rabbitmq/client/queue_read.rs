//! The queue listing: one streamed, unpaged `/api/queues` read, or one per vhost
//! (`rabbitmq.queue_read`), under one byte bound for the whole listing.

use std::sync::atomic::Ordering;

use reqwest::Url;

use super::Client;
use crate::config::{QueueRead, QueuesConfig};
use crate::rabbitmq::model::{QUEUE_COLUMNS, QUEUE_SETTINGS_COLUMNS, Queue, Vhost};
use crate::rabbitmq::{Body, Endpoint, Error};

impl Client {
    /// Reads every queue with unpaged listing reads with only the columns in
    /// [`QUEUE_COLUMNS`] and `sort=` (empty: the broker skips sorting), decoding each body as
    /// it arrives and handing each queue to `on_queue` in the broker's order (unsorted):
    /// nothing but the element being decoded is held here, so memory follows what `on_queue`
    /// keeps, not the body.
    ///
    /// Which reads (`rabbitmq.queue_read`, [`QueueRead`]):
    /// - `per_vhost` (default): `GET /api/vhosts?columns=name`, then, one after the other,
    ///   `GET /api/queues/{vhost}` for each vhost the queue filters keep. Each answer covers
    ///   one vhost, so the broker starts sending sooner (at ~100,000 queues a single answer
    ///   took longer to start than the broker's own 60 s `management.tcp.idle_timeout`; at
    ///   30,000, 15–56 s against 2–5 s for the slowest vhost); the broker's CPU for the split
    ///   read was measured equal at 10,000 queues and within the noise at 30,000
    ///   (bench/ANALYSIS.md, "Queue listing: whole or per vhost").
    /// - `whole`: ONE `GET /api/queues`, unless `queues.include_vhosts` /
    ///   `queues.exclude_vhosts` filter vhosts, which are then read per vhost as above.
    ///
    /// When `detailed` (RabbitMQ 3.13+, whose `/api/queues` is reduced) ONE
    /// `/api/queues/detailed` read whatever `rabbitmq.queue_read` says: that listing has no
    /// per-vhost form (`/api/queues/detailed/{vhost}` answers 404 on 4.0.5), and the vhost
    /// filters are then applied by the caller's selection only.
    /// Why unpaged: the API filters and sorts the whole list for every page, and a page holds
    /// at most 500 queues, so a paged listing costs the broker O(N²/500). The caller applies
    /// the exact filters and caps ([`crate::selection`]); a `queues.include` other than `.*`
    /// is not sent to the broker (its name filter only applies to paged reads).
    ///
    /// Returns the body bytes received, over every read.
    ///
    /// # Errors
    /// [`Error`] for [`Endpoint::Queues`] when any one read fails (the vhost listing or one
    /// vhost's queues: the whole listing is then unknown, never partial), when the bodies
    /// together exceed `rabbitmq.max_response_bytes`, or when a body is not a complete JSON
    /// array of queues. A vhost deleted between the listing and its read (HTTP 404) has no
    /// queues. `on_queue` may have been called for some queues before the error.
    ///
    /// With `settings_only` (the prometheus source reads the figures elsewhere) the broker is
    /// asked for no statistics (`disable_stats=true`) and only the settings columns
    /// ([`QUEUE_SETTINGS_COLUMNS`]); the figure fields are then `None`.
    pub async fn queues(
        &self,
        filter: &QueuesConfig,
        detailed: bool,
        settings_only: bool,
        mut on_queue: impl FnMut(Queue),
    ) -> Result<u64, Error> {
        let endpoint = Endpoint::Queues;
        let mut bytes = 0;
        let vhost_filter = !filter.include_vhosts.is_match_all() || filter.exclude_vhosts.is_some();
        // RabbitMQ 3.13+ lists its statistics under `/api/queues/detailed`, which has no
        // per-vhost form (`/api/queues/detailed/{vhost}` is 404 on 4.0.5): one read there, and
        // the vhost filters are applied as the queues are selected.
        let whole =
            (detailed && !settings_only) || (self.queue_read == QueueRead::Whole && !vhost_filter);
        let vhosts: Vec<Option<String>> = if whole {
            vec![None]
        } else {
            let listed: Body<Vec<Vhost>> = self
                .get_json(
                    endpoint,
                    self.url(&["api", "vhosts"], endpoint)?,
                    &[("columns", "name".to_owned())],
                    &[],
                )
                .await?;
            bytes += listed.bytes;
            listed
                .value
                .into_iter()
                .map(|v| v.name)
                .filter(|name| {
                    filter.include_vhosts.is_match(name)
                        && !filter
                            .exclude_vhosts
                            .as_ref()
                            .is_some_and(|r| r.is_match(name))
                })
                .map(Some)
                .collect()
        };
        for vhost in &vhosts {
            let mut segments = vec!["api", "queues"];
            match vhost {
                Some(v) => segments.push(v),
                None if detailed && !settings_only => segments.push("detailed"),
                None => {}
            }
            let url = self.url(&segments, endpoint)?;
            let mut index = 0u64;
            let mut decode = |element: &[u8]| {
                let queue =
                    serde_json::from_slice::<Queue>(element).map_err(|e| Error::Decode {
                        endpoint,
                        detail: format!("queue {index}: {e}"),
                    })?;
                index += 1;
                on_queue(queue);
                Ok(())
            };
            match self
                .get_queue_listing(endpoint, url, settings_only, bytes, &mut decode)
                .await
            {
                Ok(read) => bytes += read,
                // The vhost was deleted since it was listed.
                Err(Error::Status { status: 404, .. }) if vhost.is_some() => {}
                Err(e) => {
                    if let Some(v) = vhost {
                        tracing::debug!(vhost = %v, error = %e, "one vhost's queue listing failed");
                    }
                    return Err(e);
                }
            }
        }
        Ok(bytes)
    }

    /// One unpaged listing read with `columns=` and `sort=`, streamed into `on_element`;
    /// `prior` bytes of the same listing were read before (they count towards
    /// `rabbitmq.max_response_bytes`).
    /// RabbitMQ 3.13.0 answers `sort=` (empty) with HTTP 500; on a 500 the read is made again
    /// without `sort=` (the broker then sorts by name, which costs it more) and later reads
    /// leave it out.
    async fn get_queue_listing(
        &self,
        endpoint: Endpoint,
        url: Url,
        settings_only: bool,
        prior: u64,
        on_element: &mut impl FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let mut base = vec![("columns", QUEUE_COLUMNS.to_owned())];
        if settings_only {
            base = vec![
                ("columns", QUEUE_SETTINGS_COLUMNS.to_owned()),
                ("disable_stats", "true".to_owned()),
            ];
        }
        if !self.sort_rejected.load(Ordering::Relaxed) {
            let mut query = base.clone();
            query.push(("sort", String::new()));
            match self
                .get_stream(endpoint, url.clone(), &query, prior, on_element)
                .await
            {
                Err(Error::Status { status: 500, .. }) => {
                    tracing::info!(
                        endpoint = endpoint.path(),
                        "the broker rejected `sort=` (RabbitMQ 3.13.0): listing sorted from now on"
                    );
                    self.sort_rejected.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.get_stream(endpoint, url, &base, prior, on_element)
            .await
    }
}
