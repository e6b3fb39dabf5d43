//! Alertmanager integration: the sidecar's firing (and just-resolved) alerts are POSTed to
//! every configured Alertmanager's `/api/v2/alerts`, and re-sent while they fire, as Prometheus
//! does, so an Alertmanager cluster can dedup, route, silence and inhibit them at scale.
//!
//! STUB: to be implemented (see the helper task).
