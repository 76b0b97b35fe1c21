//! Webhooks: the jobs the core emits and the workers that deliver them over HTTP.

pub mod batch;
pub mod counters;
pub mod dead_letter;
pub mod policy;
pub mod quiet;
pub mod sign;
pub mod worker;
