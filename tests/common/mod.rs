//! Test parts: a real HTTP hook server (axum) and a carrier that speaks SIP over loopback UDP.
#![allow(dead_code)]

// The SIP text the carrier writes and reads is the simulator's (one copy for both).
#[path = "../../crates/baton-proto/tests/sim/text.rs"]
mod text;
pub use text::*;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use baton::hooks::worker::HookSettings;
use baton::server::{Server, ServerConfig};
use baton_proto::sip::Name;
use baton_proto::{Hook, Settings};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(5);

// ---- hooks ------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub method: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The body as sent.
    pub raw: Vec<u8>,
    /// When the request arrived.
    pub at: Instant,
}

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    /// A `Location` header (a redirect).
    location: Option<String>,
}

#[derive(Clone, Default)]
struct HookState {
    log: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
}

pub struct HookServer {
    pub addr: SocketAddr,
    state: HookState,
    _rt: tokio::runtime::Runtime,
}

async fn record(
    State(s): State<HookState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let rec = Recorded {
        path: uri.path().to_string(),
        method: method.to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        at: Instant::now(),
    };
    let reply = s.replies.lock().unwrap().get(&rec.path).cloned();
    s.log.lock().unwrap().push(rec);
    let reply = reply.unwrap_or(Reply { status: 200, body: String::new(), delay: Duration::ZERO, location: None });
    tokio::time::sleep(reply.delay).await;
    let mut headers = HeaderMap::new();
    if let Some(location) = reply.location {
        headers.insert(axum::http::header::LOCATION, location.parse().unwrap());
    }
    (StatusCode::from_u16(reply.status).unwrap(), headers, reply.body)
}

impl HookServer {
    pub fn start() -> HookServer {
        HookServer::start_on(0)
    }

    /// On a given port (0: any), e.g. to bring back an endpoint that was down.
    pub fn start_on(port: u16) -> HookServer {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let state = HookState::default();
        let listener = rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(record).with_state(state.clone());
        rt.spawn(async move { axum::serve(listener, app).await });
        HookServer { addr, state, _rt: rt }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn reply(&self, path: &str, status: u16, body: &str) {
        self.reply_after(path, status, body, Duration::ZERO);
    }

    pub fn reply_after(&self, path: &str, status: u16, body: &str, delay: Duration) {
        let reply = Reply { status, body: body.into(), delay, location: None };
        self.state.replies.lock().unwrap().insert(path.into(), reply);
    }

    /// Answers `path` with a `307 Temporary Redirect` to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        let reply = Reply { status: 307, body: String::new(), delay: Duration::ZERO, location: Some(location.into()) };
        self.state.replies.lock().unwrap().insert(path.into(), reply);
    }

