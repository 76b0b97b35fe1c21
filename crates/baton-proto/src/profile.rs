//! Trunk profiles (docs/behaviour.md §8): what one carrier's trunk needs of a transfer. A
//! call is matched to a profile once, when its INVITE arrives, by where it came from (and,
//! when the profile says, the host it dialled); its REFERs are then written the profile's
//! way. A call no profile matches is transferred as its application wrote it.

use crate::admission::Cidr;
use crate::app::{ByeAfter, Headers};
use crate::sip::uri::starts_with_ci;
use crate::sip::write::{address, Unwritable};
use std::net::IpAddr;
use std::time::Duration;

/// One carrier's trunk.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrunkProfile {
    /// Named in logs and in `baton check --config`.
    pub name: String,
    /// Calls from these networks use the profile.
    pub sources: Vec<Cidr>,
    /// And, when set, only those whose Request-URI names this host.
    pub request_host: Option<String>,
    /// The host of a Refer-To built from a number or a user, and of a `sip:` one whose user
    /// is a number; default: `--refer-domain`, else the caller's Contact host.
    pub refer_host: Option<String>,
    /// The scheme a number is written with.
    pub scheme: ReferScheme,
    /// What a number's leading `+` becomes.
    pub plus: Plus,
    /// The REFER's Referred-By when the application names none.
    pub referred_by: ReferredBy,
    /// Added to every REFER (the application's own headers of the same name win).
    pub headers: Headers,
    /// How long a transfer waits for its final NOTIFY, unless the verb says.
    pub notify_timeout: Option<Duration>,
    /// How the call ends after success, unless the verb says.
    pub bye_after_success: Option<ByeAfter>,
}

/// How a number in Refer-To is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReferScheme {
    /// `tel:` stays `tel:`, `sip:` stays `sip:`; a bare number becomes `sip:N@host`.
    #[default]
    AsWritten,
    /// Always `sip:N@host;user=phone` (RFC 3261 §19.1.6) for a `tel:` one.
    Sip,
    /// Always `tel:N`: for trunks that refuse a number rewritten into a SIP URI.
    Tel,
}

/// What happens to a number's leading `+`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Plus {
    /// As written.
    #[default]
    Keep,
    /// Added when missing: trunks that want E.164.
    Add,
    /// Removed: trunks that want digits only.
    Strip,
}

/// Whom the REFER names as the referrer (RFC 3892).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReferredBy {
    /// The party being transferred (P-Asserted-Identity, else From): baton's default.
    #[default]
    Transferee,
    /// No Referred-By at all, even when the application names one: trunks that refuse it.
    Omit,
    /// This address.
    Fixed(String),
}

