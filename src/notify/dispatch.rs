//! Routing, grouping, silences and inhibition.
//!
//! STUB: to be implemented.
