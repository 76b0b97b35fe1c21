//! Retry policy: `--hook-retries` by default, or jambonz's `#rc=N&rp=ct,rt,4xx,5xx,all`
//! URL fragment for one hook.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub retries: u32,
    pub on_connect: bool,
    pub on_timeout: bool,
    pub on_4xx: bool,
    pub on_5xx: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Status(u16),
    /// Anything else (bad URL, body error): never retried.
    Other,
}

impl Policy {
    pub fn default_with(retries: u32) -> Policy {
        Policy { retries, on_connect: true, on_timeout: true, on_4xx: false, on_5xx: true }
    }

    /// Reads `rc` and `rp` from a URL fragment; what it does not name keeps the default.
    pub fn from_fragment(fragment: Option<&str>, default: Policy) -> Policy {
        let Some(fragment) = fragment else { return default };
        let mut policy = default;
        for (key, value) in fragment.split('&').filter_map(|kv| kv.split_once('=')) {
            match key {
                "rc" => policy.retries = value.parse().unwrap_or(default.retries).min(10),
                "rp" => {
                    let all = value.split(',').any(|v| v == "all");
                    let has = |name: &str| all || value.split(',').any(|v| v == name);
                    policy.on_connect = has("ct");
                    policy.on_timeout = has("rt");
                    policy.on_4xx = has("4xx");
                    policy.on_5xx = has("5xx");
                }
                _ => {}
            }
        }
        policy
    }

    pub fn retries(&self, failure: Failure) -> bool {
        match failure {
            Failure::Connect => self.on_connect,
            Failure::Timeout => self.on_timeout,
            Failure::Status(s) if (400..500).contains(&s) => self.on_4xx,
            Failure::Status(s) if s >= 500 => self.on_5xx,
            Failure::Status(_) | Failure::Other => false,
        }
    }
}

/// Exponential backoff with full jitter: attempt n waits a random time in [base·2ⁿ/2, base·2ⁿ].
pub fn backoff(base: Duration, attempt: u32, unit_random: f64) -> Duration {
    let full = base.saturating_mul(1 << attempt.min(10));
    full.mul_f64(0.5 + 0.5 * unit_random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_overrides_default() {
        let d = Policy::default_with(2);
        assert_eq!(Policy::from_fragment(None, d), d);
        let p = Policy::from_fragment(Some("rc=5&rp=4xx,ct"), d);
        assert_eq!(p.retries, 5);
        assert!(p.retries(Failure::Status(404)) && p.retries(Failure::Connect));
        assert!(!p.retries(Failure::Status(500)) && !p.retries(Failure::Timeout));
        let all = Policy::from_fragment(Some("rp=all"), d);
        assert!(all.retries(Failure::Status(503)) && all.retries(Failure::Status(401)));
        assert!(!d.retries(Failure::Status(404)) && d.retries(Failure::Status(502)));
    }

    #[test]
    fn backoff_doubles_within_jitter() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(base, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_millis(400));
    }
}