    pub fn all(&self) -> Vec<Recorded> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn at(&self, path: &str) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.path == path).collect()
    }

    /// Waits until `path` has received at least `n` requests.
    pub fn wait(&self, path: &str, n: usize) -> Vec<Recorded> {
        self.wait_matching(path, n, |_| true)
    }

    /// Waits until `path` has received at least `n` requests that `keep` accepts.
    pub fn wait_matching(&self, path: &str, n: usize, keep: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got: Vec<Recorded> = self.at(path).into_iter().filter(|r| keep(r)).collect();
            if got.len() >= n || Instant::now() > deadline {
                assert!(got.len() >= n, "{path}: expected {n} hooks, got {}: {got:#?}", got.len());
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---- baton ------------------------------------------------------------------------------

/// Settings with short timers so timeouts happen in test time.
pub fn settings(hooks: &HookServer) -> Settings {
    let mut s = Settings {
        call_hook: Some(Hook::post(hooks.url("/call"))),
        status_hook: Some(Hook::post(hooks.url("/status"))),
        ..Settings::default()
    };
    s.timers.t1 = Duration::from_millis(50);
    s.timers.t2 = Duration::from_millis(400);
    s
}

pub fn start(settings: Settings, hooks: &HookServer) -> Server {
    start_with(settings, hooks, |_| {})
}

pub fn start_with(settings: Settings, hooks: &HookServer, tweak: impl FnOnce(&mut HookSettings)) -> Server {
    start_server(settings, hooks, tweak, |_| {})
}

/// baton with the test's hook settings, and whatever else `server` changes.
pub fn start_server(
    settings: Settings,
    hooks: &HookServer,
    tweak: impl FnOnce(&mut HookSettings),
    server: impl FnOnce(&mut ServerConfig),
) -> Server {
    let mut hook_settings = HookSettings {
        base: Some(url::Url::parse(&hooks.url("/call")).unwrap()),
        secret: Some("s3cret".into()),
        backoff: Duration::from_millis(20),
        dead_letter: std::env::temp_dir().join(format!(
            "baton-test-dead-{}-{}.jsonl",
            std::process::id(),
            fastrand::u64(..)
        )),
        ..HookSettings::default()
    };
    tweak(&mut hook_settings);
    let listen = vec!["127.0.0.1:0".parse().unwrap()];
    let mut config = ServerConfig {
        listen,
        settings,
        hooks: hook_settings,
        grace: Duration::from_secs(5),
        shards: 2,
        io: io_mode(),
        ..ServerConfig::default()
    };
    server(&mut config);
    let server = Server::start(config).unwrap();
    // A pass asked to run on one backend must not quietly run on the other.
    match io_mode() {
        baton::io::IoMode::Uring => assert_eq!(server.io(), "io_uring"),
        baton::io::IoMode::Epoll => assert_eq!(server.io(), "epoll"),
        baton::io::IoMode::Auto | baton::io::IoMode::Xdp(_) => {}
    }
    server
}

/// The backend the suite runs on: `BATON_IO=uring|epoll|auto` (CI runs it on both).
pub fn io_mode() -> baton::io::IoMode {
    let name = std::env::var("BATON_IO").unwrap_or_default();
    name.parse().unwrap_or_default()
}

/// A hook server, a running baton and a carrier pointed at it; baton stops on drop.
pub struct Rig {
    pub hooks: HookServer,
    pub carrier: Carrier,
    baton: Option<Server>,
}

impl Rig {
    /// baton with the test settings, its call hook answering with `verbs`.
    pub fn new(verbs: Value) -> Rig {
        Rig::with(verbs, |_| {})
    }

    pub fn with(verbs: Value, tweak: impl FnOnce(&mut Settings)) -> Rig {
        Rig::with_hooks(verbs, tweak, |_, _| {})
    }

    pub fn with_hooks(
        verbs: Value,
        tweak: impl FnOnce(&mut Settings),
        tweak_hooks: impl FnOnce(&mut HookSettings, &HookServer),
    ) -> Rig {
        let hooks = HookServer::start();
        app(&hooks, verbs);
        let mut s = settings(&hooks);
        tweak(&mut s);
        let baton = start_with(s, &hooks, |h| tweak_hooks(h, &hooks));
        let carrier = Carrier::new(baton.local_addrs()[0]);
        Rig { hooks, carrier, baton: Some(baton) }
    }

    /// baton with the test settings, its call hook answering with `verbs`, and whatever
    /// else `server` changes in its config.
    pub fn with_server(verbs: Value, server: impl FnOnce(&mut ServerConfig)) -> Rig {
        let hooks = HookServer::start();
        app(&hooks, verbs);
        let baton = start_server(settings(&hooks), &hooks, |_| {}, server);
        let carrier = Carrier::new(baton.local_addrs()[0]);
        Rig { hooks, carrier, baton: Some(baton) }
    }

    /// Where the HTTP endpoint listens (the config must have asked for one).
    pub fn http(&self) -> SocketAddr {
        self.baton.as_ref().and_then(Server::metrics_addr).expect("an HTTP endpoint")
    }

    /// Stops baton (delivering queued hooks) and returns its counters.
    pub fn stop(&mut self) -> baton_proto::Stats {
        self.baton.take().map(Server::stop).unwrap_or_default()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- the carrier ------------------------------------------------------------------------

pub struct Carrier {
    pub sock: UdpSocket,
    pub baton: SocketAddr,
}

impl Carrier {
    pub fn new(baton: SocketAddr) -> Carrier {
        Carrier::from_ip(baton, "127.0.0.1")
    }

    /// A carrier on another loopback address (a source of its own at the edge).
    pub fn from_ip(baton: SocketAddr, ip: &str) -> Carrier {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Carrier { sock, baton }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.baton).unwrap();
    }

    pub fn send_bytes(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.baton).unwrap();
    }

    /// Next datagram within `timeout`.
    pub fn recv_within(&self, timeout: Duration) -> Option<Sip> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                return Some(Sip(buf[..n].to_vec()));
            }
        }
        None
    }

    /// Waits for a message that satisfies `want`, skipping others (provisionals, retransmissions).
    pub fn expect(&self, what: &str, want: impl Fn(&Sip) -> bool) -> Sip {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.recv_within(Duration::from_millis(100)) {
                if want(&m) {
                    return m;
                }
                seen.push(m.text());
            }
        }
        panic!("no {what} from baton; saw instead: {seen:#?}");
    }

    pub fn expect_request(&self, method: &str) -> Sip {
        self.expect(method, |m| m.method().as_deref() == Some(method))
    }

    pub fn expect_response(&self, method: &str, final_only: bool) -> Sip {
        self.expect(&format!("response to {method}"), |m| {
            m.status().is_some_and(|s| !final_only || s >= 200) && m.cseq().1 == method
        })
    }

    /// Asserts nothing matching arrives for `quiet`.
    pub fn expect_none(&self, quiet: Duration, what: &str, matches: impl Fn(&Sip) -> bool) {
        let deadline = Instant::now() + quiet;
        while Instant::now() < deadline {
            if let Some(m) = self.recv_within(Duration::from_millis(20)) {
                assert!(!matches(&m), "unexpected {what}: {}", m.text());
            }
        }
    }

    pub fn invite_text(&self, call_id: &str, extra: &str) -> String {
        invite_text(self.addr(), self.baton, call_id, extra)
    }

    /// INVITE → 100 → 200 (with SDP) → ACK. Returns the established leg.
    pub fn call(&self, call_id: &str) -> Leg<'_> {
        self.call_with(call_id, "")
    }

    pub fn call_with(&self, call_id: &str, extra: &str) -> Leg<'_> {
        self.send(&self.invite_text(call_id, extra));
        let ok = self.expect("200 to INVITE", |m| m.status() == Some(200) && m.cseq().1 == "INVITE");
        let to = ok.header(Name::To).unwrap();
        self.send(&ack_text(self.addr(), self.baton, call_id, &to));
        Leg { carrier: self, call_id: call_id.into(), to, cseq: 1, ok }
    }
}

