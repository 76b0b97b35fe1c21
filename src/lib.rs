//! baton: a SIP REFER blind-transfer engine.
//!
//! `sip`, `txn`, `dialog`, `app`, `call` and `engine` form a sans-IO core (no sockets,
//! threads or clocks); `shard` and `hooks` drive it with real I/O.

pub mod admission;
pub mod api;
pub mod app;
pub mod call;
pub mod config;
pub mod dialog;
pub mod engine;
pub mod hooks;
pub mod io;
pub mod load;
pub mod server;
pub mod shard;
pub mod sip;
pub mod timer;
pub mod tokens;
pub mod txn;
