//! One carrier call as the load generator plays it, sans-IO: INVITE, ACK, 202 to the REFER,
//! NOTIFY 100/180/200, 200 to baton's BYE. Retransmits its own requests (T1 doubling).

use baton_proto::sip::{Message, Name};
use baton_proto::Transport;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const NOTIFIES: [(&str, &str); 3] = [
    ("100 Trying", "active;expires=60"),
    ("180 Ringing", "active;expires=60"),
    ("200 OK", "terminated;reason=noresource"),
];
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const MAX_RETX: u32 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Inviting,
    AwaitRefer,
    /// The NOTIFY of this index is out, waiting for its 200.
    Notifying(usize),
    AwaitBye,
    Done,
    /// baton answered the INVITE with 503: over its limits.
    Refused,
    Failed(&'static str),
}

struct Pending {
    bytes: Vec<u8>,
    /// When it was (meant to be) sent: latency counts from here.
    sent: Instant,
    /// Off after a provisional response to an INVITE (RFC 3261 §17.1.1.2).
    retransmit: bool,
}

/// When a request is first looked at again: its first retransmission on UDP, Timer F
/// (64·T1) on a reliable transport.
fn first_timer(transport: Transport) -> Duration {
    if transport.is_reliable() {
        T1 * 64
    } else {
        T1
    }
}

pub struct LoadCall {
    pub call_id: String,
    pub stage: Stage,
    me: SocketAddr,
    baton: SocketAddr,
    to: String,
    refer_cseq: Option<u32>,
    /// Our request awaiting its response.
    pending: Option<Pending>,
    next_retx: Instant,
    interval: Duration,
    retx: u32,
    /// Last response we sent to a request of baton's, resent when it retransmits.
    last_answer: Option<(String, Vec<u8>)>,
    /// The transport: on TCP and TLS nothing is sent again, Timer F alone bounds a request.
    transport: Transport,
}

/// What a call wants sent, and latencies it measured (request to response).
#[derive(Default)]
pub struct Effects {
    pub send: Vec<Vec<u8>>,
    pub latencies: Vec<Duration>,
    /// Datagrams from baton that repeated one already handled.
    pub retransmissions: u32,
}

