//! The tokens a shard mints: Via branches and To-tags. Each names the shard that owns it,
//! so any shard can tell where a response or an in-dialog request belongs by reading it.

use crate::sip::header::cut;
use std::hash::BuildHasher;

/// Mints the tokens this shard hands out. Branches carry the shard and the call, so a
/// response finds its call without a table lookup.
pub struct Ids {
    shard: u16,
    seq: u64,
    pub rng: fastrand::Rng,
    /// Keyed, so a peer cannot choose branches that collide.
    txn_hasher: std::hash::RandomState,
}

const BRANCH_PREFIX: &str = "z9hG4bK-bt";
const TAG_PREFIX: &str = "bt";

impl Ids {
    pub fn new(shard: u16, seed: u64) -> Ids {
        Ids { shard, seq: 0, rng: fastrand::Rng::with_seed(seed), txn_hasher: std::hash::RandomState::new() }
    }

    /// Names a server transaction by its request's branch and method (RFC 3261 §17.2.3).
    pub fn txn(&self, branch: &str, method: &str) -> u64 {
        self.txn_hasher.hash_one((branch, method))
    }

    pub fn shard(&self) -> u16 {
        self.shard
    }

    pub fn branch(&mut self, call: u64) -> String {
        self.seq += 1;
        let mut b = String::with_capacity(BRANCH_PREFIX.len() + 40);
        b.push_str(BRANCH_PREFIX);
        push_hex(&mut b, u64::from(self.shard), 1);
        b.push('-');
        push_hex(&mut b, call, 1);
        b.push('-');
        push_hex(&mut b, self.seq, 1);
        b
    }

    pub fn tag(&mut self) -> String {
        let mut t = String::with_capacity(TAG_PREFIX.len() + 18);
        t.push_str(TAG_PREFIX);
        push_hex(&mut t, u64::from(self.shard), 1);
        t.push('-');
        push_hex(&mut t, self.rng.u64(..) >> 16, 12);
        t
    }

    /// A UUID v4, written without the formatting machinery (once per call, it cost more
    /// than the rest of the call's identity).
    pub fn call_sid(&mut self) -> String {
        let uuid = uuid::Builder::from_random_bytes(self.rng.u128(..).to_le_bytes()).into_uuid();
        uuid.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
    }

    /// 32 hex digits.
    pub fn trace_id(&mut self) -> String {
        let mut t = String::with_capacity(32);
        push_hex(&mut t, self.rng.u64(..), 16);
        push_hex(&mut t, self.rng.u64(..), 16);
        t
    }
}

/// Appends `n` in lowercase hex, zero-padded to at least `width` digits (what `{:0width$x}`
/// writes, without the formatting machinery: a branch is minted for every request).
fn push_hex(out: &mut String, n: u64, width: usize) {
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

    #[test]
    fn tokens_name_their_shard() {
        let mut ids = Ids::new(11, 7);
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
}
