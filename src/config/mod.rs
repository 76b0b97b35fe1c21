//! One configuration, from a TOML file and flags (flags win), validated once at start.

mod profiles;

use crate::hooks::batch::BatchSettings;
use crate::hooks::worker::HookSettings;
use crate::io::{IoMode, COALESCE, COALESCE_MAX};
use crate::server::ServerConfig;
use crate::stream::tls::TlsFiles;
use crate::stream::{Limits, StreamSettings};
use baton_proto::{
    parse_document_within, Direction, DocRules, EdgeLimits, Hook, Media, Settings, Timers, Transport, VarLimits,
};
pub use profiles::ProfileToml;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Every setting, as a flag of `baton serve` and as a key of the TOML file.
#[derive(clap::Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address to receive SIP on, `[udp:|tcp:|tls:]IP:PORT`; repeat for several. Default
    /// udp:0.0.0.0:5060.
    #[arg(long, value_name = "[udp:|tcp:|tls:]IP:PORT")]
    #[serde(default)]
    pub listen: Vec<String>,
    /// PEM certificate chain for tls: listeners (and outbound TLS); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA: TLS clients must present a certificate it signed (mutual TLS), and outbound
    /// TLS peers are checked against it (default: the web's roots).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Seconds a TCP/TLS connection may stay silent (or a message stay unfinished) before
    /// it is closed (default 300).
    #[arg(long, value_name = "SECONDS")]
    pub tcp_idle: Option<f64>,
    /// TCP/TLS connections one source address may hold open (default 100).
    #[arg(long, value_name = "N")]
    pub tcp_per_source: Option<usize>,
    /// TCP/TLS connections in all (default 10000).
    #[arg(long, value_name = "N")]
    pub tcp_max_connections: Option<usize>,
    /// Where each new call's application is fetched (HTTP POST).
    #[arg(long, value_name = "URL")]
    pub call_hook: Option<String>,
    /// Receives every call state change.
    #[arg(long, value_name = "URL")]
    pub call_status_hook: Option<String>,
    /// A static application document (JSON array of verbs), used instead of the call hook.
    #[arg(long, value_name = "FILE")]
    pub app: Option<PathBuf>,
    /// Base for relative hook URLs when there is no call hook.
    #[arg(long, value_name = "URL")]
    pub hook_base: Option<String>,
    /// Signs every hook request (Baton-Signature and Jambonz-Signature headers). Prefer the
    /// environment variable: a flag shows in the process list.
    #[arg(long, value_name = "SECRET", env = "BATON_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Take INVITEs only from this network (CIDR or one address); repeat for several.
    /// Default: from anywhere. Others get 403.
    #[arg(long, value_name = "CIDR")]
    #[serde(default)]
    pub allow: Vec<String>,
    /// New INVITEs a second from one source address before 503 (default 1000; 0: no limit).
    #[arg(long, value_name = "N")]
    pub source_rate: Option<f64>,
    /// New INVITEs one source may send at once above --source-rate (default 2000).
    #[arg(long, value_name = "N")]
    pub source_burst: Option<f64>,
    /// Calls from one source not yet acknowledged (waiting for the application or for the
    /// ACK of our 200) before 503 (default 2000; 0: no limit).
    #[arg(long, value_name = "N")]
    pub source_unconfirmed: Option<usize>,
    /// Redirects and actionHook answers with verbs that one call may follow (default 10).
    #[arg(long, value_name = "N")]
    pub max_redirects: Option<u32>,
    /// Most verbs (or SWML methods) in one application document (default 1000).
    #[arg(long, value_name = "N")]
    pub max_verbs: Option<usize>,
    /// Largest SWML variable, in bytes (default 262144).
    #[arg(long, value_name = "BYTES")]
    pub swml_max_value: Option<usize>,
    /// Most bytes one call's SWML variables hold together (default 1048576).
    #[arg(long, value_name = "BYTES")]
    pub swml_max_vars: Option<usize>,
    /// Largest hook answer read, in bytes; a longer one fails the hook (default 1048576).
    #[arg(long, value_name = "BYTES")]
    pub hook_max_answer: Option<usize>,
    /// Hook requests in flight to one destination (host and port); more wait in the queue
    /// (default 256).
    #[arg(long, value_name = "N")]
    pub hook_connections: Option<usize>,
    /// HOST for a bare user or number in Refer-To; default: the caller's Contact host.
    #[arg(long, value_name = "HOST")]
    pub refer_domain: Option<String>,
    /// Seconds a transfer waits for its final NOTIFY after the REFER is accepted (default 15).
    #[arg(long, value_name = "SECONDS")]
    pub notify_timeout: Option<f64>,
    /// Seconds a call waits for the answer to a hook it needs (call hook, actionHook) before
    /// it goes on as if the hook failed (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub hook_wait: Option<f64>,
    /// Direction attribute of our SDP: inactive (the default: baton carries no media),
    /// sendrecv, sendonly or recvonly.
    #[arg(long, value_name = "DIRECTION")]
    pub sdp_direction: Option<Direction>,
    /// IP written in Contact and Via when the listen address is not what callers reach.
    #[arg(long, value_name = "IP")]
    pub public_ip: Option<IpAddr>,
    /// Calls in progress before new INVITEs get 503 (default 100000).
    #[arg(long, value_name = "N")]
    pub max_calls: Option<usize>,
    /// Largest datagram accepted, in bytes (default 65535).
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<usize>,
    /// Most headers in one message (default 128).
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,
    /// RFC 3261 timer T1 in milliseconds (default 500).
    #[arg(long, value_name = "MS")]
    pub t1_ms: Option<u64>,
    /// RFC 3261 timer T2 in milliseconds (default 4000).
    #[arg(long, value_name = "MS")]
    pub t2_ms: Option<u64>,
    /// RFC 3261 timer T4 in milliseconds (default 5000).
    #[arg(long, value_name = "MS")]
    pub t4_ms: Option<u64>,
    /// Timeout of one hook request in milliseconds (default 5000).
    #[arg(long, value_name = "MS")]
    pub hook_timeout_ms: Option<u64>,
    /// Retries of a failed hook (default 2; a `#rc=N&rp=...` fragment overrides per hook).
    #[arg(long, value_name = "N")]
    pub hook_retries: Option<u32>,
    /// First retry delay in milliseconds; doubles each retry, with jitter (default 200).
    #[arg(long, value_name = "MS")]
    pub hook_backoff_ms: Option<u64>,
    /// Hooks queued before new ones are dropped (default 65536).
    #[arg(long, value_name = "N")]
    pub hook_queue: Option<usize>,
    /// Send events nobody waits on (eventHook, status callbacks) to this URL instead, as
    /// one POST carrying a JSON array per batch; each element names its `hook`.
    #[arg(long, value_name = "URL")]
    pub hook_batch_url: Option<String>,
    /// Most events in one batch (default 100).
    #[arg(long, value_name = "N")]
    pub hook_batch_max: Option<usize>,
    /// Longest an event waits for its batch to fill, in milliseconds (default 20).
    #[arg(long, value_name = "MS")]
    pub hook_batch_linger: Option<u64>,
    /// Where hooks that cannot be delivered are written (default baton-dead-letters.jsonl).
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// On SIGTERM, seconds calls in progress may take to finish (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<f64>,
    /// On SIGTERM, seconds queued hooks may still be tried before they are dead-lettered (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub hook_flush: Option<f64>,
    /// Serve the operator's HTTP endpoint on this address: /healthz, /readyz, /metrics
    /// (Prometheus) and the calls under /v1 (`--metrics` is the old name).
    #[arg(long = "http", alias = "metrics", value_name = "IP:PORT")]
    #[serde(alias = "http")]
    pub metrics: Option<SocketAddr>,
    /// Bearer token for /v1 of --http (without one, /v1 answers loopback clients only).
    #[arg(long, value_name = "TOKEN", env = "BATON_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Reactor threads (default: one per core). Each has its own socket on every listen
    /// address and owns the calls whose Call-ID hashes to it.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// I/O backend: io_uring, epoll with recvmmsg/sendmmsg, or auto (io_uring where the
    /// kernel allows it; the log says which).
    #[arg(long, env = "BATON_IO", value_name = "auto|uring|epoll|xdp:IFACE", value_parser = parse_io)]
    pub io: Option<IoMode>,
    /// With --io xdp: spin on the rings instead of sleeping, for the lowest latency at the
    /// cost of one busy core per shard (default false).
    #[arg(long, value_name = "BOOL")]
    pub xdp_busy_poll: Option<bool>,
    /// While datagrams arrive steadily (a wait would gather from 2 to 16 of them), a shard
    /// wakes at most once per this many microseconds, so one wake-up carries a batch: less
    /// CPU per call at volume, at most this much more latency per message. 0 turns it off
    /// (default 200, at most 50000).
    #[arg(long, value_name = "MICROS")]
    pub coalesce_us: Option<u64>,
    /// Pin shard N to core N (default true).
    #[arg(long, value_name = "BOOL")]
    pub pin: Option<bool>,
    /// Sent as account_sid in the call hook.
    #[arg(long)]
    pub account_sid: Option<String>,
    /// Sent as application_sid in the call hook.
    #[arg(long)]
    pub application_sid: Option<String>,
    /// SWML status callbacks: project_id.
    #[arg(long)]
    pub project_id: Option<String>,
    /// SWML status callbacks: space_id.
    #[arg(long)]
    pub space_id: Option<String>,
    /// SWML status callbacks: node_id (default "baton").
    #[arg(long)]
    pub node_id: Option<String>,
    /// Sent as env_vars in the call hook (TOML file only: a table).
    #[arg(skip)]
    pub env_vars: Option<serde_json::Value>,
    /// Media verbs (say, play, ...): refuse a document naming one (the default), or skip
    /// each where it stands, so a document written for a media platform runs.
    #[arg(long, value_enum, value_name = "refuse|skip")]
    pub media: Option<MediaArg>,
    /// Carriers' trunk profiles (TOML file only: `[[profile]]` tables).
    #[arg(skip)]
    #[serde(rename = "profile")]
    pub profiles: Option<Vec<ProfileToml>>,
}

