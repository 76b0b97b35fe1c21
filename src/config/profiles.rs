//! Trunk profiles as the TOML file writes them (`[[profile]]` tables), checked into the
//! core's [`TrunkProfile`]s. What each key means: docs/behaviour.md §8.

use baton_proto::{header_problem, ByeAfter, Plus, ReferScheme, ReferredBy, TrunkProfile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One `[[profile]]` table.
#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileToml {
    pub name: String,
    /// CIDR networks (or addresses) the trunk's calls come from.
    pub sources: Vec<String>,
    pub request_host: Option<String>,
    pub refer_host: Option<String>,
    /// `as-written` (default), `sip` or `tel`.
    pub scheme: Option<String>,
    /// `keep` (default), `add` or `strip`.
    pub plus: Option<String>,
    /// `transferee` (default), `none`, or an address.
    pub referred_by: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Seconds.
    pub notify_timeout: Option<f64>,
    /// `now`, `wait:MS` or `never`.
    pub bye_after_success: Option<String>,
}

impl ProfileToml {
    /// The core's profile, or every problem of this one, each naming its key.
    pub fn check(&self, index: usize) -> Result<TrunkProfile, Vec<String>> {
        let who = if self.name.is_empty() { format!("profile {index}") } else { format!("profile {:?}", self.name) };
        let mut problems = Vec::new();
        let mut fail = |key: &str, why: String| problems.push(format!("{who}: {key}: {why}"));
        if self.name.trim().is_empty() {
            fail("name", "is required".into());
        }
        if self.sources.is_empty() {
            fail("sources", "name at least one network (CIDR) the trunk's calls come from".into());
        }
        let sources =
            self.sources.iter().filter_map(|s| s.parse().map_err(|e: String| fail("sources", e)).ok()).collect();
        let scheme = match self.scheme.as_deref() {
            None | Some("as-written") => ReferScheme::AsWritten,
            Some("sip") => ReferScheme::Sip,
            Some("tel") => ReferScheme::Tel,
            Some(other) => {
                fail("scheme", format!("{other:?}: must be \"as-written\", \"sip\" or \"tel\""));
                ReferScheme::AsWritten
            }
        };
        let plus = match self.plus.as_deref() {
            None | Some("keep") => Plus::Keep,
            Some("add") => Plus::Add,
            Some("strip") => Plus::Strip,
            Some(other) => {
                fail("plus", format!("{other:?}: must be \"keep\", \"add\" or \"strip\""));
                Plus::Keep
            }
        };
        let referred_by = match self.referred_by.as_deref().map(str::trim) {
            None | Some("transferee") => ReferredBy::Transferee,
            Some("none") => ReferredBy::Omit,
            Some(addr) if addr.is_empty() || addr.contains(['\r', '\n', '\0']) => {
                fail("referred_by", "must be \"transferee\", \"none\" or an address".into());
                ReferredBy::Transferee
            }
            Some(addr) => ReferredBy::Fixed(addr.to_string()),
        };
        for host in [("request_host", &self.request_host), ("refer_host", &self.refer_host)] {
            if let (key, Some(h)) = host {
                if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
                    fail(key, format!("{h:?}: must be a host name or address (with an optional :port)"));
                }
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            match header_problem(name, value) {
                Some(why) => fail(&format!("headers.{name}"), why.into()),
                None => headers.push((name.clone(), value.clone())),
            }
        }
        let notify_timeout = match self.notify_timeout {
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                fail("notify_timeout", format!("{s}: must be seconds above 0 and at most 86400"));
                None
            }
            None => None,
        };
        let bye_after_success = match self.bye_after_success.as_deref().map(ByeAfter::parse) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                fail("bye_after_success", e);
                None
            }
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(TrunkProfile {
            name: self.name.clone(),
            sources,
            request_host: self.request_host.clone(),
            refer_host: self.refer_host.clone(),
            scheme,
            plus,
            referred_by,
            headers,
            notify_timeout,
            bye_after_success,
        })
    }
}

/// Every profile checked, or every problem of them all.
pub fn check_all(profiles: &[ProfileToml]) -> Result<Vec<TrunkProfile>, String> {
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(profiles.len());
    for (i, p) in profiles.iter().enumerate() {
        match p.check(i) {
            Ok(profile) => out.push(profile),
            Err(mut e) => problems.append(&mut e),
        }
        if profiles[..i].iter().any(|q| q.name == p.name && !p.name.is_empty()) {
            problems.push(format!("profile {:?}: name: given to two profiles", p.name));
        }
    }
    match problems.is_empty() {
        true => Ok(out),
        false => Err(problems.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(toml: &str) -> Result<Vec<TrunkProfile>, String> {
        #[derive(Deserialize)]
        struct File {
            profile: Vec<ProfileToml>,
        }
        let file: File = toml::from_str(toml).map_err(|e| e.to_string())?;
        check_all(&file.profile)
    }

    #[test]
    fn a_whole_profile_reads() {
        let p = profile(
            r#"
            [[profile]]
            name = "twilio"
            sources = ["54.172.60.0/23", "34.203.250.0/23"]
            scheme = "tel"
            plus = "add"
            referred_by = "none"
            headers = { X-Trunk = "twilio" }
            notify_timeout = 20
            bye_after_success = "wait:2000"
            "#,
        )
        .unwrap();
        assert_eq!(p[0].scheme, ReferScheme::Tel);
        assert_eq!(p[0].referred_by, ReferredBy::Omit);
        assert_eq!(p[0].bye_after_success, Some(ByeAfter::Wait(Duration::from_secs(2))));
        assert_eq!(p[0].headers, vec![("X-Trunk".to_string(), "twilio".to_string())]);
    }

    #[test]
    fn every_problem_is_named() {
        let e = profile(
            r#"
            [[profile]]
            name = "bad"
            sources = ["10.0.0.0/33"]
            scheme = "sips"
            headers = { Via = "x" }
            bye_after_success = "later"

            [[profile]]
            name = "bad"
            sources = ["10.0.0.1"]
            "#,
        )
        .unwrap_err();
        for want in [
            "profile \"bad\": sources: \"10.0.0.0/33\": the prefix length must be a number from 0 to 32",
            "profile \"bad\": scheme: \"sips\": must be",
            "profile \"bad\": headers.Via: baton sets this header itself",
            "profile \"bad\": bye_after_success: \"later\": must be",
            "profile \"bad\": name: given to two profiles",
        ] {
            assert!(e.contains(want), "{want}\n{e}");
        }
        assert!(profile("[[profile]]\nname = \"x\"\nsources = [\"10.0.0.1\"]\nbogus = 1\n")
            .unwrap_err()
            .contains("bogus"));
    }
}
