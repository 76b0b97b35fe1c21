//! Ethernet frames carrying UDP over IPv4 or IPv6, as the AF_XDP rings hold them: read in
//! place (the payload is borrowed from the frame), and written with every header and
//! checksum, since no kernel stack touches them (docs/operating.md, "Kernel bypass").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const ETH: usize = 14;
const V4: usize = 20;
const V6: usize = 40;
const UDP: usize = 8;
const ETHERTYPE_V4: u16 = 0x0800;
const ETHERTYPE_V6: u16 = 0x86dd;
const PROTO_UDP: u8 = 17;

/// A UDP datagram found in a frame.
pub struct Udp<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// The UDP datagram in `frame`, if it holds one baton should read: IPv4 without options
/// or fragmentation, or IPv6 with UDP as the next header, and lengths that agree with the
/// frame. Anything else is `None` (the XDP program passes such frames to the kernel
/// anyway; this is the second line).
pub fn parse(frame: &[u8]) -> Option<Udp<'_>> {
    let (src, dst, udp) = match u16_at(frame, 12)? {
        ETHERTYPE_V4 => {
            let ip = frame.get(ETH..ETH + V4)?;
            let total = usize::from(u16_at(ip, 2)?);
            let fragmented = u16_at(ip, 6)? & 0x3fff != 0;
            if ip[0] != 0x45 || ip[9] != PROTO_UDP || fragmented || total < V4 + UDP {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            (src, dst, frame.get(ETH + V4..ETH + total)?)
        }
        ETHERTYPE_V6 => {
            let ip = frame.get(ETH..ETH + V6)?;
            let payload = usize::from(u16_at(ip, 4)?);
            if ip[6] != PROTO_UDP || payload < UDP {
                return None;
            }
            let addr = |at: usize| -> Option<IpAddr> {
                let bytes: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(bytes)))
            };
            (addr(8)?, addr(24)?, frame.get(ETH + V6..ETH + V6 + payload)?)
        }
        _ => return None,
    };
    let len = usize::from(u16_at(udp, 4)?);
    if len < UDP || len > udp.len() {
        return None;
    }
    let src = SocketAddr::new(src, u16_at(udp, 0)?);
    let dst = SocketAddr::new(dst, u16_at(udp, 2)?);
    Some(Udp { src, dst, payload: &udp[UDP..len] })
}

/// The Ethernet addresses of a frame to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Macs {
    pub src: [u8; 6],
    pub dst: [u8; 6],
}

/// Bytes of headers in front of a payload sent from `src`.
pub fn overhead(src: &SocketAddr) -> usize {
    ETH + UDP + if src.is_ipv4() { V4 } else { V6 }
}

