//! The sidecar's own health: `rabbitmq_up`, per-endpoint success, duration and failures,
//! poll counters and timestamps, build info.

use std::fmt;
use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{Family, SidecarInfo, flag};
use crate::audit::Report;
use crate::rabbitmq::{Endpoint, Error};
use crate::snapshot::{PollTotals, Snapshot};

/// `rabbitmq_up`: 1 when the last poll read every endpoint, else 0 (also before the first poll).
pub const UP: Family = Family {
    name: "rabbitmq_up",
    help: "1 when the last poll of the management API read every endpoint successfully, else 0 (also before the first poll).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_endpoint_success{endpoint}`: 1 when the endpoint's last read succeeded.
pub const ENDPOINT_SUCCESS: Family = Family {
    name: "rabbitmq_watch_endpoint_success",
    help: "1 when the last poll read this endpoint (management API or rabbitmq_prometheus) successfully, else 0.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_endpoint_duration_seconds{endpoint}`: wall time of the endpoint's last read.
pub const ENDPOINT_DURATION: Family = Family {
    name: "rabbitmq_watch_endpoint_duration",
    help: "Wall time of the last read of this endpoint (all pages; all members for rabbitmq_prometheus), failed reads included.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_watch_endpoint_response_bytes{endpoint}`: body bytes of the endpoint's last read.
pub const ENDPOINT_BYTES: Family = Family {
    name: "rabbitmq_watch_endpoint_response",
    help: "Response body bytes received by the last read of this endpoint (all pages; all members for rabbitmq_prometheus); 0 when it failed.",
    unit: Some(Unit::Bytes),
    source: "sidecar",
};

/// `rabbitmq_watch_endpoint_failures_total{endpoint,reason}`: failed reads since start.
pub const ENDPOINT_FAILURES: Family = Family {
    name: "rabbitmq_watch_endpoint_failures",
    help: "Failed reads of this endpoint since the sidecar started, by reason: timeout, connect, status (unexpected HTTP status), decode (unexpected, malformed, truncated or oversized body, duplicate samples), request (other transport error).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_polls_total`: polls completed since start.
pub const POLLS: Family = Family {
    name: "rabbitmq_watch_polls",
    help: "Polls of the management API completed since the sidecar started, failed ones included.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_poll_duration_seconds`: wall time of the last poll.
pub const POLL_DURATION: Family = Family {
    name: "rabbitmq_watch_poll_duration",
    help: "Wall time of the last poll (endpoints are read concurrently).",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_watch_poll_interval_seconds`: the configured `poll.interval`.
pub const POLL_INTERVAL: Family = Family {
    name: "rabbitmq_watch_poll_interval",
    help: "Configured time between two polls (poll.interval): how old the values can be.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_watch_last_poll_timestamp_seconds`: end of the last poll (0 before the first).
pub const LAST_POLL: Family = Family {
    name: "rabbitmq_watch_last_poll_timestamp",
    help: "Unix time at which the last poll ended, successful or not; 0 before the first poll.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_watch_last_successful_poll_timestamp_seconds`: end of the last fully successful
/// poll (0 if none yet).
pub const LAST_SUCCESS: Family = Family {
    name: "rabbitmq_watch_last_successful_poll_timestamp",
    help: "Unix time at which the last poll that read every endpoint successfully ended; 0 if none has yet.",
    unit: Some(Unit::Seconds),
    source: "sidecar",
};

/// `rabbitmq_watch_queues_listed`: queues the API returned.
pub const QUEUES_LISTED: Family = Family {
    name: "rabbitmq_watch_queues_listed",
    help: "Queues the management API returned in the last poll, after any server-side filtering (queues.include, vhost filters).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_queues_excluded`: queues removed by the `queues.*` filters.
pub const QUEUES_EXCLUDED: Family = Family {
    name: "rabbitmq_watch_queues_excluded",
    help: "Queues of the last listing removed by the queues.* filters (names, vhosts, exclusive queues).",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_queues_dropped{limit}`: queues dropped by a cap.
pub const QUEUES_DROPPED: Family = Family {
    name: "rabbitmq_watch_queues_dropped",
    help: "Queues of the last poll not exported because a cap was hit (limit: max_total or max_per_vhost); above 0 some queues have no series.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_queues_exported`: queues with series.
pub const QUEUES_EXPORTED: Family = Family {
    name: "rabbitmq_watch_queues_exported",
    help: "Queues exported with per-queue series in the last poll.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_source_info{source}`: where the last poll read queue and node figures.
pub const SOURCE_INFO: Family = Family {
    name: "rabbitmq_watch_source",
    help: "Where the last poll read queue and node figures from: management (the management API's statistics) or prometheus (every member's rabbitmq_prometheus, with the management API's queue and node listings); see rabbitmq.source.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_build_info{version}`: the sidecar's version.
pub const BUILD_INFO: Family = Family {
    name: "rabbitmq_watch_build",
    help: "Version of the rabbitmq-watch sidecar serving these metrics.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_dead_letter_bindings_reads_total`: reads of one dead-letter exchange's
/// bindings since start, failed ones included.
pub const DEAD_LETTER_READS: Family = Family {
    name: "rabbitmq_watch_dead_letter_bindings_reads",
    help: "Reads of a dead-letter exchange's bindings (GET /api/exchanges/{vhost}/{name}/bindings/source, one per exchange that queues name and that exists) since the sidecar started, failed ones included.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_dead_letter_bindings_reads_failed_total`: failed ones of
/// [`DEAD_LETTER_READS`].
pub const DEAD_LETTER_READS_FAILED: Family = Family {
    name: "rabbitmq_watch_dead_letter_bindings_reads_failed",
    help: "Reads of a dead-letter exchange's bindings that failed since the sidecar started (the queues bound to it were not marked as dead-letter queues in that poll; the poll stays up unless every read failed). The exchange is named in a warning log.",
    unit: None,
    source: "sidecar",
};

/// `rabbitmq_watch_dead_letter_bindings_reads_skipped_total`: existing dead-letter exchanges
/// not read.
pub const DEAD_LETTER_READS_SKIPPED: Family = Family {
    name: "rabbitmq_watch_dead_letter_bindings_reads_skipped",
    help: "Existing dead-letter exchanges whose bindings were not read since the sidecar started: over the cap of 1000 per poll, or still unread at the poll's deadline.",
    unit: None,
    source: "sidecar",
};

fn unix_seconds(t: Option<SystemTime>) -> f64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Writes the sidecar's families for `snapshot` (`None` before the first poll) and, when the
/// audit runs (`info.audit`), its reads of its latest `audit` report.
pub fn encode(
    enc: &mut DescriptorEncoder,
    snapshot: Option<&Snapshot>,
    audit: Option<&Report>,
    info: &SidecarInfo,
) -> fmt::Result {
    let audit_endpoints: &[Endpoint] = if info.audit.is_some() {
        &Endpoint::AUDIT
    } else {
        &[]
    };
    let audit_reads = || audit.map(|r| r.reads.as_slice()).unwrap_or_default().iter();
    BUILD_INFO.info(enc, [[("version", env!("CARGO_PKG_VERSION"))]])?;
    UP.gauge_value(enc, Some(flag(snapshot.is_some_and(Snapshot::is_up))))?;
    POLL_INTERVAL.gauge_value(enc, Some(info.poll_interval.as_secs_f64()))?;
    POLLS.counter_value(enc, snapshot.map_or(0, |s| s.totals.polls))?;
    LAST_POLL.gauge_value(enc, Some(unix_seconds(snapshot.map(Snapshot::finished_at))))?;
    LAST_SUCCESS.gauge_value(
        enc,
        Some(unix_seconds(snapshot.and_then(|s| s.totals.last_success))),
    )?;
    let no_polls = PollTotals::default();
    let totals = snapshot.map_or(&no_polls, |s| &s.totals);
    // Every (endpoint, reason) pair, at 0 until it happens: "absent" means "gone".
    ENDPOINT_FAILURES.counter(
        enc,
        Endpoint::ALL
            .iter()
            .flat_map(|e| {
                Error::REASONS.iter().map(move |r| {
                    (
                        [("endpoint", e.path()), ("reason", *r)],
                        totals.failures_of(*e, r),
                    )
                })
            })
            .chain(audit_endpoints.iter().flat_map(|e| {
                Error::REASONS.iter().map(move |r| {
                    (
                        [("endpoint", e.path()), ("reason", *r)],
                        audit.map_or(0, |a| a.failures_of(*e, r)),
                    )
                })
            })),
    )?;
    let dl = &totals.dead_letter_reads;
    DEAD_LETTER_READS.counter_value(enc, dl.ok.saturating_add(dl.failed))?;
    DEAD_LETTER_READS_FAILED.counter_value(enc, dl.failed)?;
    DEAD_LETTER_READS_SKIPPED.counter_value(enc, dl.skipped)?;
    let Some(s) = snapshot else {
        return Ok(());
    };
    POLL_DURATION.gauge_value(enc, Some(s.duration.as_secs_f64()))?;
    SOURCE_INFO.info(enc, [[("source", s.source.label())]])?;
    ENDPOINT_SUCCESS.gauge(
        enc,
        Endpoint::ALL
            .iter()
            .map(|e| ([("endpoint", e.path())], flag(s.error(*e).is_none())))
            .chain(
                audit_reads().map(|r| ([("endpoint", r.endpoint.path())], flag(r.error.is_none()))),
            ),
    )?;
    ENDPOINT_DURATION.gauge(
        enc,
        Endpoint::ALL
            .iter()
            .map(|e| ([("endpoint", e.path())], s.duration_of(*e).as_secs_f64()))
            .chain(
                audit_reads()
                    .map(|r| ([("endpoint", r.endpoint.path())], r.duration.as_secs_f64())),
            ),
    )?;
    if s.queues.ok().is_some() {
        let q = &s.selection;
        QUEUES_LISTED.gauge_value(enc, Some(q.listed))?;
        QUEUES_EXCLUDED.gauge_value(enc, Some(q.excluded))?;
        QUEUES_DROPPED.gauge(
            enc,
            [
                ([("limit", "max_total")], q.dropped_total),
                ([("limit", "max_per_vhost")], q.dropped_per_vhost),
            ],
        )?;
        QUEUES_EXPORTED.gauge_value(enc, Some(q.exported))?;
    }
    ENDPOINT_BYTES.gauge(
        enc,
        Endpoint::ALL
            .iter()
            .map(|e| ([("endpoint", e.path())], s.bytes_of(*e)))
            .chain(audit_reads().map(|r| ([("endpoint", r.endpoint.path())], r.bytes))),
    )?;
    Ok(())
}
