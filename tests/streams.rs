//! SIP over TCP and TLS end to end: a real baton with stream listeners, a carrier on real
//! TCP connections (TLS with a CA made in the test), real HTTP hooks.

mod common;

use baton::server::Server;
use baton::stream::tls::TlsFiles;
use baton::stream::StreamSettings;
use baton_proto::sip::{frame, Frame, Name};
use baton_proto::Transport;
use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_der: CertificateDer<'static>,
    client: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&server_key, &ca, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["carrier.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = temp(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("cert.pem", server.pem()),
        key: write("key.pem", server_key.serialize_pem()),
        ca_der: ca.der().clone(),
        client: (client.der().clone(), PrivatePkcs8KeyDer::from(client_key.serialize_der()).into()),
    }
}

/// baton with a TCP and a TLS listener (client certificates required when `mutual`).
fn rig(
    pki: &Pki,
    mutual: bool,
    verbs: serde_json::Value,
    limits: impl FnOnce(&mut StreamSettings),
) -> (HookServer, Server) {
    let hooks = HookServer::start();
    app(&hooks, verbs);
    let files = TlsFiles { cert: pki.cert.clone(), key: pki.key.clone(), ca: mutual.then(|| pki.ca.clone()) };
    let server = start_server(
        settings(&hooks),
        &hooks,
        |_| {},
        |c| {
            c.streams.listen = vec![
                (Transport::Tcp, "127.0.0.1:0".parse().unwrap()),
                (Transport::Tls, "127.0.0.1:0".parse().unwrap()),
            ];
            c.streams.tls = Some(files);
            c.metrics = Some("127.0.0.1:0".parse().unwrap());
            limits(&mut c.streams);
        },
    );
    (hooks, server)
}

