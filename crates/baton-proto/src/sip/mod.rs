//! Sans-IO SIP: parsing, writing and the small grammars baton needs. No sockets, no clocks.
//!
//! Exposed for embeddings and tools that read or write SIP the way the engine does: the
//! zero-copy parser ([`parse`]), the stream framer ([`frame`]), and the [`Writer`] that
//! refuses any value that would change a message's structure.

pub(crate) mod digest;
pub(crate) mod error;
mod frame;
pub(crate) mod header;
mod method;
pub(crate) mod parse;
#[allow(unsafe_code)] // the vector scan: SSE2 loads, each with its SAFETY comment
pub(crate) mod scan;
pub(crate) mod sdp;
pub(crate) mod sipfrag;
pub(crate) mod uri;
pub(crate) mod write;

pub use digest::Challenge;
pub use error::ParseError;
pub use frame::{frame, Frame, FrameError};
pub use header::{split_list, CSeq, Name, NameAddr, Via};
pub use method::Method;
pub use parse::{parse, parse_with, Core, Header, Invalid, Limits, Message, StartLine};
pub use sdp::Direction;
pub use sipfrag::status_line;
pub use write::{address, reason, Unwritable, Writer};

#[cfg(test)]
mod torture;