/// `--media`.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MediaArg {
    Refuse,
    Skip,
}

impl From<MediaArg> for Media {
    fn from(m: MediaArg) -> Media {
        match m {
            MediaArg::Refuse => Media::Refuse,
            MediaArg::Skip => Media::Skip,
        }
    }
}

macro_rules! prefer {
    ($flags:ident, $file:ident, $($field:ident),*) => {
        Options { listen: if $flags.listen.is_empty() { $file.listen } else { $flags.listen },
                  allow: if $flags.allow.is_empty() { $file.allow } else { $flags.allow },
                  $($field: $flags.$field.or($file.$field)),* }
    };
}

impl Options {
    /// Flags over the file.
    pub fn over(self, file: Options) -> Options {
        prefer!(
            self,
            file,
            tls_cert,
            tls_key,
            tls_ca,
            tcp_idle,
            tcp_per_source,
            tcp_max_connections,
            call_hook,
            call_status_hook,
            app,
            hook_base,
            webhook_secret,
            source_rate,
            source_burst,
            source_unconfirmed,
            max_redirects,
            max_verbs,
            swml_max_value,
            swml_max_vars,
            hook_max_answer,
            hook_connections,
            refer_domain,
            notify_timeout,
            hook_wait,
            sdp_direction,
            public_ip,
            max_calls,
            max_message_size,
            max_headers,
            t1_ms,
            t2_ms,
            t4_ms,
            hook_timeout_ms,
            hook_retries,
            hook_backoff_ms,
            hook_queue,
            hook_batch_url,
            hook_batch_max,
            hook_batch_linger,
            dead_letter,
            shutdown_grace,
            hook_flush,
            metrics,
            api_token,
            shards,
            io,
            xdp_busy_poll,
            coalesce_us,
            pin,
            account_sid,
            application_sid,
            project_id,
            space_id,
            node_id,
            env_vars,
            media,
            profiles
        )
    }

