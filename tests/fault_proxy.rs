//! Faults injected between the sidecar and a real RabbitMQ node (shared by this binary) by a
//! fault-injecting proxy (`support::fault_proxy`): the broker's real answers, reset, cut short
//! or never given. Issue #14: a failed read of one dead-letter exchange's bindings is counted
//! (`rabbitmq_watch_dead_letter_bindings_reads_failed_total`) while the poll stays up; every
//! bindings read failing fails that endpoint only; one cut off by the poll's deadline is counted
//! as skipped; a reset, truncated or black-holed answer makes
//! `rabbitmq_up` 0 with the endpoint's reason, never a panic, and the sidecar recovers when the
//! faults stop. The long randomised version is the fault soak (`bench/soak.sh`).

mod support;

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use support::{Exposition, Fault, FaultProxy, RabbitNode, Sidecar, amqp, eventually};

const WAIT: Duration = Duration::from_secs(40);
const BINDINGS: &str = "/api/exchanges/{vhost}/{name}/bindings/source";

/// Declares the fanout exchange `dlx`, the queue `dlq` bound to it, and the queue `work` whose
/// `x-dead-letter-exchange` is `dlx`.
async fn dead_letter_pair(ch: &Channel, dlx: &str, dlq: &str, work: &str) {
    ch.exchange_declare(
        dlx.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    let declare = |queue: &str, args: FieldTable| {
        ch.queue_declare(queue.into(), QueueDeclareOptions::default(), args)
    };
    declare(dlq, FieldTable::default())
        .await
        .expect("queue.declare");
    ch.queue_bind(
        dlq.into(),
        dlx.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.into()),
    );
    declare(work, args).await.expect("queue.declare");
}

