//! The next hop's Ethernet address: the kernel's route to the destination (rtnetlink
//! `RTM_GETROUTE`: its gateway, or the destination itself when it is on the link), then
//! that hop's entry in the neighbour table (`RTM_GETNEIGH`). Both are read again when the
//! kernel announces a change to either (a netlink socket joined to its neighbour and route
//! groups, which the shard's wait watches), every `REFRESH` in any case, and the table
//! when an address is missing (at most every `MISS_AGAIN`). Until an address is known, or when the
//! route leaves by another interface, datagrams go through the kernel's socket, whose
//! sending makes the kernel resolve the hop (ARP or neighbour discovery).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const REFRESH: Duration = Duration::from_secs(5);
const MISS_AGAIN: Duration = Duration::from_millis(100);
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// NUD_REACHABLE, STALE, DELAY, PROBE, NOARP, PERMANENT: an address that can be used.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// A NETLINK_ROUTE socket, joined to `groups` (0: none, for requests).
fn netlink(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if groups != 0 {
        // SAFETY: sockaddr_nl is plain data; all-zero is valid before the fields are set.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = groups;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
        // SAFETY: binds our socket to a sockaddr_nl of the size given.
        if unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Destinations whose route is kept; past it, the stale ones are forgotten.
const MAX_ROUTES: usize = 4096;

pub struct Neighbours {
    sock: OwnedFd,
    /// The kernel's announcements of neighbour and route changes.
    changes: OwnedFd,
    ifindex: u32,
    table: HashMap<IpAddr, [u8; 6]>,
    read_at: Option<Instant>,
    /// Destination -> the hop on our interface (None: the route leaves by another), and
    /// when it was looked up.
    routes: HashMap<IpAddr, (Option<IpAddr>, Instant)>,
    seq: u32,
}

impl Neighbours {
    pub fn new(ifindex: u32) -> io::Result<Neighbours> {
        let sock = netlink(0)?;
        let changes = netlink(RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)?;
        Ok(Neighbours { sock, changes, ifindex, table: HashMap::new(), read_at: None, routes: HashMap::new(), seq: 0 })
    }

    /// Readable when the kernel announced a change: then call [`Neighbours::changed`].
    pub fn changes_fd(&self) -> i32 {
        self.changes.as_raw_fd()
    }

    /// Reads the announcements waiting and forgets what they may have changed: the next
    /// lookups ask the kernel again.
    pub fn changed(&mut self) {
        let mut buf = [0u8; 8192];
        // SAFETY: receives into our buffer, within its length, without blocking.
        while unsafe { libc::recv(self.changes.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
            > 0
        {}
        self.read_at = None;
        self.routes.clear();
    }

    /// The Ethernet address to send a frame for `dst` to, if it leaves by our interface and
    /// the kernel knows its next hop.
    pub fn mac(&mut self, dst: IpAddr, now: Instant) -> Option<[u8; 6]> {
        let hop = match self.routes.get(&dst) {
            Some((hop, at)) if now.saturating_duration_since(*at) < REFRESH => *hop,
            _ => {
                if self.routes.len() >= MAX_ROUTES {
                    self.routes.retain(|_, (_, at)| now.saturating_duration_since(*at) < REFRESH);
                }
                let hop = self.route(dst).unwrap_or_else(|e| {
                    tracing::debug!(error = %e, %dst, "route lookup");
                    None
                });
                self.routes.insert(dst, (hop, now));
                hop
            }
        }?;
        self.neighbour(hop, now)
    }

    /// The hop on our interface the kernel's route to `dst` goes through.
    fn route(&mut self, dst: IpAddr) -> io::Result<Option<IpAddr>> {
        let (family, octets): (u8, Vec<u8>) = match dst {
            IpAddr::V4(v4) => (libc::AF_INET as u8, v4.octets().to_vec()),
            IpAddr::V6(v6) => (libc::AF_INET6 as u8, v6.octets().to_vec()),
        };
        let mut body = vec![family, (octets.len() * 8) as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&((4 + octets.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&RTA_DST.to_ne_bytes());
        body.extend_from_slice(&octets);
        self.request(RTM_GETROUTE, NLM_F_REQUEST, &body)?;
        let mut buf = vec![0u8; 8192];
        // SAFETY: receives into our buffer, within its length.
        let n = unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(parse_route(&buf[..n as usize], self.ifindex).map(|gw| gw.unwrap_or(dst)))
    }

    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = Vec::with_capacity(16 + body.len());
        req.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&flags.to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(body);
        // SAFETY: sends our buffer on our socket (to the kernel: the default address).
        if unsafe { libc::send(self.sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The Ethernet address of the hop `ip` on our interface, if the kernel knows it.
    fn neighbour(&mut self, ip: IpAddr, now: Instant) -> Option<[u8; 6]> {
        let age = self.read_at.map(|t| now.saturating_duration_since(t));
        let stale = age.is_none_or(|a| a >= REFRESH);
        let missing = !self.table.contains_key(&ip) && age.is_none_or(|a| a >= MISS_AGAIN);
        if stale || missing {
            self.read_at = Some(now);
            if let Err(e) = self.read() {
                tracing::debug!(error = %e, "reading the neighbour table");
            }
        }
        self.table.get(&ip).copied()
    }

    fn read(&mut self) -> io::Result<()> {
        // struct ndmsg: any family, any interface.
        self.request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, &[0u8; 12])?;
        let mut table = HashMap::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: receives into our buffer, within its length.
            let n = unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            match parse_dump(&buf[..n as usize], self.ifindex, &mut table) {
                Dump::More => {}
                Dump::Done => break,
                Dump::Error(code) => return Err(io::Error::from_raw_os_error(code)),
            }
        }
        self.table = table;
        Ok(())
    }
}

enum Dump {
    More,
    Done,
    Error(i32),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads one batch of a neighbour dump into `table` (entries of `ifindex` that can be used).
fn parse_dump(mut b: &[u8], ifindex: u32, table: &mut HashMap<IpAddr, [u8; 6]>) -> Dump {
    while let (Some(len), Some(kind)) = (u32_at(b, 0), u16_at(b, 4)) {
        let len = len as usize;
        if len < 16 || len > b.len() {
            return Dump::Done;
        }
        let msg = &b[16..len];
        match kind {
            NLMSG_DONE => return Dump::Done,
            NLMSG_ERROR => {
                let code = u32_at(msg, 0).map_or(0, |c| c as i32);
                return if code == 0 { Dump::Done } else { Dump::Error(-code) };
            }
            RTM_NEWNEIGH => {
                if let Some((ip, mac)) = entry(msg, ifindex) {
                    table.insert(ip, mac);
                }
            }
            _ => {}
        }
        b = b.get((len + 3) & !3..).unwrap_or_default();
    }
    Dump::More
}

/// The answer to a route request: `Some(gateway)` when the route leaves by `ifindex`
/// (`None` inside: the destination is on the link), `None` when it leaves elsewhere or the
/// answer is not a route.
fn parse_route(b: &[u8], ifindex: u32) -> Option<Option<IpAddr>> {
    let (len, kind) = (u32_at(b, 0)? as usize, u16_at(b, 4)?);
    if kind != RTM_NEWROUTE || len > b.len() {
        return None;
    }
    let mut attrs = b.get(16 + 12..len)?;
    let (mut oif, mut gateway) = (None, None);
    while let (Some(alen), Some(akind)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
        let alen = usize::from(alen);
        let value = attrs.get(4..alen)?;
        match (akind, value.len()) {
            (RTA_OIF, 4) => oif = u32_at(value, 0),
            (RTA_GATEWAY, 4) => gateway = Some(IpAddr::V4(Ipv4Addr::new(value[0], value[1], value[2], value[3]))),
            (RTA_GATEWAY, 16) => gateway = <[u8; 16]>::try_from(value).ok().map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => {}
        }
        attrs = attrs.get((alen + 3) & !3..)?;
    }
    (oif == Some(ifindex)).then_some(gateway)
}

/// One `ndmsg` and its attributes: the address and Ethernet address of a usable entry.
fn entry(msg: &[u8], ifindex: u32) -> Option<(IpAddr, [u8; 6])> {
    let (index, state) = (u32_at(msg, 4)?, u16_at(msg, 8)?);
    if index != ifindex || state & NUD_VALID == 0 {
        return None;
    }
    let (mut ip, mut mac) = (None, None);
    let mut attrs = msg.get(12..)?;
    while let (Some(len), Some(kind)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
        let len = usize::from(len);
        let value = attrs.get(4..len)?;
        match (kind, value.len()) {
            (NDA_DST, 4) => ip = Some(IpAddr::V4(Ipv4Addr::new(value[0], value[1], value[2], value[3]))),
            (NDA_DST, 16) => ip = <[u8; 16]>::try_from(value).ok().map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            (NDA_LLADDR, 6) => mac = <[u8; 6]>::try_from(value).ok(),
            _ => {}
        }
        attrs = attrs.get((len + 3) & !3..)?;
    }
    Some((ip?, mac?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn message(ifindex: u32, state: u16, ip: &[u8], mac: &[u8]) -> Vec<u8> {
        let mut body = vec![2, 0, 0, 0];
        body.extend_from_slice(&ifindex.to_ne_bytes());
        body.extend_from_slice(&state.to_ne_bytes());
        body.extend_from_slice(&[0, 1]);
        body.extend(attr(NDA_DST, ip));
        body.extend(attr(NDA_LLADDR, mac));
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend(body);
        m
    }

    fn route(oif: u32, gateway: Option<[u8; 4]>) -> Vec<u8> {
        let mut body = vec![2, 32, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];
        body.extend(attr(RTA_DST, &[198, 51, 100, 7]));
        body.extend(attr(RTA_OIF, &oif.to_ne_bytes()));
        if let Some(g) = gateway {
            body.extend(attr(RTA_GATEWAY, &g));
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn routes_name_the_hop_on_our_interface() {
        assert_eq!(parse_route(&route(3, None), 3), Some(None), "on the link");
        assert_eq!(parse_route(&route(3, Some([10, 77, 0, 254])), 3), Some(Some("10.77.0.254".parse().unwrap())));
        assert_eq!(parse_route(&route(4, Some([10, 0, 0, 1])), 3), None, "leaves by another interface");
        assert_eq!(parse_route(&route(3, None)[..12], 3), None);
    }

    #[test]
    fn usable_entries_of_our_interface_are_read() {
        let mut batch = message(3, 0x02, &[10, 77, 0, 2], &[2, 0, 0, 0, 0, 2]);
        batch.extend(message(3, 0x20, &[10, 77, 0, 3], &[2, 0, 0, 0, 0, 3])); // FAILED
        batch.extend(message(4, 0x02, &[10, 77, 0, 4], &[2, 0, 0, 0, 0, 4])); // another interface
        let mut table = HashMap::new();
        assert!(matches!(parse_dump(&batch, 3, &mut table), Dump::More));
        assert_eq!(table.len(), 1);
        assert_eq!(table[&"10.77.0.2".parse::<IpAddr>().unwrap()], [2, 0, 0, 0, 0, 2]);
        let mut done = vec![20, 0, 0, 0];
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0; 14]);
        assert!(matches!(parse_dump(&done, 3, &mut table), Dump::Done));
        assert!(matches!(parse_dump(&batch[..10], 3, &mut table), Dump::Done), "a malformed batch ends the read");
    }
}