    pub fn from_file(path: &std::path::Path) -> Result<Options, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn into_server_config(self) -> Result<ServerConfig, String> {
        let listen = match self.listen.is_empty() {
            true => vec!["udp:0.0.0.0:5060".to_string()],
            false => self.listen.clone(),
        };
        let listen = listen.iter().map(|l| parse_listen(l)).collect::<Result<Vec<_>, _>>()?;
        let (udp, streams): (Vec<_>, Vec<_>) = listen.into_iter().partition(|(t, _)| *t == Transport::Udp);
        let streams = self.stream_settings(streams)?;
        let listen = udp.into_iter().map(|(_, addr)| addr).collect();
        let rules = DocRules {
            max_verbs: self.max_verbs.unwrap_or(HookSettings::default().rules.max_verbs),
            media: self.media.map_or(Media::Refuse, Media::from),
        };
        let app = match &self.app {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("--app {}: {e}", path.display()))?;
                let app = parse_document_within(&text, rules).map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
                    format!("--app {} is not a valid application:\n{}", path.display(), lines.join("\n"))
                })?;
                Some(app)
            }
            None => None,
        };
        let call_hook = self.call_hook.as_deref().map(absolute).transpose()?;
        if app.is_none() && call_hook.is_none() {
            return Err("give an application: --call-hook URL or --app FILE".into());
        }
        let base = match (&self.hook_base, &call_hook) {
            (Some(base), _) => Some(absolute(base)?),
            (None, Some(hook)) => Some(hook.clone()),
            (None, None) => None,
        };
        let ms = |v: Option<u64>, default: u64| Duration::from_millis(v.unwrap_or(default));
        let timers = Timers { t1: ms(self.t1_ms, 500), t2: ms(self.t2_ms, 4000), t4: ms(self.t4_ms, 5000) };
        if timers.t1.is_zero() || timers.t2 < timers.t1 {
            return Err("timers: T1 must be above 0 and T2 at least T1".into());
        }
        let notify_timeout = seconds("--notify-timeout", self.notify_timeout, Duration::from_secs(15))?;
        let defaults = Settings::default();
        let settings = Settings {
            timers,
            app,
            call_hook: call_hook.map(|u| Hook::post(u.as_str())),
            status_hook: self.call_status_hook.map(Hook::post),
            refer_domain: self.refer_domain,
            notify_timeout,
            hook_wait: seconds("--hook-wait", self.hook_wait, defaults.hook_wait)?,
            sdp_direction: self.sdp_direction.unwrap_or(defaults.sdp_direction),
            public_ip: self.public_ip,
            account_sid: self.account_sid,
            application_sid: self.application_sid,
            env_vars: self.env_vars,
            project_id: self.project_id.unwrap_or_default(),
            space_id: self.space_id.unwrap_or_default(),
            node_id: self.node_id.unwrap_or(defaults.node_id),
            max_calls: self.max_calls.unwrap_or(defaults.max_calls),
            max_message_size: self.max_message_size.unwrap_or(defaults.max_message_size),
            max_headers: self.max_headers.unwrap_or(defaults.max_headers),
            swml_limits: VarLimits {
                value: self.swml_max_value.unwrap_or(defaults.swml_limits.value),
                total: self.swml_max_vars.unwrap_or(defaults.swml_limits.total),
            },
            max_redirects: self.max_redirects.unwrap_or(defaults.max_redirects),
            edge: EdgeLimits {
                invite_rate: at_least_zero("--source-rate", self.source_rate, defaults.edge.invite_rate)?,
                invite_burst: at_least_zero("--source-burst", self.source_burst, defaults.edge.invite_burst)?,
                unconfirmed: self.source_unconfirmed.unwrap_or(defaults.edge.unconfirmed),
                allow: self
                    .allow
                    .iter()
                    .map(|a| a.parse().map_err(|e| format!("--allow {e}")))
                    .collect::<Result<_, _>>()?,
            },
            profiles: profiles::check_all(self.profiles.as_deref().unwrap_or_default())?,
        };
        let hook_defaults = HookSettings::default();
        let hooks = HookSettings {
            base,
            secret: self.webhook_secret,
            timeout: self.hook_timeout_ms.map_or(hook_defaults.timeout, Duration::from_millis),
            retries: self.hook_retries.unwrap_or(hook_defaults.retries),
            backoff: self.hook_backoff_ms.map_or(hook_defaults.backoff, Duration::from_millis),
            queue: self.hook_queue.unwrap_or(hook_defaults.queue),
            dead_letter: self.dead_letter.unwrap_or(hook_defaults.dead_letter),
            flush: seconds("--hook-flush", self.hook_flush, hook_defaults.flush)?,
            counters: Default::default(),
            max_answer: self.hook_max_answer.unwrap_or(hook_defaults.max_answer),
            connections: match self.hook_connections {
                Some(0) => return Err("--hook-connections must be at least 1".into()),
                Some(n) => n,
                None => hook_defaults.connections,
            },
            rules,
            batch: match self.hook_batch_url {
                Some(url) => Some(BatchSettings {
                    url: absolute(&url)?,
                    max: match self.hook_batch_max {
                        Some(0) => return Err("--hook-batch-max must be at least 1".into()),
                        Some(n) => n,
                        None => 100,
                    },
                    linger: Duration::from_millis(self.hook_batch_linger.unwrap_or(20)),
                }),
                None if self.hook_batch_max.is_some() || self.hook_batch_linger.is_some() => {
                    return Err("--hook-batch-max and --hook-batch-linger need --hook-batch-url".into())
                }
                None => None,
            },
        };
        let grace = seconds("--shutdown-grace", self.shutdown_grace, Duration::from_secs(30))?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = match self.shards {
            Some(0) => return Err("--shards must be at least 1".into()),
            Some(n) if n > 1024 => return Err(format!("--shards {n}: at most 1024")),
            Some(n) => n,
            None => cores,
        };
        let coalesce = match self.coalesce_us.map(Duration::from_micros) {
            Some(c) if c > COALESCE_MAX => {
                return Err(format!(
                    "--coalesce-us {}: at most {} (coalescing is a batching aid, not a delay line)",
                    c.as_micros(),
                    COALESCE_MAX.as_micros()
                ))
            }
            Some(c) => c,
            None => COALESCE,
        };
        Ok(ServerConfig {
            listen,
            streams,
            settings,
            hooks,
            grace,
            metrics: self.metrics,
            api_token: self.api_token.clone(),
            shards,
            io: self.io.clone().unwrap_or_default(),
            xdp_busy_poll: self.xdp_busy_poll.unwrap_or(false),
            coalesce,
            pin: self.pin.unwrap_or(true),
        })
    }
}