fn counter(m: &Exposition, name: &str) -> f64 {
    m.get(name, &[]).unwrap_or_else(|| panic!("{name} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bindings_read_is_counted_while_the_poll_stays_up() {
    let node = RabbitNode::shared();
    let (_conn, ch) = amqp(node, "/").await;
    dead_letter_pair(&ch, "fp-dlx-ok", "fp-dlq-ok", "fp-work-ok").await;
    dead_letter_pair(&ch, "fp-dlx-cut", "fp-dlq-cut", "fp-work-cut").await;
    let proxy = FaultProxy::start(&node.mgmt_url);
    // Every read of fp-dlx-cut's bindings is reset; fp-dlx-ok's is answered.
    proxy.add_rule("/fp-dlx-cut/bindings", Fault::Reset);
    let sidecar = Sidecar::start(&proxy.url, &[("RABBITMQ_WATCH__QUEUES__INCLUDE", "fp-.*")]);
    let m = eventually(WAIT, "two failed bindings reads counted", || {
        let m = sidecar.metrics();
        (m.get(
            "rabbitmq_watch_dead_letter_bindings_reads_failed_total",
            &[],
        )
        .unwrap_or(0.0)
            >= 2.0)
            .then_some(m)
    });
    assert!(proxy.count("reset") >= 2);
    // The poll stays up: the other exchange was read.
    assert_eq!(m.get("rabbitmq_up", &[]), Some(1.0));
    assert_eq!(
        m.get("rabbitmq_watch_endpoint_success", &[("endpoint", BINDINGS)]),
        Some(1.0)
    );
    let failed = counter(&m, "rabbitmq_watch_dead_letter_bindings_reads_failed_total");
    let reads = counter(&m, "rabbitmq_watch_dead_letter_bindings_reads_total");
    assert!(
        reads >= 2.0 * failed - 1.0,
        "one answered read beside each failed one: {reads} reads, {failed} failed"
    );
    assert_eq!(
        counter(
            &m,
            "rabbitmq_watch_dead_letter_bindings_reads_skipped_total"
        ),
        0.0
    );

    // Every bindings read failing fails the bindings endpoint (rabbitmq_up 0), still counted.
    proxy.clear_rules();
    proxy.add_rule("/bindings/source", Fault::Reset);
    let before = counter(&m, "rabbitmq_watch_dead_letter_bindings_reads_failed_total");
    let m = eventually(WAIT, "the bindings endpoint failed", || {
        let m = sidecar.metrics();
        (m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", BINDINGS), ("reason", "request")],
        )
        .unwrap_or(0.0)
            >= 1.0)
            .then_some(m)
    });
    assert!(counter(&m, "rabbitmq_watch_dead_letter_bindings_reads_failed_total") >= before + 2.0);
    assert_eq!(
        m.get("rabbitmq_watch_endpoint_success", &[("endpoint", BINDINGS)]),
        Some(0.0)
    );
    assert_eq!(m.get("rabbitmq_up", &[]), Some(0.0));
    assert_eq!(
        m.get(
            "rabbitmq_watch_endpoint_success",
            &[("endpoint", "/api/queues")]
        ),
        Some(1.0),
        "only the bindings read failed"
    );

    // Faults gone: up again.
    proxy.clear_rules();
    eventually(WAIT, "up again", || {
        (sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)).then_some(())
    });
    let logs = sidecar.terminate();
    assert!(
        logs.contains("cannot read a dead-letter exchange's bindings")
            && logs.contains("fp-dlx-cut"),
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A bindings read still unanswered when the poll's deadline (`poll.deadline`, 1.5 s here,
/// shorter than the 2 s request timeout) ends the poll is counted as skipped, and the bindings
/// endpoint fails as a timeout; the next polls go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bindings_read_cut_off_by_the_poll_deadline_is_counted_as_skipped() {
    let node = RabbitNode::shared();
    let (_conn, ch) = amqp(node, "/").await;
    dead_letter_pair(&ch, "fq-dlx-slow", "fq-dlq-slow", "fq-work-slow").await;
    let proxy = FaultProxy::start(&node.mgmt_url);
    proxy.add_rule("/fq-dlx-slow/bindings", Fault::BlackHole);
    let sidecar = Sidecar::start(
        &proxy.url,
        &[
            ("RABBITMQ_WATCH__QUEUES__INCLUDE", "fq-.*"),
            ("RABBITMQ_WATCH__POLL__DEADLINE", "1500ms"),
        ],
    );
    let m = eventually(WAIT, "a bindings read skipped at the deadline", || {
        let m = sidecar.metrics();
        (m.get(
            "rabbitmq_watch_dead_letter_bindings_reads_skipped_total",
            &[],
        )
        .unwrap_or(0.0)
            >= 1.0)
            .then_some(m)
    });
    assert!(
        m.get(
            "rabbitmq_watch_endpoint_failures_total",
            &[("endpoint", BINDINGS), ("reason", "timeout")],
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        counter(&m, "rabbitmq_watch_dead_letter_bindings_reads_failed_total"),
        0.0,
        "cut off, not failed"
    );
    let polls = counter(&m, "rabbitmq_watch_polls_total");
    eventually(WAIT, "polling goes on", || {
        (counter(&sidecar.metrics(), "rabbitmq_watch_polls_total") > polls).then_some(())
    });
    let logs = sidecar.terminate();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// The broker's own answer to `/api/overview`, reset, cut in the middle of its body, never
/// given: each makes `rabbitmq_up` 0 with the endpoint's reason while the sidecar keeps serving;
/// once the faults stop the next poll is up.
#[test]
fn reset_truncated_and_black_holed_answers_make_up_0_without_a_panic() {
    let node = RabbitNode::shared();
    let proxy = FaultProxy::start(&node.mgmt_url);
    let sidecar = Sidecar::start(&proxy.url, &[]);
    eventually(WAIT, "up through the proxy", || {
        (sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)).then_some(())
    });
    // A truncated body: reqwest reports the missing bytes the Content-Length promised (or the
    // JSON decoder the cut document, without one).
    for (fault, reasons) in [
        (Fault::Reset, &["request", "connect"][..]),
        (Fault::Truncate, &["request", "decode"][..]),
        (Fault::BlackHole, &["timeout"][..]),
    ] {
        proxy.clear_rules();
        proxy.add_rule("/api/overview", fault);
        let failures = |m: &Exposition| -> f64 {
            reasons
                .iter()
                .map(|r| {
                    m.get(
                        "rabbitmq_watch_endpoint_failures_total",
                        &[("endpoint", "/api/overview"), ("reason", r)],
                    )
                    .unwrap_or(0.0)
                })
                .sum()
        };
        let before = failures(&sidecar.metrics());
        let m = eventually(WAIT, fault.kind(), || {
            let m = sidecar.metrics();
            (failures(&m) > before && m.get("rabbitmq_up", &[]) == Some(0.0)).then_some(m)
        });
        assert_eq!(
            m.get(
                "rabbitmq_watch_endpoint_success",
                &[("endpoint", "/api/nodes")]
            ),
            Some(1.0),
            "{fault:?}: only the overview read failed"
        );
        assert_eq!(sidecar.get("/-/healthy").0, 200, "{fault:?}");
        assert!(proxy.count(fault.kind()) >= 1, "{fault:?}");
    }
    proxy.clear_rules();
    eventually(WAIT, "up again", || {
        (sidecar.metrics().get("rabbitmq_up", &[]) == Some(1.0)).then_some(())
    });
    let logs = sidecar.terminate();
    assert!(!logs.contains("panicked"), "{logs}");
}
