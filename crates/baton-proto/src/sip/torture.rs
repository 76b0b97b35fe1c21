//! RFC 4475 (SIP torture test messages), §3.1.1 and §3.1.2. Each test is named for the
//! RFC's tag and exercises the same torture. The messages are written for these tests,
//! not copied byte for byte: Content-Length is computed for each body here.

use super::header::{CSeq, Name, NameAddr, Via};
use super::parse::{parse, Invalid, Message, ParseError, StartLine};
use super::uri::Uri;

fn msg(head: &str, body: &str) -> Vec<u8> {
    let head = head.replace('\n', "\r\n").replace("{len}", &body.len().to_string());
    format!("{head}\r\n\r\n{body}").into_bytes()
}

fn parsed(bytes: &[u8]) -> Message<'_> {
    parse(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

// ---- §3.1.1: valid messages, which must parse to the right values --------------------

/// §3.1.1.1 wsinv: a short tortuous INVITE (mixed-case and compact names, LWS around
/// colons, folded values, an unknown header with an odd value, several Vias in one line).
#[test]
fn wsinv() {
    let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\n";
    let bytes = msg(
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : {len}
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33",
        body,
    );
    let m = parsed(&bytes);
    let core = m.core().unwrap();
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(core.call_id, "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(core.cseq, CSeq { seq: 9, method: "INVITE" });
    assert_eq!(core.to.tag(), Some("1918181833n"));
    assert_eq!(core.from.tag(), Some("98asjd8"));
    assert_eq!((core.via.transport, core.via.sent_by, core.via.branch()), ("UDP", "192.0.2.2", Some("390skdjuw")));
    let vias: Vec<_> = m.all(Name::Via).filter_map(Via::parse).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let contact = NameAddr::parse(m.get(Name::Contact).unwrap()).unwrap();
    assert_eq!(contact.uri, "sip:jdrosen@example.com");
    assert_eq!(m.body, body.as_bytes());
    assert_eq!(m.get(Name::MaxForwards), Some("0068"));
}

/// §3.1.1.2 intmeth: the widest range of valid characters in method, URI and header names.
#[test]
fn intmeth() {
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    let uri =
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
    let bytes = msg(
        &format!(
            "{method} {uri} SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: \"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <{uri}>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}}{{
CSeq: 139122385 {method}
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\u{feff}大停電
Content-Length: 0"
        ),
        "",
    );
    let m = parsed(&bytes);
    let core = m.core().unwrap();
    assert_eq!(m.method(), Some(method));
    assert_eq!(core.cseq.method, method);
    assert!(matches!(m.start, StartLine::Request { uri: u, .. } if u == uri));
    assert_eq!(core.from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(core.via.branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(m.get_raw("extensionHeader-!.%*+_`'~"), Some("\u{feff}大停電"));
}

/// §3.1.1.3 esc01 and §3.1.1.4 escnull: %-escapes (even %00) in URIs are data.
#[test]
fn esc01_escnull() {
    let bytes = msg(
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
Call-ID: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
Contact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 0",
        "",
    );
    let m = parsed(&bytes);
    let StartLine::Request { uri, .. } = m.start else { panic!() };
    assert_eq!(Uri::parse(uri).unwrap().user, Some("sips%3Auser%40example.com"));
    let m2 = msg("REGISTER sip:example.com SIP/2.0\nTo: sip:null-%00-null@example.com\nFrom: sip:null-%00-null@example.com;tag=839923423\nMax-Forwards: 70\nCall-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\nCSeq: 14398234 REGISTER\nVia: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\nContent-Length: 0", "");
    assert_eq!(parsed(&m2).core().unwrap().to.uri, "sip:null-%00-null@example.com");
}

/// §3.1.1.5 esc02: % in a method name is not an escape; the method is simply unknown.
#[test]
fn esc02() {
    let bytes = msg(
        "RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209793
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Content-Length: 0",
        "",
    );
    let m = parsed(&bytes);
    assert_eq!(m.core().unwrap().cseq.method, "RE%47IST%45R");
    assert_eq!(m.core().unwrap().to.display, Some("%Z%45"));
}

/// §3.1.1.6 lwsdisp: no LWS between a display name and `<`.
#[test]
fn lwsdisp() {
    let bytes = msg("OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: caller<sip:caller@example.com>;tag=323\nMax-Forwards: 70\nCall-ID: lwsdisp.1234abcd@funky.example.com\nCSeq: 60 OPTIONS\nVia: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\nl: 0", "");
    let from = parsed(&bytes).core().unwrap().from;
    assert_eq!((from.display, from.uri, from.tag()), (Some("caller"), "sip:caller@example.com", Some("323")));
}

/// §3.1.1.7 longreq: very long values and many header fields.
#[test]
fn longreq() {
    let long = "very".repeat(1000);
    let vias: String =
        (0..40).map(|i| format!("Via: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{i}{long}\n")).collect();
    let bytes = msg(
        &format!(
            "INVITE sip:user@example.com SIP/2.0\n{vias}To: \"I have a user name of {long} proportion\" <sip:user@example.com:6000;unknownparam={long}>\nFrom: sip:{long}@example.net;tag={long}\nCall-ID: longreq.{long}\nCSeq: 3882340 INVITE\nMax-Forwards: 70\nX-{long}: {long}\nContent-Length: 0"
        ),
        "",
    );
    let m = parsed(&bytes);
    let core = m.core().unwrap();
    assert_eq!(m.lines(Name::Via).count(), 40);
    assert_eq!(core.from.tag().map(str::len), Some(4000));
    assert_eq!(core.call_id.len(), "longreq.".len() + 4000);
}

/// §3.1.1.8 dblreq: octets after Content-Length in a UDP datagram are ignored.
#[test]
fn dblreq() {
    let mut bytes = msg("REGISTER sip:example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:j.user@example.com;tag=43251j3j324\nMax-Forwards: 8\nCall-ID: dblreq.0ha0isndaksdj99sdfafnl3lk233412\nContact: sip:j.user@host.example.com\nCSeq: 8 REGISTER\nVia: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\nContent-Length: 0", "");
    bytes.extend_from_slice(b"INVITE sip:joe@example.com SIP/2.0\r\nt: sip:joe@example.com\r\n\r\n");
    let m = parsed(&bytes);
    assert_eq!((m.method(), m.body), (Some("REGISTER"), &b""[..]));
}

/// §3.1.1.9 semiuri: `;` inside the user part of a URI.
#[test]
fn semiuri() {
    let bytes = msg("OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\nTo: sip:j_user@example.com\nFrom: sip:caller@example.org;tag=33242\nMax-Forwards: 3\nCall-ID: semiuri.0ha0isndaksdj\nCSeq: 8 OPTIONS\nAccept: application/sdp, application/pkcs7-mime,\n        multipart/mixed, multipart/signed,\n        message/sip, message/sipfrag\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\nl: 0", "");
    let m = parsed(&bytes);
    let StartLine::Request { uri, .. } = m.start else { panic!() };
    let u = Uri::parse(uri).unwrap();
    assert_eq!((u.user, u.host), (Some("user;par=u%40example.net"), "example.com"));
}

/// §3.1.1.10 transports: Via transport tokens that are unknown to the receiver.
#[test]
fn transports() {
    let bytes = msg("OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: <sip:caller@example.com>;tag=323\nMax-Forwards: 70\nCall-ID: transports.kijh4akdnaqjkwendsasfdj\nAccept: application/sdp\nCSeq: 60 OPTIONS\nVia: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\nVia: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\nVia: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\nVia: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\nVia: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\nl: 0", "");
    let m = parsed(&bytes);
    let transports: Vec<_> = m.all(Name::Via).filter_map(Via::parse).map(|v| v.transport).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

/// §3.1.1.11 mpart01: a multipart body is opaque; Content-Length bounds it exactly.
#[test]
fn mpart01() {
    let body = "--boundary42\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--boundary42\r\nContent-Type: application/pkcs7-signature\r\n\r\n\u{1}\u{2}\u{0}\u{ff}\r\n--boundary42--\r\n";
    let bytes = msg(&format!("MESSAGE sip:kumiko@example.org SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\nMax-Forwards: 70\nRoute: <sip:127.0.0.1:5080>\nContact: <sip:fluffy@127.0.0.1:5070>\nTo: <sip:kumiko@example.org>\nFrom: <sip:fluffy@example.com>;tag=2fb0dcc9\nCall-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..\nCSeq: 1 MESSAGE\nContent-Type: multipart/signed;boundary=boundary42\nContent-Length: {}", body.len()), body);
    assert_eq!(parsed(&bytes).body, body.as_bytes());
}

/// §3.1.1.12 unreason and §3.1.1.13 noreason: any UTF-8 reason phrase, or none at all.
#[test]
fn unreason_noreason() {
    let reason = "= 2**3 * 5**2 но сто девяносто девять - простое";
    let bytes = msg(&format!("SIP/2.0 200 {reason}\nVia: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\nCall-ID: unreason.1234ksdfak3j2erwedfsASdf\nCSeq: 35 INVITE\nFrom: sip:user@example.com;tag=11141343\nTo: sip:user@example.edu;tag=2229\nContent-Length: 0"), "");
    let m = parsed(&bytes);
    assert_eq!((m.status(), m.reason()), (Some(200), reason));
    let bytes = msg("SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nCall-ID: noreason.asndj203insdf99223ndf\nCSeq: 35 INVITE\nFrom: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0", "");
    let m = parsed(&bytes);
    assert_eq!((m.status(), m.reason()), (Some(100), ""));
}

// ---- §3.1.2: invalid messages, which must be refused (and never panic) ---------------

fn refused_by_parser(bytes: &[u8], want: ParseError) {
    assert_eq!(parse(bytes).unwrap_err(), want, "{}", String::from_utf8_lossy(bytes));
}

fn refused_by_core(bytes: &[u8], want: Invalid) {
    assert_eq!(parsed(bytes).core().unwrap_err(), want);
}

const HEADERS: &str = "To: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=134161461246\nMax-Forwards: 7\nCall-ID: torture.0ha0isndaksdjasdf3234nas\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw";

/// §3.1.2.1 badinv01: extraneous separators leave a Via with no sent-by.
#[test]
fn badinv01() {
    let bytes = msg("INVITE sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP ;;,;,,\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=134161461246\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\nCSeq: 8 INVITE\nContent-Length: 0", "");
    refused_by_core(&bytes, Invalid::Malformed("Via"));
}

/// §3.1.2.2 clerr: Content-Length larger than the datagram: discarded (RFC 3261 §18.3).
#[test]
fn clerr() {
    let bytes = msg(
        &format!("INVITE sip:user@example.com SIP/2.0\n{HEADERS}\nCSeq: 8 INVITE\nContent-Length: 9999"),
        "v=0\r\n",
    );
    refused_by_parser(&bytes, ParseError::TruncatedBody);
}

/// §3.1.2.3 scalar02: a negative Content-Length.
#[test]
fn scalar02() {
    let bytes =
        msg(&format!("REGISTER sip:example.com SIP/2.0\n{HEADERS}\nCSeq: 8 REGISTER\nContent-Length: -999"), "");
    refused_by_parser(&bytes, ParseError::BadContentLength);
}

/// §3.1.2.4 scalarlg: a CSeq number that overflows 32 bits.
#[test]
fn scalarlg() {
    let bytes =
        msg(&format!("REGISTER sip:example.com SIP/2.0\n{HEADERS}\nCSeq: 36893488147419103232 REGISTER\nl: 0"), "");
    refused_by_core(&bytes, Invalid::Malformed("CSeq"));
}

/// §3.1.2.5 quotbal: an unterminated quoted display name.
#[test]
fn quotbal() {
    let bytes = msg("INVITE sip:user@example.com SIP/2.0\nTo: \"Mr. J. User <sip:j.user@example.com>\nFrom: sip:caller@example.net;tag=93334\nMax-Forwards: 10\nCall-ID: quotbal.aksdj\nVia: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\nCSeq: 8 INVITE\nl: 0", "");
    refused_by_core(&bytes, Invalid::Malformed("To"));
}

/// §3.1.2.6 ltgtruri, §3.1.2.7 lwsruri, §3.1.2.8 lwsstart, §3.1.2.9 trws: a Request-URI in
/// `<>`, LWS inside it, several SP between elements, SP at the end of the Request-Line.
#[test]
fn request_line_shapes() {
    for line in [
        "INVITE <sip:user@example.com> SIP/2.0",
        "INVITE sip:user@example.com; lr SIP/2.0",
        "INVITE  sip:user@example.com  SIP/2.0",
        "OPTIONS sip:remote-target@example.com SIP/2.0  ",
    ] {
        let bytes = msg(&format!("{line}\n{HEADERS}\nCSeq: 8 INVITE\nl: 0"), "");
        refused_by_parser(&bytes, ParseError::BadStartLine);
    }
}

/// §3.1.2.10 escruri: a headers part in a SIP Request-URI (RFC 3261 §19.1.1 forbids it).
#[test]
fn escruri() {
    let bytes = msg(
        &format!("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\n{HEADERS}\nCSeq: 8 INVITE\nl: 0"),
        "",
    );
    refused_by_parser(&bytes, ParseError::BadStartLine);
}

/// §3.1.2.16 badvers: an unknown SIP version is kept, so the request can be answered 505.
#[test]
fn badvers() {
    let bytes = msg(&format!("OPTIONS sip:t.watson@example.org SIP/7.0\n{HEADERS}\nCSeq: 8 OPTIONS\nl: 0"), "");
    assert_eq!(parsed(&bytes).version, "SIP/7.0");
}

/// §3.1.2.17 mismatch01 and §3.1.2.18 mismatch02: the CSeq method must match the request's.
#[test]
fn mismatch() {
    for (line, cseq) in
        [("OPTIONS sip:user@example.com SIP/2.0", "INVITE"), ("NEWMETHOD sip:user@example.com SIP/2.0", "INVITE")]
    {
        let bytes = msg(&format!("{line}\n{HEADERS}\nCSeq: 8 {cseq}\nl: 0"), "");
        refused_by_core(&bytes, Invalid::CSeqMethodMismatch);
    }
}

/// §3.1.2.19 bigcode: a response code far out of range.
#[test]
fn bigcode() {
    let bytes = msg(&format!("SIP/2.0 4294967301 better not break the receiver\n{HEADERS}\nCSeq: 8 INVITE\nl: 0"), "");
    refused_by_parser(&bytes, ParseError::BadStartLine);
}

/// §3.1.2.11 (insuf): required header fields missing.
#[test]
fn insuf() {
    let bytes = msg("INVITE sip:user@example.com SIP/2.0\nCSeq: 193942 INVITE\nVia: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\nContent-Length: 0", "");
    refused_by_core(&bytes, Invalid::Missing("Call-ID"));
}
