//! Test harness shared by the integration tests, one file per harness:
//!
//! - [`rabbit`]: a throwaway RabbitMQ node (through `scripts/rabbitmq-node.sh`);
//! - [`sidecar`]: the real `rabbitmq-watch` binary as a child process (or run to completion);
//! - [`exposition`]: a parser of the `/metrics` text;
//! - [`fake_api`]: a fake management API for faults a real broker cannot produce;
//! - [`fault_proxy`]: a fault-injecting proxy in front of a real management API;
//! - [`http_receiver`]: a recording HTTP server (webhook receivers);
//! - [`smtp`]: a real SMTP server (aiosmtpd) and a parser of the emails it stored;
//! - [`alertmanager`]: a real Alertmanager;
//! - [`prometheus`]: a real Prometheus;
//! - [`amqp`]: publishing and declaring over real AMQP (lapin);
//! - [`notify`]: the `notify:` block of a test sidecar's configuration (one webhook receiver);
//! - [`misc`]: polling, free ports, temporary directories, HTTP GET, repository files.
//!
//! Every item is re-exported here, so tests write `support::Sidecar`, `support::eventually`.
//! Nothing here skips: a missing `rabbitmq-server` or `prometheus` fails the test with the
//! command that installs it.

// Each test binary uses a different part of the harness: unused items and re-exports are
// expected in every one of them.
#![allow(dead_code, unused_imports)]

pub mod alertmanager;
pub mod amqp;
pub mod exposition;
pub mod fake_api;
pub mod fault_proxy;
pub mod http_receiver;
pub mod misc;
pub mod notify;
pub mod prometheus;
pub mod rabbit;
pub mod sidecar;
pub mod smtp;

pub use alertmanager::{Alertmanager, client};
pub use amqp::{
    ack_all, amqp, bind, consume, consume_and_hold, declare, declare_fanout, declare_quorum,
    declare_with, publish, publish_with, requeue_forever, subscribe, subscribe_with_prefetch,
};
pub use exposition::{Exposition, NODE_MEMORY_AND_DISK, Sample};
pub use fake_api::{FakeApi, json_response};
pub use fault_proxy::{Fault, FaultProxy, RandomFaults};
pub use http_receiver::{HttpReceiver, Received};
pub use misc::{eventually, free_port, http_get, repo_file, temp_dir, yaml};
pub use notify::Notify;
pub use prometheus::Prometheus;
pub use rabbit::RabbitNode;
pub use sidecar::{Sidecar, output_text, run_watch, watch_exits};
pub use smtp::{Parsed, SmtpSink, parse, require_aiosmtpd};
