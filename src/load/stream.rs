//! The generator's carrier on one TCP or TLS connection instead of a UDP socket: writes
//! gathered per turn, reads cut into messages by the framer baton uses.

use baton_proto::sip::{frame, Frame};
use baton_proto::Transport;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct StreamWire {
    io: Box<dyn Stream>,
    /// The same socket, for its read timeout.
    tcp: TcpStream,
    read: Vec<u8>,
    write: Vec<u8>,
}

impl StreamWire {
    /// Connects to `target`; TLS checks baton's certificate against `ca` (the web's roots
    /// without one). Returns the wire and our address.
    pub fn connect(
        target: SocketAddr,
        transport: Transport,
        ca: Option<&Path>,
    ) -> io::Result<(StreamWire, SocketAddr)> {
        let tcp = TcpStream::connect(target)?;
        tcp.set_nodelay(true)?;
        let me = tcp.local_addr()?;
        let io: Box<dyn Stream> = match transport {
            Transport::Tls => {
                let mut roots = rustls::RootCertStore::empty();
                match ca {
                    Some(ca) => {
                        for cert in CertificateDer::pem_file_iter(ca).map_err(io::Error::other)? {
                            roots.add(cert.map_err(io::Error::other)?).map_err(io::Error::other)?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                let config =
                    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                        .with_safe_default_protocol_versions()
                        .map_err(io::Error::other)?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                let session =
                    rustls::ClientConnection::new(Arc::new(config), ServerName::IpAddress(target.ip().into()))
                        .map_err(io::Error::other)?;
                Box::new(rustls::StreamOwned::new(session, tcp.try_clone()?))
            }
            _ => Box::new(tcp.try_clone()?),
        };
        Ok((StreamWire { io, tcp, read: Vec::new(), write: Vec::new() }, me))
    }

    pub fn send(&mut self, bytes: Vec<u8>) {
        self.write.extend_from_slice(&bytes);
    }

    /// Writes what was gathered, then waits up to `timeout` for bytes and hands every whole
    /// message to `each`.
    pub fn turn(&mut self, timeout: Duration, each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        self.flush()?;
        self.tcp.set_read_timeout(Some(timeout.max(Duration::from_micros(100))))?;
        let mut chunk = [0u8; 64 * 1024];
        match self.io.read(&mut chunk) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "baton closed the connection")),
            Ok(n) => self.read.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        let mut at = 0;
        loop {
            match frame(&self.read[at..], 65_535) {
                Ok(Frame::Message(n)) => {
                    each(&self.read[at..at + n]);
                    at += n;
                }
                Ok(Frame::Ping(n) | Frame::Skip(n)) => at += n,
                Ok(Frame::NeedMore) => break,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        self.read.drain(..at);
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if !self.write.is_empty() {
            self.io.write_all(&self.write)?;
            self.io.flush()?;
            self.write.clear();
        }
        Ok(())
    }
}
