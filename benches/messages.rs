//! The messages the benchmarks parse and write: what a transfer puts on the wire.

pub const REFER: &[u8] = b"REFER sip:carrier@192.0.2.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-bt0-1f-2;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:bot@192.0.2.1:5060>;tag=bt0-6a2b6f34a131\r\n\
To: \"Caller\" <sip:+15550001@192.0.2.10:5060>;tag=27542SIPpTag1\r\n\
Call-ID: 1-27542@192.0.2.10\r\n\
CSeq: 1 REFER\r\n\
Contact: <sip:baton@192.0.2.1:5060>\r\n\
Refer-To: <sip:+15083084809@192.0.2.10:5060>\r\n\
Referred-By: \"Caller\" <sip:+15550001@192.0.2.10:5060>\r\n\
Content-Length: 0\r\n\r\n";

pub const NOTIFY: &[u8] = b"NOTIFY sip:baton@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-27542-1-6\r\n\
From: <sip:+15550001@192.0.2.10:5060>;tag=27542SIPpTag1\r\n\
To: <sip:bot@192.0.2.1:5060>;tag=bt0-6a2b6f34a131\r\n\
Call-ID: 1-27542@192.0.2.10\r\n\
CSeq: 3 NOTIFY\r\n\
Contact: <sip:carrier@192.0.2.10:5060>\r\n\
Max-Forwards: 70\r\n\
Event: refer;id=1\r\n\
Subscription-State: terminated;reason=noresource\r\n\
Content-Type: message/sipfrag;version=2.0\r\n\
Content-Length: 16\r\n\r\n\
SIP/2.0 200 OK\r\n";

pub const INVITE: &[u8] = b"INVITE sip:bot@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-27542-1-0\r\n\
From: \"Caller\" <sip:+15550001@192.0.2.10:5060>;tag=27542SIPpTag1\r\n\
To: <sip:bot@192.0.2.1:5060>\r\n\
Call-ID: 1-27542@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:carrier@192.0.2.10:5060>\r\n\
Max-Forwards: 70\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER\r\n\
Supported: timer, replaces\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 135\r\n\r\n\
v=0\r\no=carrier 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";

pub const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-bt0-1f-3;rport\r\n\
From: <sip:bot@192.0.2.1:5060>;tag=bt0-6a2b6f34a131\r\n\
To: \"Caller\" <sip:+15550001@192.0.2.10:5060>;tag=27542SIPpTag1\r\n\
Call-ID: 1-27542@192.0.2.10\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n";
