//! baton: a SIP REFER blind-transfer engine.
//!
//! The sans-IO core (parsing, transactions, calls, applications) is the `baton-proto`
//! crate; this one drives it with real I/O: `io` (sockets, io_uring, epoll), `shard` (one
//! reactor per core), `stream` (TCP and TLS connections), `hooks` (webhook delivery), `api` (the operator endpoint), `config`,
//! `server`, and the load generator in `load` (docs/architecture.md).

pub mod api;
pub mod config;
pub mod hooks;
pub mod io;
pub mod load;
pub mod server;
pub mod shard;
pub mod stream;