fn addr_of(server: &Server, transport: Transport) -> SocketAddr {
    server.stream_addrs().iter().find(|(t, _)| *t == transport).unwrap().1
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A carrier on one connection: writes text, reads whole messages with the framer.
struct Conn {
    io: Box<dyn Stream>,
    buf: Vec<u8>,
    me: SocketAddr,
    baton: SocketAddr,
    via: &'static str,
}

impl Conn {
    fn tcp(baton: SocketAddr) -> Conn {
        let tcp = TcpStream::connect(baton).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let me = tcp.local_addr().unwrap();
        Conn { io: Box::new(tcp), buf: Vec::new(), me, baton, via: "TCP" }
    }

    fn tls(baton: SocketAddr, pki: &Pki, with_cert: bool) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match with_cert {
            true => builder.with_client_auth_cert(vec![pki.client.0.clone()], pki.client.1.clone_key()).unwrap(),
            false => builder.with_no_client_auth(),
        };
        let name = ServerName::IpAddress(baton.ip().into());
        let session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(baton).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let me = tcp.local_addr().unwrap();
        Conn { io: Box::new(rustls::StreamOwned::new(session, tcp)), buf: Vec::new(), me, baton, via: "TLS" }
    }

    /// The carrier's text, its Via saying the transport it really uses.
    fn send(&mut self, text: &str) {
        self.io.write_all(text.replace("SIP/2.0/UDP", &format!("SIP/2.0/{}", self.via)).as_bytes()).unwrap();
        self.io.flush().unwrap();
    }

    /// The next message baton sent, or None once `within` has passed (or the connection ended).
    fn recv(&mut self, within: Duration) -> Option<Sip> {
        let until = Instant::now() + within;
        loop {
            match frame(&self.buf, 65_535) {
                Ok(Frame::Message(n)) => return Some(Sip(self.buf.drain(..n).collect())),
                Ok(Frame::Ping(n) | Frame::Skip(n)) => drop(self.buf.drain(..n)),
                Ok(Frame::NeedMore) => {}
                Err(e) => panic!("baton sent an unframable message: {e}"),
            }
            if Instant::now() >= until {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match self.io.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    fn expect(&mut self, what: &str, want: impl Fn(&Sip) -> bool) -> Sip {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            match self.recv(Duration::from_millis(100)) {
                Some(m) if want(&m) => return m,
                Some(_) => {}
                None => {}
            }
        }
        panic!("no {what} within {WAIT:?}")
    }

    fn request(&mut self, method: &str) -> Sip {
        self.expect(method, |m| m.method().as_deref() == Some(method))
    }

    fn answer(&mut self, method: &str) -> u16 {
        self.expect(&format!("the answer to {method}"), |m| m.status() >= Some(200) && m.cseq().1 == method)
            .status()
            .unwrap()
    }

    /// INVITE, 200 (its Contact naming the transport), ACK; baton's To.
    fn call(&mut self, call_id: &str) -> String {
        self.send(&invite_text(self.me, self.baton, call_id, ""));
        let ok = self.expect("200 to INVITE", |m| m.status() == Some(200) && m.cseq().1 == "INVITE");
        let transport = self.via.to_ascii_lowercase();
        assert!(ok.header(Name::Contact).unwrap().ends_with(&format!(";transport={transport}>")), "{}", ok.text());
        let to = ok.header(Name::To).unwrap();
        self.send(&ack_text(self.me, self.baton, call_id, &to));
        to
    }

    fn dialog<'a>(&self, call_id: &'a str, to: &'a str) -> Dialog<'a> {
        Dialog { me: self.me, baton: self.baton, call_id, to }
    }

    /// The carrier's side of a whole transfer, after the call is up.
    fn transfer(&mut self, call_id: &str, to: &str) {
        let refer = self.request("REFER");
        assert!(refer.header(Name::Via).unwrap().starts_with(&format!("SIP/2.0/{} ", self.via)), "{}", refer.text());
        self.send(&response_text(&refer, 202, ""));
        let id = refer.cseq().0;
        for (cseq, status, state) in
            [(2, "100 Trying", "active"), (3, "180 Ringing", "active"), (4, "200 OK", "terminated")]
        {
            let notify = self.dialog(call_id, to).notify(cseq, id, status, state);
            self.send(&notify);
            assert_eq!(self.answer("NOTIFY"), 200);
        }
        let bye = self.request("BYE");
        self.send(&response_text(&bye, 200, ""));
    }
}

fn refer_app() -> serde_json::Value {
    json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action", "eventHook": "/event"}])
}

#[test]
fn a_transfer_over_tcp_and_over_tls_stays_on_its_connection() {
    let pki = pki();
    let (hooks, server) = rig(&pki, false, refer_app(), |_| {});
    for (i, transport) in [Transport::Tcp, Transport::Tls].into_iter().enumerate() {
        let baton = addr_of(&server, transport);
        let mut conn = if transport == Transport::Tcp { Conn::tcp(baton) } else { Conn::tls(baton, &pki, false) };
        let call_id = format!("stream-{transport}");
        let to = conn.call(&call_id);
        conn.transfer(&call_id, &to);
        let action = &hooks.wait("/action", i + 1)[i];
        assert_eq!(
            (action.body["refer_status"].clone(), action.body["final_referred_call_status"].clone()),
            (json!(202), json!(200))
        );
        assert_eq!(action.body["call_id"], json!(call_id));
    }
    assert_eq!(hooks.wait("/event", 6).len(), 6);
    server.stop();
}

#[test]
fn a_message_in_many_segments_and_two_messages_in_one_write() {
    let pki = pki();
    let (hooks, server) = rig(&pki, false, refer_app(), |_| {});
    let mut conn = Conn::tcp(addr_of(&server, Transport::Tcp));
    let invite = invite_text(conn.me, conn.baton, "segments-1", "").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    for piece in invite.as_bytes().chunks(7) {
        conn.io.write_all(piece).unwrap();
        conn.io.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let ok = conn.expect("200 to INVITE", |m| m.status() == Some(200));
    let to = ok.header(Name::To).unwrap();
    conn.send(&ack_text(conn.me, conn.baton, "segments-1", &to));
    let refer = conn.request("REFER");
    // The 202 and the final NOTIFY pipelined in one write.
    let notify = conn.dialog("segments-1", &to).notify(2, refer.cseq().0, "200 OK", "terminated");
    conn.send(&(response_text(&refer, 202, "") + &notify));
    assert_eq!(conn.answer("NOTIFY"), 200);
    let bye = conn.request("BYE");
    conn.send(&response_text(&bye, 200, ""));
    assert_eq!(hooks.wait("/action", 1)[0].body["final_referred_call_status"], json!(200));
    // A keep-alive ping gets its pong (RFC 5626 §4.4.1).
    conn.io.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    conn.io.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    server.stop();
}

#[test]
fn a_request_without_content_length_gets_400_and_the_connection_closes() {
    let pki = pki();
    let (_hooks, server) = rig(&pki, false, refer_app(), |_| {});
    let mut conn = Conn::tcp(addr_of(&server, Transport::Tcp));
    let invite = invite_text(conn.me, conn.baton, "nolength-1", "");
    let head = invite.split("Content-Type").next().unwrap().to_string() + "\r\n";
    conn.send(&head);
    let bad = conn.expect("400", |m| m.status().is_some());
    assert!(bad.text().starts_with("SIP/2.0 400 Missing Content-Length Header\r\n"), "{}", bad.text());
    assert!(conn.recv(Duration::from_millis(500)).is_none(), "closed after the 400");
    server.stop();
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = pki();
    let (hooks, server) = rig(&pki, true, refer_app(), |_| {});
    let baton = addr_of(&server, Transport::Tls);
    let mut stranger = Conn::tls(baton, &pki, false);
    let invite = invite_text(stranger.me, baton, "mtls-0", "").replace("SIP/2.0/UDP", "SIP/2.0/TLS");
    // TLS 1.3 reports the refusal on the first read or write after the handshake.
    let _ = stranger.io.write_all(invite.as_bytes()).and_then(|()| stranger.io.flush());
    assert!(stranger.recv(Duration::from_millis(500)).is_none(), "no answer without a client certificate");
    let mut carrier = Conn::tls(baton, &pki, true);
    let to = carrier.call("mtls-1");
    carrier.transfer("mtls-1", &to);
    assert_eq!(hooks.wait("/action", 1)[0].body["final_referred_call_status"], json!(200));
    assert!(hooks.at("/call").iter().all(|c| c.body["call_id"] != "mtls-0"));
    server.stop();
}

/// Slow-loris: hundreds of connections from other sources each trickle a header that never
/// ends; a carrier's transfer on its own connection is not held up, and one source cannot
/// hold more than its share of connections.
#[test]
fn a_slow_loris_costs_bounded_connections_and_delays_no_transfer() {
    let pki = pki();
    let (hooks, server) = rig(&pki, false, refer_app(), |s| s.limits.per_source = 80);
    let baton = addr_of(&server, Transport::Tcp);
    let mut loris = Vec::new();
    for i in 0..320 {
        let ip: std::net::IpAddr = format!("127.0.0.{}", 2 + i % 4).parse().unwrap();
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(ip, 0).into()).unwrap();
        socket.connect(&baton.into()).unwrap();
        let mut tcp: TcpStream = socket.into();
        tcp.write_all(b"INVITE sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP ").unwrap();
        loris.push(tcp);
    }
    let started = Instant::now();
    let mut conn = Conn::tcp(baton);
    let to = conn.call("loris-1");
    conn.transfer("loris-1", &to);
    assert!(started.elapsed() < Duration::from_secs(2), "the transfer took {:?}", started.elapsed());
    assert_eq!(hooks.wait("/action", 1)[0].body["final_referred_call_status"], json!(200));
    // Every one of them is still open (each source holds 80, its cap) and costs a partial header.
    for tcp in &mut loris {
        tcp.write_all(b"x").unwrap();
    }
    // An 81st connection from one source is closed at once.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new("127.0.0.2".parse().unwrap(), 0).into()).unwrap();
    socket.connect(&baton.into()).unwrap();
    let mut extra: TcpStream = socket.into();
    extra.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert!(matches!(extra.read(&mut [0u8; 16]), Ok(0) | Err(_)), "over the per-source cap: closed");
    let page = http_get(&server.metrics_addr().unwrap().to_string(), "/metrics");
    assert_eq!(sample(&page, "baton_stream_connections_refused_total"), Some(1), "{page}");
    assert!(sample(&page, "baton_stream_connections_open") >= Some(320), "{page}");
    server.stop();
}

/// The carrier resets its connection after the REFER: the transfer still reports (408,
/// Timer F), the call still ends, nothing waits forever.
#[test]
fn a_connection_reset_mid_transfer_still_ends_the_transfer() {
    let pki = pki();
    let app = json!([{"verb": "sip:refer", "referTo": "agent", "actionHook": "/action"}]);
    let (hooks, server) = rig(&pki, false, app, |_| {});
    let baton = addr_of(&server, Transport::Tcp);
    let tcp = TcpStream::connect(baton).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let me = tcp.local_addr().unwrap();
    let socket = socket2::Socket::from(tcp.try_clone().unwrap());
    let mut conn = Conn { io: Box::new(tcp), buf: Vec::new(), me, baton, via: "TCP" };
    conn.call("reset-1");
    conn.request("REFER");
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(conn);
    drop(socket);
    let action = &hooks.wait("/action", 1)[0];
    assert_eq!(action.body["refer_status"], json!(408), "64·T1 after the REFER, which no one answered");
    let ended = hooks.wait_matching("/status", 1, |r| r.body["call_status"] == "completed");
    assert_eq!(ended[0].body["call_id"], "reset-1");
    server.stop();
}

/// SIGHUP reads the certificate again: new connections get the new one, a connection
/// already open keeps working, and baton never stops listening.
#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let (old, new) = (pki(), pki());
    let app = write_app(json!([{"verb": "pause", "length": 30}]));
    let (cert, key) = (old.cert.to_str().unwrap(), old.key.to_str().unwrap());
    let baton = Baton::start(&[
        "--listen",
        "tls:127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--app",
        app.to_str().unwrap(),
    ]);
    let logged = |what: &str| {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(line) = baton.log.lock().unwrap().iter().find(|l| l.contains(what)) {
                return line.clone();
            }
            assert!(Instant::now() < until, "baton never logged {what:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let line = logged("listening (tls)");
    let tls: SocketAddr = line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let mut before = Conn::tls(tls, &old, false);
    let to = before.call("reload-1");

    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    baton.signal("-HUP");
    logged("TLS certificate reloaded");

    let mut after = Conn::tls(tls, &new, false);
    after.call("reload-2");
    let mut stale = Conn::tls(tls, &old, false);
    let _ = stale.io.write_all(b"OPTIONS sip:x SIP/2.0\r\n\r\n");
    assert!(stale.recv(Duration::from_millis(300)).is_none(), "the old CA no longer verifies baton");
    // The connection made before the reload still carries its call.
    let bye = before.dialog("reload-1", &to).request("BYE", 2, "", "");
    before.send(&bye);
    assert_eq!(before.answer("BYE"), 200);
}

/// Debian's SIPp has no TLS: each scenario runs over TCP to a relay in the test that speaks
/// TLS to baton. baton answers on the TLS connection and sends its REFER and BYE on it, so
/// SIPp's whole scenario crosses TLS.
#[test]
fn every_sipp_scenario_over_tls_through_a_relay() {
    if std::process::Command::new("sipp").arg("-v").output().is_err() {
        eprintln!("SKIPPED: sipp is not installed (apt-get install sip-tester)");
        return;
    }
    let pki = pki();
    let sipp = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("perf/sipp");
    for name in ["happy", "refused", "busy", "no_notify", "notify_first", "far_end_bye", "compact", "headers"] {
        let verbs_text = std::fs::read_to_string(sipp.join(format!("apps/{name}.json"))).unwrap();
        let verbs: serde_json::Value = serde_json::from_str(&verbs_text).unwrap();
        let (hooks, server) = rig(&pki, false, verbs, |_| {});
        let relay = relay(addr_of(&server, Transport::Tls), &pki);
        let calls = 5;
        let out = std::process::Command::new("sipp")
            .arg(relay.to_string())
            .args(["-t", "t1", "-sf"])
            .arg(sipp.join(format!("{name}.xml")))
            .args([
                "-m",
                &calls.to_string(),
                "-r",
                "10",
                "-i",
                "127.0.0.1",
                "-timeout",
                "30s",
                "-timeout_error",
                "-nostdin",
            ])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} over TLS: {}", String::from_utf8_lossy(&out.stdout));
        if verbs_text.contains("actionHook") {
            assert_eq!(hooks.wait("/action", calls).len(), calls, "{name}: one actionHook per call");
        }
        server.stop();
    }
}

/// Accepts TCP connections and carries each, byte for byte, over a TLS connection of its
/// own to `baton`.
fn relay(baton: SocketAddr, pki: &Pki) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    std::thread::spawn(move || {
        for plain in listener.incoming().map_while(Result::ok) {
            let config = config.clone();
            std::thread::spawn(move || {
                let name = ServerName::IpAddress(baton.ip().into());
                let mut session = rustls::ClientConnection::new(config, name).unwrap();
                let mut tcp = TcpStream::connect(baton).unwrap();
                let mut plain = plain;
                plain.set_nonblocking(true).unwrap();
                tcp.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let mut idle = true;
                    match plain.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            session.writer().write_all(&buf[..n]).unwrap();
                            idle = false;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                    while session.wants_write() {
                        match session.write_tls(&mut tcp) {
                            Ok(_) => idle = false,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(_) => return,
                        }
                    }
                    match session.read_tls(&mut tcp) {
                        Ok(0) => return,
                        Ok(_) => {
                            idle = false;
                            if session.process_new_packets().is_err() {
                                return;
                            }
                            let mut clear = Vec::new();
                            let _ = session.reader().read_to_end(&mut clear);
                            if !clear.is_empty() && plain.write_all(&clear).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                    if idle {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
    });
    addr
}
