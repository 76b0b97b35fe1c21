//! baton: a SIP REFER blind-transfer engine.
//!
//! `sip`, `txn`, `dialog`, `app`, `call`, `engine` and what they share (`settings`,
//! `output`, `stats`, `tokens`, `timer`, `admission`) form a sans-IO core (no sockets,
//! threads or clocks); `shard` and `hooks` drive it with real I/O (docs/architecture.md).

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
pub mod output;
pub mod server;
pub mod settings;
pub mod shard;
pub mod sip;
pub mod stats;
pub mod timer;
pub mod tokens;
pub mod txn;