/// The carrier's side of an established call.
pub struct Leg<'a> {
    pub carrier: &'a Carrier,
    pub call_id: String,
    /// The To header baton answered with (carries baton's tag).
    pub to: String,
    pub cseq: u32,
    pub ok: Sip,
}

impl Leg<'_> {
    /// Answers a request from baton, copying its Via/From/To/Call-ID/CSeq.
    pub fn respond(&self, req: &Sip, code: u16, extra: &str) {
        self.carrier.send(&response_text(req, code, extra));
    }

    /// An in-dialog request from the carrier; returns (branch, text).
    pub fn request(&mut self, method: &str, headers: &str, body: &str) -> String {
        self.cseq += 1;
        self.request_with_cseq(method, self.cseq, headers, body)
    }

    pub fn request_with_cseq(&self, method: &str, cseq: u32, headers: &str, body: &str) -> String {
        let dialog =
            Dialog { me: self.carrier.addr(), baton: self.carrier.baton, call_id: &self.call_id, to: &self.to };
        dialog.request(method, cseq, headers, body)
    }

    /// Sends a NOTIFY for the refer subscription and returns baton's answer code.
    pub fn notify(&mut self, refer: &Sip, status: &str, state: &str) -> u16 {
        self.cseq += 1;
        let dialog =
            Dialog { me: self.carrier.addr(), baton: self.carrier.baton, call_id: &self.call_id, to: &self.to };
        self.carrier.send(&dialog.notify(self.cseq, refer.cseq().0, status, state));
        self.carrier.expect_response("NOTIFY", true).status().unwrap()
    }
}

