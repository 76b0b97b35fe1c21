//! Why a datagram is not a SIP message: shared by the parser and the line scanner under it.

use std::fmt;

/// Why a datagram is not a SIP message. `Display` gives a reason phrase fit for a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but line ends.
    Empty,
    /// The header section is not UTF-8.
    NotUtf8,
    /// No empty line ends the header section.
    NoHeaderEnd,
    /// The first line is neither a request nor a status line.
    BadStartLine,
    /// The SIP version cannot be read.
    BadVersion,
    /// A header line has no name or colon.
    BadHeaderLine,
    /// More header lines than [`crate::sip::Limits`] allow.
    TooManyHeaders,
    /// A Content-Length that is not a number, or two.
    BadContentLength,
    /// Fewer body bytes than Content-Length says.
    TruncatedBody,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "Empty Message",
            ParseError::NotUtf8 => "Header Section Not UTF-8",
            ParseError::NoHeaderEnd => "Incomplete Header Section",
            ParseError::BadStartLine => "Malformed Start Line",
            ParseError::BadVersion => "Unsupported SIP Version",
            ParseError::BadHeaderLine => "Malformed Header Line",
            ParseError::TooManyHeaders => "Too Many Headers",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::TruncatedBody => "Body Shorter Than Content-Length",
        })
    }
}

impl std::error::Error for ParseError {}
