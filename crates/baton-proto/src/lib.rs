//! baton's SIP REFER blind-transfer engine, sans-IO.
//!
//! An [`Engine`] is one shard's worth of calls. It is driven, as quinn-proto and str0m are,
//! through a few doors and never reads a clock or touches a socket:
//!
//! - in: [`Engine::handle_receive`] (a SIP message from a [`Flow`]),
//!   [`Engine::handle_timeout`] and [`Engine::handle_hook_reply`], each with `now`;
//! - out: [`Engine::poll_output`] ([`Output::Transmit`], [`Output::Hook`], ...) and
//!   [`Engine::poll_timeout`], the next instant it wants to be woken.
//!
//! Datagram transports hand over one datagram per message; stream transports frame their
//! bytes first with [`sip::frame`]. The embedding example (`examples/udp_loop.rs`) is a
//! whole transfer engine over a `std::net::UdpSocket` in under a hundred lines.
//!
//! The crate's layers, and why each dependency is here: `docs/architecture.md` in the
//! repository. What each dialect's verb does on the wire and in its hooks:
//! `docs/behaviour.md`.

// `forbid` cannot be lifted for one module: `deny` is, for the vector scan in `sip` only.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod admission;
mod app;
mod call;
mod dialog;
mod engine;
mod event;
mod hook;
mod output;
mod profile;
mod settings;
pub mod sip;
mod stats;
mod summary;
mod timer;
mod tokens;
mod transport;
mod txn;

pub use admission::{Cidr, EdgeLimits, Refusal};
pub use app::swml::run::VarLimits;
pub use app::{
    header_problem, parse_document, parse_document_within, Application, BasicAuth, ByeAfter, DocError, DocRules, Hook,
    HttpMethod, Media,
};
pub use engine::{Admission, Engine};
pub use event::Event;
pub use hook::{read_answer, Answer, Expect, HookJob, HookOutcome, HookReply, Payload, ReplyTo};
pub use output::{Output, Transmit};
pub use profile::{refer_to, Plus, ReferScheme, ReferredBy, TrunkProfile};
pub use settings::Settings;
pub use sip::Direction;
pub use stats::{Latency, Stats, TransferOutcome};
pub use summary::{CallSummary, CallUpdate, UpdateError};
pub use timer::Wheel;
pub use tokens::{parse_branch, tag_shard, Seed};
pub use transport::{ConnId, Flow, Transport};
pub use txn::Timers;