impl Options {
    /// The configuration baton would run with, every key with its value (a default where
    /// nothing was given), as TOML that reads back the same: what `baton config` prints.
    /// Secrets show as set or not, as comments, never their value. Checked as `serve`
    /// checks it.
    pub fn effective(&self) -> Result<String, String> {
        let c = self.clone().into_server_config()?;
        let (s, h) = (&c.settings, &c.hooks);
        let text = |v: &str| toml::Value::String(v.to_string()).to_string();
        let path = |p: &std::path::Path| text(&p.display().to_string());
        let list = |items: Vec<String>| format!("[{}]", items.iter().map(|i| text(i)).collect::<Vec<_>>().join(", "));
        let secs = |d: Duration| format!("{:?}", d.as_secs_f64());
        let ms = |d: Duration| d.as_millis().to_string();
        let mut listen: Vec<String> = c.listen.iter().map(|a| format!("udp:{a}")).collect();
        listen.extend(c.streams.listen.iter().map(|(t, a)| format!("{t}:{a}")));
        let tls = c.streams.tls.as_ref();
        let batch = h.batch.as_ref();
        let keys: Vec<(&str, Option<String>)> = vec![
            ("listen", Some(list(listen))),
            ("tls_cert", tls.map(|t| path(&t.cert))),
            ("tls_key", tls.map(|t| path(&t.key))),
            ("tls_ca", tls.and_then(|t| t.ca.as_deref()).map(path)),
            ("tcp_idle", Some(secs(c.streams.limits.idle))),
            ("tcp_per_source", Some(c.streams.limits.per_source.to_string())),
            ("tcp_max_connections", Some(c.streams.limits.max_connections.to_string())),
            ("call_hook", self.call_hook.as_deref().map(text)),
            ("call_status_hook", s.status_hook.as_ref().map(|h| text(&h.url))),
            ("app", self.app.as_deref().map(path)),
            ("hook_base", h.base.as_ref().map(|u| text(u.as_str()))),
            ("allow", Some(list(s.edge.allow.iter().map(ToString::to_string).collect()))),
            ("source_rate", Some(format!("{:?}", s.edge.invite_rate))),
            ("source_burst", Some(format!("{:?}", s.edge.invite_burst))),
            ("source_unconfirmed", Some(s.edge.unconfirmed.to_string())),
            ("max_redirects", Some(s.max_redirects.to_string())),
            ("max_verbs", Some(h.rules.max_verbs.to_string())),
            ("media", Some(text(if h.rules.media == Media::Skip { "skip" } else { "refuse" }))),
            ("swml_max_value", Some(s.swml_limits.value.to_string())),
            ("swml_max_vars", Some(s.swml_limits.total.to_string())),
            ("hook_max_answer", Some(h.max_answer.to_string())),
            ("hook_connections", Some(h.connections.to_string())),
            ("refer_domain", s.refer_domain.as_deref().map(text)),
            ("notify_timeout", Some(secs(s.notify_timeout))),
            ("hook_wait", Some(secs(s.hook_wait))),
            ("sdp_direction", Some(text(&format!("{:?}", s.sdp_direction).to_lowercase()))),
            ("public_ip", s.public_ip.map(|ip| text(&ip.to_string()))),
            ("max_calls", Some(s.max_calls.to_string())),
            ("max_message_size", Some(s.max_message_size.to_string())),
            ("max_headers", Some(s.max_headers.to_string())),
            ("t1_ms", Some(ms(s.timers.t1))),
            ("t2_ms", Some(ms(s.timers.t2))),
            ("t4_ms", Some(ms(s.timers.t4))),
            ("hook_timeout_ms", Some(ms(h.timeout))),
            ("hook_retries", Some(h.retries.to_string())),
            ("hook_backoff_ms", Some(ms(h.backoff))),
            ("hook_queue", Some(h.queue.to_string())),
            ("hook_batch_url", batch.map(|b| text(b.url.as_str()))),
            ("hook_batch_max", batch.map(|b| b.max.to_string())),
            ("hook_batch_linger", batch.map(|b| ms(b.linger))),
            ("dead_letter", Some(path(&h.dead_letter))),
            ("shutdown_grace", Some(secs(c.grace))),
            ("hook_flush", Some(secs(h.flush))),
            ("http", c.metrics.map(|a| text(&a.to_string()))),
            ("shards", Some(c.shards.to_string())),
            ("io", Some(text(&c.io.to_string()))),
            ("xdp_busy_poll", Some(c.xdp_busy_poll.to_string())),
            ("coalesce_us", Some(c.coalesce.as_micros().to_string())),
            ("pin", Some(c.pin.to_string())),
            ("account_sid", s.account_sid.as_deref().map(text)),
            ("application_sid", s.application_sid.as_deref().map(text)),
            ("project_id", Some(text(&s.project_id))),
            ("space_id", Some(text(&s.space_id))),
            ("node_id", Some(text(&s.node_id))),
        ];
        let mut out = String::new();
        for (key, value) in keys {
            match value {
                Some(v) => out.push_str(&format!("{key} = {v}\n")),
                None => out.push_str(&format!("# {key} (unset)\n")),
            }
        }
        for (key, set) in [("webhook_secret", h.secret.is_some()), ("api_token", c.api_token.is_some())] {
            out.push_str(&format!("# {key} ({})\n", if set { "set, not shown" } else { "unset" }));
        }
        if let Some(env) = &s.env_vars {
            let table = toml::Value::try_from(env).map_err(|e| format!("env_vars: {e}"))?;
            out.push_str(&format!("\n[env_vars]\n{}", toml::to_string(&table).unwrap_or_default()));
        }
        if let Some(profile) = self.profiles.as_ref().filter(|p| !p.is_empty()) {
            #[derive(serde::Serialize)]
            struct Profiles<'a> {
                profile: &'a [ProfileToml],
            }
            let tables = toml::to_string(&Profiles { profile }).map_err(|e| format!("profile: {e}"))?;
            out.push_str(&format!("\n{tables}"));
        }
        Ok(out)
    }
}

