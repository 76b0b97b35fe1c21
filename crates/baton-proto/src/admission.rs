//! Who may start a call, and how fast (docs/security.md, "Admission"). Sans-IO: each shard
//! keeps its own table of sources and is handed `now`. A source is an IP address; its new
//! INVITEs draw from a token bucket, and its calls not yet confirmed by an ACK are capped, so
//! a scanner or a flood from one address cannot take the room real calls need. Limits are
//! per source across the whole server; each shard enforces its share (a source's INVITEs
//! spread over the shards by Call-ID).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s.split_once('/').map_or((s, None), |(ip, p)| (ip, Some(p)));
        let net: IpAddr = ip.trim().parse().map_err(|_| format!("{s:?}: not an IP address or CIDR network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be a number from 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer reaching an IPv6 socket arrives mapped (::ffff:a.b.c.d).
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32u32),
            IpAddr::V6(v6) => (u128::from(v6), 128u32),
        };
        let ((net, width), (addr, addr_width)) = (bits(self.net), bits(ip));
        if width != addr_width {
            return false;
        }
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
        net & mask == addr & mask
    }
}

/// The edge's limits, for the whole server (each shard takes its share).
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeLimits {
    /// New INVITEs a second from one source address, sustained; 0 turns the bucket off.
    pub invite_rate: f64,
    /// New INVITEs one source may send at once above the rate.
    pub invite_burst: f64,
    /// Calls from one source not yet confirmed by an ACK (waiting for the application, or
    /// answered and waiting for the ACK); 0 turns the cap off.
    pub unconfirmed: usize,
    /// INVITEs only from these networks; empty: from anywhere.
    pub allow: Vec<Cidr>,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits { invite_rate: 1000.0, invite_burst: 2000.0, unconfirmed: 2000, allow: Vec::new() }
    }
}

impl EdgeLimits {
    /// A lab: one load generator calls from one address faster than any trunk would. The
    /// checks still run on every call (their cost is measured), and admit it.
    pub fn lab() -> EdgeLimits {
        EdgeLimits { invite_rate: 1e9, invite_burst: 1e9, unconfirmed: 1 << 30, allow: Vec::new() }
    }
}

/// Why a new call was refused, as `/metrics` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The source is not in `--allow` (403).
    NotAllowed,
    /// The source sends INVITEs faster than its bucket refills (503).
    SourceRate,
    /// The source has too many calls waiting for their ACK (503).
    SourceUnconfirmed,
}

impl Refusal {
    /// Every refusal, in [`crate::Stats::edge_refused`]'s order.
    pub const ALL: [Refusal; 3] = [Refusal::NotAllowed, Refusal::SourceRate, Refusal::SourceUnconfirmed];

    /// The `reason` label of `baton_calls_rejected_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "not_allowed",
            Refusal::SourceRate => "source_rate",
            Refusal::SourceUnconfirmed => "source_unconfirmed",
        }
    }
}

struct Source {
    tokens: f64,
    refilled: Instant,
    unconfirmed: u32,
}

/// Sources the table forgets first once it holds this many: those with a full bucket and no
/// call waiting (a source with calls is bounded by the calls themselves).
const SOURCES: usize = 65_536;

/// One shard's view of the sources that call it.
pub struct Sources {
    rate: f64,
    burst: f64,
    unconfirmed: u32,
    allow: Vec<Cidr>,
    table: HashMap<IpAddr, Source>,
}

impl Sources {
    /// This shard's share of `limits` when the server has `shards` shards.
    pub fn new(limits: &EdgeLimits, shards: usize) -> Sources {
        let share = shards.max(1) as f64;
        Sources {
            rate: limits.invite_rate / share,
            burst: (limits.invite_burst / share).max(1.0),
            unconfirmed: (limits.unconfirmed as f64 / share).ceil() as u32,
            allow: limits.allow.clone(),
            table: HashMap::new(),
        }
    }

