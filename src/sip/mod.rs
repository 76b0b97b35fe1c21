//! Sans-IO SIP: parsing, writing and the small grammars baton needs. No sockets, no clocks.

pub mod digest;
mod error;
pub mod header;
pub mod parse;
mod scan;
pub mod sdp;
pub mod sipfrag;
pub mod uri;
pub mod write;

#[cfg(test)]
mod torture;