fn parse_io(s: &str) -> Result<IoMode, String> {
    s.parse()
}

/// A rate or count flag: a finite number, 0 or more.
fn at_least_zero(flag: &str, value: Option<f64>, default: f64) -> Result<f64, String> {
    match value {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Some(v) => Err(format!("{flag} {v}: must be a number, 0 or more")),
        None => Ok(default),
    }
}

/// A duration flag in seconds: above 0, at most a day.
fn seconds(flag: &str, value: Option<f64>, default: Duration) -> Result<Duration, String> {
    match value {
        Some(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!("{flag} {s}: must be above 0 and at most 86400 seconds")),
        None => Ok(default),
    }
}

fn absolute(url: &str) -> Result<url::Url, String> {
    url::Url::parse(url).map_err(|e| format!("{url:?} is not an absolute URL: {e}"))
}

/// `[udp:]IP:PORT`
/// `[udp:|tcp:|tls:]IP:PORT`: the transport (UDP when not written) and the address.
pub fn parse_listen(value: &str) -> Result<(Transport, SocketAddr), String> {
    let (transport, addr) = match value.split_once(':') {
        Some((t, rest)) if t.chars().all(|c| c.is_ascii_alphabetic()) => (t, rest),
        _ => ("udp", value),
    };
    let transport = transport.parse::<Transport>().map_err(|e| format!("--listen {value}: {e}"))?;
    let addr = addr.parse().map_err(|_| format!("--listen {value}: expected [udp:|tcp:|tls:]IP:PORT"))?;
    Ok((transport, addr))
}