/// The carrier's whole side of a happy transfer: call in, accept the REFER, report
/// 100/180/200, answer the BYE.
pub fn transfer(carrier: &Carrier, call_id: &str) {
    let mut leg = carrier.call(call_id);
    let refer = carrier.expect_request("REFER");
    leg.respond(&refer, 202, "");
    assert_eq!(leg.notify(&refer, "100 Trying", "active"), 200);
    assert_eq!(leg.notify(&refer, "180 Ringing", "active"), 200);
    assert_eq!(leg.notify(&refer, "200 OK", "terminated"), 200);
    let bye = carrier.expect_request("BYE");
    leg.respond(&bye, 200, "");
}

/// Writes an application to the call hook's answer.
pub fn app(hooks: &HookServer, verbs: Value) {
    hooks.reply("/call", 200, &verbs.to_string());
}

// ---- the real binary ---------------------------------------------------------------------

pub struct Baton {
    child: Child,
    pub addr: SocketAddr,
    /// What baton logged, line by line.
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("baton-life-{}-{}", std::process::id(), fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

impl Baton {
    /// Starts `baton serve` on a free port and waits for its "listening" line.
    pub fn start(args: &[&str]) -> Baton {
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["serve", "--listen", "udp:127.0.0.1:0", "--t1-ms", "50", "--t2-ms", "400"])
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let want_io = match io_mode() {
            baton::io::IoMode::Uring => Some("io=\"io_uring\""),
            baton::io::IoMode::Epoll => Some("io=\"epoll\""),
            baton::io::IoMode::Auto | baton::io::IoMode::Xdp(_) => None,
        };
        let addr = loop {
            let line = lines.next().expect("baton exited before listening").unwrap();
            if let (Some(want), true) = (want_io, line.contains("shards running")) {
                assert!(line.contains(want), "asked for {want}: {line}");
            }
            if let Some(rest) = line.split("addr=").nth(1).filter(|_| line.contains("listening")) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so baton never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Baton { child, addr, log }
    }

    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "baton did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_app(verbs: serde_json::Value) -> PathBuf {
    let path = temp("app.json");
    std::fs::write(&path, verbs.to_string()).unwrap();
    path
}

/// A plain HTTP GET (the operator's view of `/metrics`).
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Checks both signatures of a hook request signed with the test secret: Baton-Signature
/// over method, URL and body; Jambonz-Signature over the JSON payload (`payload`: the body,
/// or for a GET the payload its query carries).
pub fn assert_signed(rec: &Recorded, url: &str, payload: &[u8]) {
    use baton::hooks::sign::{baton_signature, jambonz_signature};
    let ours = &rec.headers["baton-signature"];
    let t: u64 = ours.strip_prefix("t=").and_then(|r| r.split(',').next()).unwrap().parse().unwrap();
    assert_eq!(ours, &baton_signature(b"s3cret", t, &rec.method, url, &rec.raw));
    assert_eq!(&rec.headers["jambonz-signature"], &jambonz_signature(b"s3cret", t, payload));
}

/// The value of one sample of a Prometheus text page (`name` with its labels, if any).
pub fn sample(page: &str, name: &str) -> Option<u64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