impl TrunkProfile {
    /// Whether a call from `source`, dialling `request_host`, is this trunk's.
    pub fn matches(&self, source: IpAddr, request_host: Option<&str>) -> bool {
        self.sources.iter().any(|net| net.contains(source))
            && self
                .request_host
                .as_deref()
                .is_none_or(|want| request_host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
    }
}

/// The first profile matching a call, by its place in the list.
pub fn find(profiles: &[TrunkProfile], source: IpAddr, request_host: Option<&str>) -> Option<u16> {
    profiles.iter().position(|p| p.matches(source, request_host)).and_then(|i| u16::try_from(i).ok())
}

/// A phone number as a URI's user: digits, with an optional leading `+` and the visual
/// separators of RFC 3966 (`-.()`).
fn is_number(user: &str) -> bool {
    let digits = user.strip_prefix('+').unwrap_or(user);
    digits.starts_with(|c: char| c.is_ascii_digit()) && digits.chars().all(|c| c.is_ascii_digit() || "-.()".contains(c))
}

fn with_plus(number: &str, plus: Plus) -> String {
    match plus {
        Plus::Keep => number.to_string(),
        Plus::Add if number.starts_with('+') => number.to_string(),
        Plus::Add => format!("+{number}"),
        Plus::Strip => number.trim_start_matches('+').to_string(),
    }
}

/// The URI a target names, once written the profile's way. `host` is the host for a
/// number or user written bare (or a `tel:` rewritten to SIP): the profile's, if it has one.
fn uri_for(uri: &str, profile: &TrunkProfile, host: &str) -> String {
    let (scheme, plus) = (profile.scheme, profile.plus);
    if starts_with_ci(uri, "tel:") {
        let number = &uri[4..];
        let (number, params) = number.split_at(number.find(';').unwrap_or(number.len()));
        let n = with_plus(number, plus);
        return match scheme {
            ReferScheme::Sip => format!("sip:{n}{params}@{host};user=phone"),
            _ => format!("tel:{n}{params}"),
        };
    }
    let (prefix, rest) = if starts_with_ci(uri, "sips:") {
        uri.split_at(5)
    } else if starts_with_ci(uri, "sip:") {
        uri.split_at(4)
    } else if uri.contains('@') {
        ("sip:", uri)
    } else {
        // A bare number or user.
        return match (is_number(uri), scheme) {
            (true, ReferScheme::Tel) => format!("tel:{}", with_plus(uri, plus)),
            (true, _) => format!("sip:{}@{host}", with_plus(uri, plus)),
            (false, _) => format!("sip:{uri}@{host}"),
        };
    };
    let Some((user, host_part)) = rest.rsplit_once('@') else { return format!("{prefix}{rest}") };
    let (number, user_params) = user.split_at(user.find(';').unwrap_or(user.len()));
    if !is_number(number) {
        return format!("{prefix}{rest}");
    }
    let n = with_plus(number, plus);
    if scheme == ReferScheme::Tel {
        return format!("tel:{n}");
    }
    let host_part = match &profile.refer_host {
        Some(h) => format!("{h}{}", &host_part[host_part.find([';', '?']).unwrap_or(host_part.len())..]),
        None => host_part.to_string(),
    };
    format!("{prefix}{n}{user_params}@{host_part}")
}

/// The Refer-To header's value for `target`: rewritten by the call's `profile` (if any),
/// carrying `uri_headers` escaped into its URI (RFC 3261 §19.1.1). A target the
/// application wrote whole (`<...>`, with or without a display name) keeps what surrounds
/// its URI. Refused when headers would go into a `tel:` URI, which has none (RFC 3966).
pub fn refer_to(
    target: &str,
    profile: Option<&TrunkProfile>,
    host: &str,
    uri_headers: &[(String, String)],
) -> Result<String, Unwritable> {
    if profile.is_none() && uri_headers.is_empty() {
        return Ok(address(target, None, host));
    }
    let host = profile.and_then(|p| p.refer_host.as_deref()).unwrap_or(host);
    let written = target.trim();
    let bracketed = written.starts_with(['<', '"']);
    let (before, uri, after) = match written.rfind('>').and_then(|gt| Some((written[..gt].rfind('<')?, gt))) {
        Some((lt, gt)) if bracketed => (&written[..=lt], &written[lt + 1..gt], &written[gt..]),
        _ => ("<", written, ">"),
    };
    let mut uri = match profile {
        Some(p) => uri_for(uri, p, host),
        None if bracketed || ["sip:", "sips:", "tel:"].iter().any(|s| starts_with_ci(uri, s)) => uri.to_string(),
        None if uri.contains('@') => format!("sip:{uri}"),
        None => format!("sip:{uri}@{host}"),
    };
    if !uri_headers.is_empty() {
        if starts_with_ci(&uri, "tel:") {
            let why = "a tel: URI cannot carry headers (uui, referToHeaders): write a sip: target, or use a profile with scheme \"sip\"";
            return Err(Unwritable { place: "Refer-To".into(), why });
        }
        let mut sep = if uri.contains('?') { '&' } else { '?' };
        for (name, value) in uri_headers {
            uri.push(sep);
            escape_uri_header(name, &mut uri);
            uri.push('=');
            escape_uri_header(value, &mut uri);
            sep = '&';
        }
    }
    Ok(format!("{before}{uri}{after}"))
}

/// Writes `s` as an `hname` or `hvalue` of a SIP URI (RFC 3261 §25.1): unreserved and
/// hnv-unreserved characters as they are, every other byte `%XX`.
pub fn escape_uri_header(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(scheme: ReferScheme, plus: Plus, refer_host: Option<&str>) -> TrunkProfile {
        TrunkProfile { scheme, plus, refer_host: refer_host.map(str::to_string), ..Default::default() }
    }

    fn written(target: &str, p: Option<&TrunkProfile>) -> String {
        refer_to(target, p, "h.example", &[]).unwrap()
    }

    #[test]
    fn without_a_profile_targets_are_written_as_before() {
        assert_eq!(written("+15083084809", None), "<sip:+15083084809@h.example>");
        assert_eq!(written("tel:+4915683084809", None), "<tel:+4915683084809>");
        assert_eq!(written("<sip:a@b>;foo=1", None), "<sip:a@b>;foo=1");
        assert_eq!(written("\"Desk\" <sip:a@b>", None), "\"Desk\" <sip:a@b>");
        assert_eq!(written("alice@example.com", None), "<sip:alice@example.com>");
    }

    #[test]
    fn schemes_and_plus() {
        let tel = profile(ReferScheme::Tel, Plus::Add, None);
        assert_eq!(written("4915683084809", Some(&tel)), "<tel:+4915683084809>");
        assert_eq!(written("sip:4915683084809@x.example;user=phone", Some(&tel)), "<tel:+4915683084809>");
        assert_eq!(written("sip:alice@x.example", Some(&tel)), "<sip:alice@x.example>", "not a number");
        let sip = profile(ReferScheme::Sip, Plus::Strip, Some("pstn.example"));
        assert_eq!(written("tel:+4915683084809", Some(&sip)), "<sip:4915683084809@pstn.example;user=phone>");
        assert_eq!(
            written("sip:+1555@old.example:5080;transport=tcp", Some(&sip)),
            "<sip:1555@pstn.example;transport=tcp>"
        );
        let keep = profile(ReferScheme::AsWritten, Plus::Keep, None);
        assert_eq!(written("tel:+4915683084809", Some(&keep)), "<tel:+4915683084809>");
        assert_eq!(
            written("<sip:+1555@a>;x=1", Some(&profile(ReferScheme::AsWritten, Plus::Strip, None))),
            "<sip:1555@a>;x=1"
        );
        assert_eq!(written("agent", Some(&keep)), "<sip:agent@h.example>");
    }

    #[test]
    fn headers_are_escaped_into_the_uri() {
        let headers = [
            ("User-to-User".to_string(), "56a390f3;encoding=hex;purpose=isdn-uui".to_string()),
            ("X-Case".to_string(), "a b&c=d%".to_string()),
        ];
        assert_eq!(
            refer_to("sip:agent@pbx.example", None, "h", &headers).unwrap(),
            "<sip:agent@pbx.example?User-to-User=56a390f3%3Bencoding%3Dhex%3Bpurpose%3Disdn-uui&X-Case=a%20b%26c%3Dd%25>"
        );
        assert_eq!(
            refer_to("<sip:a@b?X-A=1>", None, "h", &headers[1..]).unwrap(),
            "<sip:a@b?X-A=1&X-Case=a%20b%26c%3Dd%25>"
        );
        assert!(refer_to("tel:+1555", None, "h", &headers).is_err());
        let sip = profile(ReferScheme::Sip, Plus::Keep, None);
        assert!(refer_to("tel:+1555", Some(&sip), "h", &headers).is_ok(), "rewritten to sip: first");
    }

    #[test]
    fn profiles_match_by_source_then_request_host() {
        let twilio = TrunkProfile {
            name: "twilio".into(),
            sources: vec!["54.172.60.0/23".parse().unwrap()],
            ..Default::default()
        };
        let sbc = TrunkProfile {
            name: "sbc".into(),
            sources: vec!["10.0.0.0/8".parse().unwrap()],
            request_host: Some("bot.example".into()),
            ..Default::default()
        };
        let all = [twilio, sbc];
        assert_eq!(find(&all, "54.172.61.9".parse().unwrap(), None), Some(0));
        assert_eq!(find(&all, "10.1.2.3".parse().unwrap(), Some("BOT.example")), Some(1));
        assert_eq!(find(&all, "10.1.2.3".parse().unwrap(), Some("other.example")), None);
        assert_eq!(find(&all, "192.0.2.1".parse().unwrap(), None), None);
    }
}
