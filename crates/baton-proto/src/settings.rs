//! What the sans-IO core is told at start: timers, the application, hooks, limits.

use crate::admission::EdgeLimits;
use crate::app::swml::run::VarLimits;
use crate::app::{Application, Hook};
use crate::profile::TrunkProfile;
use crate::sip::parse::{Message, StartLine};
use crate::sip::sdp::Direction;
use crate::sip::uri::Uri;
use crate::sip::write::push_socket_addr;
use crate::txn::Timers;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Everything the core needs to know, fixed at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// RFC 3261 T1, T2, T4.
    pub timers: Timers,
    /// A static application (`--app`); wins over the call hook.
    pub app: Option<Application>,
    /// Asked for the application of each new call when there is no static one.
    pub call_hook: Option<Hook>,
    /// Told of each call's status changes.
    pub status_hook: Option<Hook>,
    /// HOST for a bare user or number in Refer-To / Referred-By.
    pub refer_domain: Option<String>,
    /// How long a transfer waits for its final NOTIFY after the REFER is accepted.
    pub notify_timeout: Duration,
    /// How long a call waits for the answer to a hook it needs (call hook, actionHook,
    /// SWML fetch) before it goes on as if the hook failed.
    pub hook_wait: Duration,
    /// The direction of the SDP baton answers with.
    pub sdp_direction: Direction,
    /// The address written in Contact and Via when the listen address is not reachable as is.
    pub public_ip: Option<IpAddr>,
    /// Copied into the call hook's body (jambonz).
    pub account_sid: Option<String>,
    /// Copied into the call hook's body (jambonz).
    pub application_sid: Option<String>,
    /// Copied into the call hook's body as `env_vars` (jambonz).
    pub env_vars: Option<serde_json::Value>,
    /// SWML status callbacks' `project_id`.
    pub project_id: String,
    /// SWML status callbacks' `space_id`.
    pub space_id: String,
    /// SWML status callbacks' `node_id`.
    pub node_id: String,
    /// Calls in progress before new INVITEs get 503 (shared by the shards of an [`crate::Admission`]).
    pub max_calls: usize,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Most header lines in one message.
    pub max_headers: usize,
    /// What one call's SWML variables may hold.
    pub swml_limits: VarLimits,
    /// Redirects (and actionHooks that answer with verbs) one call may follow.
    pub max_redirects: u32,
    /// Who may start calls, and how fast: see [`crate::admission`].
    pub edge: EdgeLimits,
    /// Carriers' trunks, matched in order: see [`TrunkProfile`].
    pub profiles: Vec<TrunkProfile>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timers: Timers::default(),
            app: None,
            call_hook: None,
            status_hook: None,
            refer_domain: None,
            notify_timeout: Duration::from_secs(15),
            hook_wait: Duration::from_secs(30),
            sdp_direction: Direction::Inactive,
            public_ip: None,
            account_sid: None,
            application_sid: None,
            env_vars: None,
            project_id: String::new(),
            space_id: String::new(),
            node_id: "baton".into(),
            max_calls: 100_000,
            max_message_size: 65_535,
            max_headers: 128,
            swml_limits: Default::default(),
            max_redirects: 10,
            edge: Default::default(),
            profiles: Vec::new(),
        }
    }
}

impl Settings {
    /// `host:port` for our Contact and Via on a call that arrived at `local`.
    pub fn advertised(&self, local: SocketAddr, invite: &Message<'_>) -> String {
        let addr = if let Some(ip) = self.public_ip {
            SocketAddr::new(ip, local.port())
        } else if !local.ip().is_unspecified() {
            local
        } else {
            // Bound to every address: the one the caller dialled is the one it can reach.
            let dialled = match invite.start {
                StartLine::Request { uri, .. } => Uri::parse(uri).and_then(|u| u.socket_addr()),
                StartLine::Response { .. } => None,
            };
            dialled.map_or(local, |a| SocketAddr::new(a.ip(), local.port()))
        };
        let mut out = String::with_capacity(21);
        push_socket_addr(&mut out, addr);
        out
    }
}
