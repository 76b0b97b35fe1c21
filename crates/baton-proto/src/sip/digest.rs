//! Digest authentication, client side (RFC 2617, RFC 7616, RFC 8760 for SIP): answers a
//! 401/407 challenge with MD5 or SHA-256 and `qop=auth`.

use super::header::{split_list, trim_lws};
use md5::Md5;
use sha2::{Digest as _, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        let bytes = match self {
            Algorithm::Md5 => Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One `Digest` challenge from WWW-Authenticate or Proxy-Authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The protection space.
    pub realm: &'a str,
    /// The server's nonce.
    pub nonce: &'a str,
    /// Returned as given.
    pub opaque: Option<&'a str>,
    /// The hash to answer with.
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`.
    pub qop_auth: bool,
    /// The nonce was only out of date: answering again is worth it.
    pub stale: bool,
}

impl<'a> Challenge<'a> {
    /// Parses a challenge; `None` for other schemes, unknown algorithms (e.g. `-sess`) or
    /// a challenge that offers only `auth-int`.
    pub fn parse(value: &'a str) -> Option<Challenge<'a>> {
        let value = trim_lws(value);
        let (scheme, params) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let (mut realm, mut nonce, mut opaque, mut algorithm, mut qop, mut stale) =
            (None, None, None, Algorithm::Md5, None, false);
        for param in split_list(params) {
            let (k, v) = param.split_once('=')?;
            let v = trim_lws(v);
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            match trim_lws(k).to_ascii_lowercase().as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "opaque" => opaque = Some(v),
                "algorithm" if v.eq_ignore_ascii_case("MD5") => algorithm = Algorithm::Md5,
                "algorithm" if v.eq_ignore_ascii_case("SHA-256") => algorithm = Algorithm::Sha256,
                "algorithm" => return None,
                "qop" => qop = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let qop_auth = match qop {
            Some(q) => q.split(',').any(|o| trim_lws(o).eq_ignore_ascii_case("auth")),
            None => false,
        };
        if qop.is_some() && !qop_auth {
            return None;
        }
        Some(Challenge { realm: realm?, nonce: nonce?, opaque, algorithm, qop_auth, stale })
    }

    /// The Authorization (or Proxy-Authorization) value for `method uri`.
    pub fn answer(&self, username: &str, password: &str, method: &str, uri: &str, cnonce: &str) -> String {
        let alg = self.algorithm;
        let ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let nc = "00000001";
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            alg.name()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(opaque) = self.opaque {
            out.push_str(&format!(", opaque=\"{opaque}\""));
        }
        out
    }
}

/// Picks the strongest challenge baton can answer among several headers' values.
pub fn best<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge<'a>> {
    values.filter_map(Challenge::parse).max_by_key(|c| c.algorithm == Algorithm::Sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_with_qop() {
        // RFC 2617 §3.5 (HTTP, but the arithmetic is the same).
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        let a = c.answer("Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b");
        assert!(a.contains(r#"response="6629fae49393a05397450978507c4ef1""#), "{a}");
        assert!(a.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""));
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn rfc_7616_sha256_example() {
        // RFC 7616 §3.9.1.
        let c = Challenge::parse(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        )
        .unwrap();
        let a = c.answer(
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert!(a.contains(r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#), "{a}");
    }

    #[test]
    fn picks_sha256_and_refuses_what_it_cannot_answer() {
        let c = best(
            ["Digest realm=\"r\", nonce=\"n\"", "Digest realm=\"r\", nonce=\"m\", algorithm=SHA-256, stale=TRUE"]
                .into_iter(),
        )
        .unwrap();
        assert_eq!((c.algorithm, c.nonce, c.stale, c.qop_auth), (Algorithm::Sha256, "m", true, false));
        assert!(Challenge::parse("Basic realm=\"r\"").is_none());
        assert!(Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess").is_none());
        assert!(Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").is_none());
        assert!(Challenge::parse("Digest nonce=\"n\"").is_none());
    }
}