impl LoadCall {
    /// Starts a call whose INVITE was meant to leave at `intended` (coordinated-omission
    /// correction: latency counts from then, not from when the generator got to it).
    pub fn start(
        call_id: String,
        (me, baton, transport): (SocketAddr, SocketAddr, Transport),
        intended: Instant,
        now: Instant,
    ) -> (LoadCall, Vec<u8>) {
        let via = transport.via_name();
        let invite = format!(
            "INVITE sip:bot@{baton} SIP/2.0\r\nVia: SIP/2.0/{via} {me};branch=z9hG4bK-{call_id}-1\r\nMax-Forwards: 70\r\n\
             From: <sip:+15550000000@{me}>;tag=ld-{call_id}\r\nTo: <sip:bot@{baton}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:load@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
        .into_bytes();
        let call = LoadCall {
            call_id,
            stage: Stage::Inviting,
            me,
            baton,
            to: String::new(),
            refer_cseq: None,
            pending: Some(Pending { bytes: invite.clone(), sent: intended, retransmit: !transport.is_reliable() }),
            next_retx: now + first_timer(transport),
            interval: T1,
            retx: 0,
            last_answer: None,
            transport,
        };
        (call, invite)
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|_| self.next_retx)
    }

    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::Refused | Stage::Failed(_))
    }

    fn request(&mut self, method: &str, cseq: u32, extra: &str, body: &str, now: Instant) -> Vec<u8> {
        let (me, baton, call_id, to) = (self.me, self.baton, &self.call_id, &self.to);
        let via = self.transport.via_name();
        let bytes = format!(
            "{method} sip:baton@{baton} SIP/2.0\r\nVia: SIP/2.0/{via} {me};branch=z9hG4bK-{call_id}-{cseq}\r\nMax-Forwards: 70\r\n\
             From: <sip:+15550000000@{me}>;tag=ld-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             {extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        if method != "ACK" {
            self.pending = Some(Pending { bytes: bytes.clone(), sent: now, retransmit: !self.transport.is_reliable() });
            self.next_retx = now + first_timer(self.transport);
            self.interval = T1;
            self.retx = 0;
        }
        bytes
    }

    fn answer(&mut self, req: &Message<'_>, code: u16, reason: &str) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for h in req.headers.iter() {
            if matches!(h.name, Name::Via | Name::From | Name::To | Name::CallId | Name::CSeq) {
                out.push_str(&format!("{}: {}\r\n", h.raw_name, h.value));
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        let key = req.get(Name::CSeq).unwrap_or_default().to_string();
        self.last_answer = Some((key, out.clone().into_bytes()));
        out.into_bytes()
    }

    fn notify(&mut self, index: usize, now: Instant) -> Vec<u8> {
        let (status, state) = NOTIFIES[index];
        let id = self.refer_cseq.unwrap_or(1);
        let extra = format!(
            "Contact: <sip:load@{}>\r\nEvent: refer;id={id}\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag;version=2.0\r\n",
            self.me
        );
        self.stage = Stage::Notifying(index);
        self.request("NOTIFY", 2 + index as u32, &extra, &format!("SIP/2.0 {status}\r\n"), now)
    }

    fn answered(&mut self, now: Instant, fx: &mut Effects) {
        if let Some(p) = self.pending.take() {
            fx.latencies.push(now.saturating_duration_since(p.sent));
        }
    }

    pub fn on_message(&mut self, msg: &Message<'_>, now: Instant) -> Effects {
        let mut fx = Effects::default();
        let cseq = msg.get(Name::CSeq).unwrap_or_default().to_string();
        match (msg.status(), msg.method()) {
            (Some(code), _) => self.on_response(msg, code, &cseq, now, &mut fx),
            (None, Some(method)) => {
                if let Some((key, bytes)) = &self.last_answer {
                    if *key == cseq {
                        fx.retransmissions += 1;
                        fx.send.push(bytes.clone());
                        return fx;
                    }
                }
                match (method, self.stage) {
                    ("REFER", Stage::AwaitRefer) => {
                        self.refer_cseq = cseq.split_whitespace().next().and_then(|n| n.parse().ok());
                        fx.send.push(self.answer(msg, 202, "Accepted"));
                        fx.send.push(self.notify(0, now));
                    }
                    ("BYE", Stage::Notifying(_) | Stage::AwaitBye) => {
                        fx.send.push(self.answer(msg, 200, "OK"));
                        self.pending = None;
                        self.stage = Stage::Done;
                    }
                    ("BYE", _) => {
                        fx.send.push(self.answer(msg, 200, "OK"));
                        self.fail("BYE before the transfer finished");
                    }
                    _ => fx.send.push(self.answer(msg, 481, "Call/Transaction Does Not Exist")),
                }
            }
            (None, None) => {}
        }
        fx
    }

    fn on_response(&mut self, msg: &Message<'_>, code: u16, cseq: &str, now: Instant, fx: &mut Effects) {
        let method = cseq.split_whitespace().nth(1).unwrap_or_default();
        match (method, self.stage) {
            ("INVITE", Stage::Inviting) if code < 200 => {
                if let Some(p) = &mut self.pending {
                    p.retransmit = false;
                    self.next_retx = now + T1 * 64; // Timer B
                }
            }
            ("INVITE", Stage::Inviting) => {
                self.answered(now, fx);
                self.to = msg.get(Name::To).unwrap_or_default().to_string();
                fx.send.push(self.request("ACK", 1, "", "", now));
                self.stage = match code {
                    200..=299 => Stage::AwaitRefer,
                    503 => Stage::Refused,
                    _ => Stage::Failed("INVITE refused"),
                };
            }
            ("INVITE", _) if (200..300).contains(&code) => {
                fx.retransmissions += 1;
                fx.send.push(self.request("ACK", 1, "", "", now));
            }
            ("NOTIFY", Stage::Notifying(i)) if code >= 200 && cseq.starts_with(&(2 + i).to_string()) => {
                self.answered(now, fx);
                if code >= 300 {
                    return self.fail("NOTIFY refused");
                }
                if i + 1 < NOTIFIES.len() {
                    fx.send.push(self.notify(i + 1, now));
                } else {
                    self.stage = Stage::AwaitBye;
                }
            }
            (_, _) if code >= 200 => fx.retransmissions += 1,
            _ => {}
        }
    }

    fn fail(&mut self, why: &'static str) {
        self.pending = None;
        self.stage = Stage::Failed(why);
    }

    pub fn on_timeout(&mut self, now: Instant) -> Option<Vec<u8>> {
        let p = self.pending.as_ref()?;
        if now < self.next_retx {
            return None;
        }
        if self.retx >= MAX_RETX || !p.retransmit {
            self.fail("no answer from baton");
            return None;
        }
        let bytes = p.bytes.clone();
        self.retx += 1;
        self.interval = (self.interval * 2).min(T2);
        self.next_retx = now + self.interval;
        Some(bytes)
    }
}

const SDP: &str =
    "v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