impl Options {
    /// The TCP/TLS listeners, their certificate and limits.
    fn stream_settings(&self, listen: Vec<(Transport, SocketAddr)>) -> Result<StreamSettings, String> {
        let defaults = StreamSettings::default();
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone(), ca: self.tls_ca.clone() }),
            (None, None) if self.tls_ca.is_none() => None,
            _ => return Err("--tls-cert and --tls-key go together (and --tls-ca needs them)".into()),
        };
        if tls.is_none() && listen.iter().any(|(t, _)| *t == Transport::Tls) {
            return Err("a tls: listener needs --tls-cert and --tls-key".into());
        }
        let limits = Limits {
            max_message: self.max_message_size.unwrap_or(defaults.limits.max_message),
            idle: seconds("--tcp-idle", self.tcp_idle, defaults.limits.idle)?,
            per_source: self.tcp_per_source.unwrap_or(defaults.limits.per_source).max(1),
            max_connections: self.tcp_max_connections.unwrap_or(defaults.limits.max_connections).max(1),
        };
        Ok(StreamSettings { listen, tls, limits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("udp:127.0.0.1:5060"), Ok((Transport::Udp, "127.0.0.1:5060".parse().unwrap())));
        assert_eq!(parse_listen("[::1]:5070"), Ok((Transport::Udp, "[::1]:5070".parse().unwrap())));
        let tcp = parse_listen("TCP:127.0.0.1:5060").unwrap();
        assert_eq!(tcp, (Transport::Tcp, "127.0.0.1:5060".parse().unwrap()));
        assert!(parse_listen("sctp:127.0.0.1:5060").unwrap_err().contains("unknown transport"));
        assert!(parse_listen("nonsense").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: Options = toml::from_str(
            "listen = [\"udp:127.0.0.1:5070\"]\ncall_hook = \"http://file/call\"\nmax_calls = 7\n[env_vars]\nA = \"b\"",
        )
        .unwrap();
        let flags = Options { call_hook: Some("http://flag/call".into()), ..Options::default() };
        let cfg = flags.over(file).into_server_config().unwrap();
        assert_eq!(cfg.listen, vec!["127.0.0.1:5070".parse().unwrap()]);
        assert_eq!(cfg.settings.call_hook.unwrap().url, "http://flag/call");
        assert_eq!(cfg.settings.max_calls, 7);
        assert_eq!(cfg.settings.env_vars, Some(serde_json::json!({"A": "b"})));
        assert!(toml::from_str::<Options>("bogus = 1").is_err());
        let file: Options = toml::from_str("shards = 3\nio = \"epoll\"\napp = \"examples/transfer.json\"").unwrap();
        let cfg = Options::default().over(file).into_server_config().unwrap();
        assert_eq!((cfg.shards, cfg.io, cfg.pin), (3, IoMode::Epoll, true));
        assert_eq!("xdp:veth0".parse(), Ok(IoMode::Xdp("veth0".into())));
        assert!("xdp:".parse::<IoMode>().is_err());
        let flags = Options { shards: Some(0), app: Some("examples/transfer.json".into()), ..Options::default() };
        assert!(flags.into_server_config().unwrap_err().contains("--shards must be at least 1"));
        assert!(Options::default().into_server_config().unwrap_err().contains("--call-hook"));
        let app = || Some("examples/transfer.json".into());
        let cfg = Options { hook_wait: Some(2.5), app: app(), ..Options::default() }.into_server_config().unwrap();
        assert_eq!(cfg.settings.hook_wait, Duration::from_millis(2500));
        let cfg = Options { app: app(), ..Options::default() }.into_server_config().unwrap();
        assert_eq!(cfg.settings.hook_wait, Duration::from_secs(30));
        let bad = Options { hook_wait: Some(0.0), app: app(), ..Options::default() }.into_server_config();
        assert!(bad.unwrap_err().contains("--hook-wait 0: must be above 0"));
        assert_eq!(cfg.coalesce, Duration::from_micros(200));
        let file: Options = toml::from_str("coalesce_us = 0\napp = \"examples/transfer.json\"").unwrap();
        assert_eq!(Options::default().over(file).into_server_config().unwrap().coalesce, Duration::ZERO);
        let bad = Options { coalesce_us: Some(50_001), app: app(), ..Options::default() }.into_server_config();
        assert!(bad.unwrap_err().contains("--coalesce-us 50001: at most 50000"));
    }
}
