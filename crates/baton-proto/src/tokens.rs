//! The tokens a shard mints: Via branches, To-tags, call_sids. Each branch and tag names
//! the shard that owns it, so any shard can tell where a response or an in-dialog request
//! belongs by reading it; each also carries 64 bits from a CSPRNG seeded by the operating
//! system, so an off-path sender cannot predict the next one and two processes never
//! repeat each other's (RFC 3261 §8.1.1.7: unique across space and time).

use crate::sip::header::cut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng, TryRng};
use std::hash::BuildHasher;

/// The seed of one shard's generator: from the operating system in a server
/// ([`Seed::from_os`]), fixed in tests and simulations that must repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// 256 bits from the operating system's CSPRNG.
    pub fn from_os() -> std::io::Result<Seed> {
        let mut seed = [0u8; 32];
        rand::rngs::SysRng.try_fill_bytes(&mut seed).map_err(std::io::Error::other)?;
        Ok(Seed(seed))
    }

    /// A fixed seed: the same tokens on every run (tests, fuzzing, benchmarks).
    pub fn fixed(n: u64) -> Seed {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        Seed(seed)
    }
}

/// Mints the tokens this shard hands out. Branches carry the shard and the call, so a
/// response finds its call without a table lookup; the random part is what makes a
/// response that names it genuine.
pub struct Ids {
    shard: u16,
    rng: StdRng,
    /// Keyed, so a peer cannot choose branches that collide.
    txn_hasher: std::hash::RandomState,
}

const BRANCH_PREFIX: &str = "z9hG4bK-bt";
const TAG_PREFIX: &str = "bt";

impl Ids {
    pub fn new(shard: u16, seed: Seed) -> Ids {
        Ids { shard, rng: StdRng::from_seed(seed.0), txn_hasher: std::hash::RandomState::new() }
    }

    /// Names a server transaction by its request's branch and method (RFC 3261 §17.2.3).
    pub fn txn(&self, branch: &str, method: &str) -> u64 {
        self.txn_hasher.hash_one((branch, method))
    }

    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// 64 unpredictable bits.
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// `z9hG4bK-bt{shard}-{call}-{64 random bits}`.
    pub fn branch(&mut self, call: u64) -> String {
        let mut b = String::with_capacity(BRANCH_PREFIX.len() + 40);
        b.push_str(BRANCH_PREFIX);
        push_hex(&mut b, u64::from(self.shard), 1);
        b.push('-');
        push_hex(&mut b, call, 1);
        b.push('-');
        push_hex(&mut b, self.rng.next_u64(), 16);
        b
    }

    /// `bt{shard}-{64 random bits}`.
    pub fn tag(&mut self) -> String {
        let mut t = String::with_capacity(TAG_PREFIX.len() + 22);
        t.push_str(TAG_PREFIX);
        push_hex(&mut t, u64::from(self.shard), 1);
        t.push('-');
        push_hex(&mut t, self.rng.next_u64(), 16);
        t
    }

    /// A UUID v4, written without the formatting machinery (once per call, it cost more
    /// than the rest of the call's identity).
    pub fn call_sid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        uuid.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
    }

    /// 32 hex digits.
    pub fn trace_id(&mut self) -> String {
        let mut t = String::with_capacity(32);
        push_hex(&mut t, self.rng.next_u64(), 16);
        push_hex(&mut t, self.rng.next_u64(), 16);
        t
    }
}

/// Appends `n` in lowercase hex, zero-padded to at least `width` digits (what `{:0width$x}`
/// writes, without the formatting machinery: a branch is minted for every request).
pub fn push_hex(out: &mut String, n: u64, width: usize) {
    let digits = (64 - n.leading_zeros() as usize).div_ceil(4).max(width).min(16);
    for i in (0..digits).rev() {
        out.push(char::from(b"0123456789abcdef"[((n >> (4 * i)) & 0xf) as usize]));
    }
}

/// The shard and call named by one of our branches.
pub fn parse_branch(branch: &str) -> Option<(u16, u64)> {
    let rest = branch.strip_prefix(BRANCH_PREFIX)?;
    let (shard, rest) = cut(rest, b'-')?;
    let call = cut(rest, b'-').map_or(rest, |(call, _)| call);
    let (shard, call) = (u16::from_str_radix(shard, 16).ok()?, u64::from_str_radix(call, 16).ok()?);
    Some((shard, call))
}

/// The shard named by one of our tags (`bt{shard}-{random}`).
pub fn tag_shard(tag: &str) -> Option<u16> {
    let (shard, random) = tag.strip_prefix(TAG_PREFIX)?.split_once('-')?;
    if random.is_empty() {
        return None;
    }
    u16::from_str_radix(shard, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_name_their_shard() {
        let mut ids = Ids::new(11, Seed::fixed(7));
        let branch = ids.branch(0x2a);
        assert!(branch.starts_with("z9hG4bK"), "RFC 3261 magic cookie");
        assert_eq!(parse_branch(&branch), Some((11, 0x2a)));
        let sid = ids.call_sid();
        let uuid = uuid::Uuid::parse_str(&sid).unwrap();
        assert_eq!((uuid.get_version_num(), uuid.to_string()), (4, sid), "a UUID v4 as Display writes it");
        let trace = ids.trace_id();
        assert!(
            trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{trace}"
        );
        assert_eq!(tag_shard(&ids.tag()), Some(11));
        assert_eq!(parse_branch("z9hG4bK-other-1"), None);
        assert_eq!(tag_shard("as5f2c1"), None);
        assert_eq!(tag_shard("btz-1"), None);
        assert_eq!(tag_shard("bt3-"), None);
        let mut hex = String::new();
        for (n, width) in [(0, 1), (0x2a, 1), (0xabc, 12), (u64::MAX, 1), (1 << 60, 12)] {
            hex.clear();
            push_hex(&mut hex, n, width);
            assert_eq!(hex, format!("{n:0width$x}"));
        }
    }

    /// The random part of a token: what follows its last '-'.
    fn random_part(token: &str) -> &str {
        token.rsplit('-').next().unwrap()
    }

    #[test]
    fn tokens_carry_64_unpredictable_bits() {
        let mut ids = Ids::new(0, Seed::fixed(1));
        let (a, b) = (ids.branch(5), ids.branch(5));
        assert_eq!(random_part(&a).len(), 16, "{a}");
        assert_ne!(a, b, "the same call's next branch is not its last one plus one");
        let (a, b) =
            (u64::from_str_radix(random_part(&a), 16).unwrap(), u64::from_str_radix(random_part(&b), 16).unwrap());
        assert!(a.abs_diff(b) > 1 << 20, "consecutive branches differ in more than a counter: {a:x} {b:x}");
        assert_eq!(random_part(&ids.tag()).len(), 16);
    }

    #[test]
    fn two_processes_never_share_a_sequence() {
        // Two servers (or two restarts of one) seed from the operating system: none of
        // their first thousand branches and tags coincide.
        let mut one = Ids::new(0, Seed::from_os().unwrap());
        let mut two = Ids::new(0, Seed::from_os().unwrap());
        let mine: HashSet<String> = (0..1000).flat_map(|_| [one.branch(1), one.tag()]).collect();
        assert!((0..1000).flat_map(|_| [two.branch(1), two.tag()]).all(|t| !mine.contains(&t)));
        assert_ne!(Seed::from_os().unwrap(), Seed::from_os().unwrap());
    }
}
