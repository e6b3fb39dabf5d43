//! Webhook integration: POST of the [`super::Message`] as JSON.
//!
//! STUB: to be implemented.
