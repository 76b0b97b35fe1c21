//! baton: a SIP REFER blind-transfer engine.
//!
//! `sip`, `txn`, `dialog`, `app` and `call` form a sans-IO core (no sockets, threads or
//! clocks); `shard` and `hooks` drive it with real I/O.

pub mod app;
pub mod sip;