    /// Whether a new call from `ip` may start now; when it may, it counts as unconfirmed
    /// until [`Sources::confirmed`].
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> Result<(), Refusal> {
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(ip)) {
            return Err(Refusal::NotAllowed);
        }
        if self.rate <= 0.0 && self.unconfirmed == 0 {
            return Ok(());
        }
        if self.table.len() >= SOURCES && !self.table.contains_key(&ip) {
            self.forget_idle(now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let source = self.table.entry(ip).or_insert(Source { tokens: burst, refilled: now, unconfirmed: 0 });
        if self.unconfirmed > 0 && source.unconfirmed >= self.unconfirmed {
            return Err(Refusal::SourceUnconfirmed);
        }
        if rate > 0.0 {
            let elapsed = now.saturating_duration_since(source.refilled).as_secs_f64();
            source.tokens = (source.tokens + elapsed * rate).min(burst);
            source.refilled = now;
            if source.tokens < 1.0 {
                return Err(Refusal::SourceRate);
            }
            source.tokens -= 1.0;
        }
        source.unconfirmed += 1;
        Ok(())
    }

    /// A call [`Sources::admit`] let in was confirmed by its ACK, or ended without one.
    pub fn confirmed(&mut self, ip: IpAddr) {
        if let Some(source) = self.table.get_mut(&ip) {
            source.unconfirmed = source.unconfirmed.saturating_sub(1);
        }
    }

    fn forget_idle(&mut self, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        let full = |s: &Source| {
            rate <= 0.0 || s.tokens + now.saturating_duration_since(s.refilled).as_secs_f64() * rate >= burst
        };
        self.table.retain(|_, s| s.unconfirmed > 0 || !full(s));
        if self.table.len() >= SOURCES {
            // Every source is busy or still refilling: the quietest go.
            self.table.retain(|_, s| s.unconfirmed > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped peers on an IPv6 socket");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")) && !v6.contains(ip("10.0.0.1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("203.0.113.1")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let limits = EdgeLimits { invite_rate: 100.0, invite_burst: 10.0, unconfirmed: 0, allow: Vec::new() };
        let mut s = Sources::new(&limits, 1);
        let t0 = Instant::now();
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!((0..10).all(|_| s.admit(t0, a).is_ok()));
        assert_eq!(s.admit(t0, a), Err(Refusal::SourceRate));
        assert!(s.admit(t0, b).is_ok(), "another source is not affected");
        // 100/s: one more every 10 ms.
        assert_eq!(s.admit(t0 + Duration::from_millis(9), a), Err(Refusal::SourceRate));
        assert!(s.admit(t0 + Duration::from_millis(11), a).is_ok());
        // Two shards: each takes half.
        let mut half = Sources::new(&limits, 2);
        assert_eq!((0..20).filter(|_| half.admit(t0, a).is_ok()).count(), 5);
    }

    #[test]
    fn unconfirmed_calls_are_capped_per_source() {
        let limits = EdgeLimits { invite_rate: 0.0, invite_burst: 0.0, unconfirmed: 3, allow: Vec::new() };
        let mut s = Sources::new(&limits, 1);
        let (t0, a) = (Instant::now(), ip("192.0.2.1"));
        assert!((0..3).all(|_| s.admit(t0, a).is_ok()));
        assert_eq!(s.admit(t0, a), Err(Refusal::SourceUnconfirmed));
        s.confirmed(a);
        assert!(s.admit(t0, a).is_ok(), "an ACK makes room");
    }

    #[test]
    fn only_allowed_networks_start_calls() {
        let limits = EdgeLimits { allow: vec!["10.0.0.0/8".parse().unwrap()], ..EdgeLimits::default() };
        let mut s = Sources::new(&limits, 1);
        assert!(s.admit(Instant::now(), ip("10.9.9.9")).is_ok());
        assert_eq!(s.admit(Instant::now(), ip("203.0.113.5")), Err(Refusal::NotAllowed));
    }

    #[test]
    fn the_table_forgets_idle_sources_first() {
        let limits = EdgeLimits { invite_rate: 1000.0, invite_burst: 1.0, unconfirmed: 10, allow: Vec::new() };
        let mut s = Sources::new(&limits, 1);
        let t0 = Instant::now();
        let busy = ip("192.0.2.1");
        assert!(s.admit(t0, busy).is_ok());
        for i in 0..SOURCES as u32 {
            let ip = IpAddr::V4((0x0a00_0000 + i).into());
            assert!(s.admit(t0, ip).is_ok());
            s.confirmed(ip);
        }
        assert!(s.table.len() <= SOURCES);
        assert!(s.admit(t0 + Duration::from_secs(1), ip("198.51.100.1")).is_ok());
        assert!(s.table.len() < SOURCES / 2, "idle sources forgotten: {}", s.table.len());
        assert_eq!(s.table.get(&busy).map(|b| b.unconfirmed), Some(1), "a source with a call stays");
    }
}