/// Ones' complement sum of `bytes` as 16-bit words (RFC 1071), added to `sum`.
fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes a whole frame into `out` (cleared first): Ethernet, IP (TTL/hop limit 64, IPv4
/// with DF set, as the kernel sends UDP when the path allows it) and UDP, with the IPv4
/// header checksum and the UDP checksum computed. `None` when `src` and `dst` are of
/// different families or the datagram is too long for one IP packet.
pub fn write(out: &mut Vec<u8>, macs: Macs, src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Option<()> {
    let udp_len = u16::try_from(UDP + payload.len()).ok()?;
    out.clear();
    out.extend_from_slice(&macs.dst);
    out.extend_from_slice(&macs.src);
    let pseudo = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(V4 + usize::from(udp_len)).ok()?;
            out.extend_from_slice(&ETHERTYPE_V4.to_be_bytes());
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, PROTO_UDP, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let check = fold(sum(0, &out[start..]));
            out[start + 10..start + 12].copy_from_slice(&check.to_be_bytes());
            sum(sum(0, &s.octets()), &d.octets()) + u32::from(PROTO_UDP) + u32::from(udp_len)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&ETHERTYPE_V6.to_be_bytes());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[PROTO_UDP, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            sum(sum(0, &s.octets()), &d.octets()) + u32::from(PROTO_UDP) + u32::from(udp_len)
        }
        _ => return None,
    };
    let udp = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    // A computed 0 is sent as all ones (RFC 768): 0 would mean "no checksum".
    let check = match fold(sum(pseudo, &out[udp..])) {
        0 => 0xffff,
        c => c,
    };
    out[udp + 6..udp + 8].copy_from_slice(&check.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACS: Macs = Macs { src: [2, 0, 0, 0, 0, 1], dst: [2, 0, 0, 0, 0, 2] };

    /// A frame is valid when its checksums verify: the IPv4 header sums to all ones, and
    /// so does the UDP checksum over the pseudo-header and the datagram.
    fn verifies(frame: &[u8]) -> bool {
        let (ip, l4, pseudo) = if u16_at(frame, 12) == Some(ETHERTYPE_V4) {
            let ip = &frame[ETH..ETH + V4];
            let l4 = &frame[ETH + V4..];
            let len = l4.len() as u32;
            (Some(ip), l4, sum(sum(0, &ip[12..16]), &ip[16..20]) + 17 + len)
        } else {
            let ip = &frame[ETH..ETH + V6];
            let l4 = &frame[ETH + V6..];
            (None, l4, sum(sum(0, &ip[8..24]), &ip[24..40]) + 17 + l4.len() as u32)
        };
        ip.is_none_or(|ip| fold(sum(0, ip)) == 0) && fold(sum(pseudo, l4)) == 0
    }

    #[test]
    fn written_frames_parse_back_with_valid_checksums() {
        let mut out = Vec::new();
        for (src, dst) in [("10.77.0.1:5060", "10.77.0.2:40000"), ("[fd00::1]:5060", "[fd00::2]:40000")] {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            for payload in [&b""[..], b"x", b"OPTIONS sip:a SIP/2.0\r\n\r\n"] {
                write(&mut out, MACS, src, dst, payload).unwrap();
                assert_eq!(out.len(), overhead(&src) + payload.len());
                assert!(verifies(&out), "{src} {payload:?}");
                let udp = parse(&out).unwrap();
                assert_eq!((udp.src, udp.dst, udp.payload), (src, dst, payload));
            }
        }
        assert!(write(&mut out, MACS, "10.0.0.1:1".parse().unwrap(), "[::1]:1".parse().unwrap(), b"x").is_none());
        assert!(
            write(&mut out, MACS, "10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap(), &[0; 70_000]).is_none()
        );
    }

    #[test]
    fn a_known_checksum() {
        // Worked by hand from RFC 1071's rules: 10.0.0.1:1 -> 10.0.0.2:2, payload "ab".
        let mut out = Vec::new();
        write(&mut out, MACS, "10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap(), b"ab").unwrap();
        // pseudo: 0a00+0001+0a00+0002+0011+000a = 0x141e; udp: 0001+0002+000a+0000+6162 = 0x616f
        // total 0x758d -> !0x758d = 0x8a72
        assert_eq!(&out[ETH + V4 + 6..ETH + V4 + 8], &[0x8a, 0x72]);
    }

    #[test]
    fn what_is_not_ours_is_not_read() {
        let mut out = Vec::new();
        write(&mut out, MACS, "10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap(), b"hello").unwrap();
        let mut fragment = out.clone();
        fragment[ETH + 6] = 0x20; // more fragments
        assert!(parse(&fragment).is_none());
        let mut tcp = out.clone();
        tcp[ETH + 9] = 6;
        assert!(parse(&tcp).is_none());
        let mut options = out.clone();
        options[ETH] = 0x46;
        assert!(parse(&options).is_none());
        let mut long = out.clone();
        long[ETH + V4 + 4..ETH + V4 + 6].copy_from_slice(&100u16.to_be_bytes());
        assert!(parse(&long).is_none(), "a UDP length past the frame");
        assert!(parse(&out[..20]).is_none());
        let mut arp = out.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(parse(&arp).is_none());
    }
}
