#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use baton::config::Options;
use baton::server::Server;
use baton_proto::{parse_document, parse_document_within};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "baton", version, about = "SIP REFER blind-transfer engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text, or as one JSON object each (for log shippers).
    #[arg(long, global = true, value_name = "text|json", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Receive calls and run their applications.
    Serve {
        /// A TOML file with any of the flags below (snake_case keys); flags win.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<Options>,
    },
    /// Play a carrier against a running baton: call in at a fixed rate, accept each REFER,
    /// report NOTIFY 100/180/200, expect BYE; prints throughput and latency.
    Load {
        #[arg(long, value_name = "IP:PORT")]
        target: std::net::SocketAddr,
        /// Calls started per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds to start calls for.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Exactly this many calls (instead of rate × duration).
        #[arg(long)]
        calls: Option<u64>,
        /// Local address to send from.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: std::net::SocketAddr,
        /// Generator threads, each with its own source port and a share of the rate.
        #[arg(long, default_value_t = 1)]
        shards: usize,
        /// Serve a hook sink on this address for the run (point baton's hooks at it) and
        /// report the events it received.
        #[arg(long, value_name = "IP:PORT")]
        hook_sink: Option<std::net::SocketAddr>,
        /// udp, or tcp/tls: one connection per generator thread.
        #[arg(long, default_value = "udp")]
        transport: baton_proto::Transport,
        /// For tls: the CA baton's certificate chains to (default: the web's roots).
        #[arg(long, value_name = "FILE")]
        tls_ca: Option<PathBuf>,
    },
    /// See baton work: a server and a carrier in one process on loopback, transferring
    /// calls for a while with a live progress line, then the report.
    Demo {
        /// Calls started per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Send the hooks of a dead-letter file again. What still fails stays in the file.
    Replay {
        file: PathBuf,
        /// Signs each request, as `serve` does.
        #[arg(long, value_name = "SECRET", env = "BATON_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        /// Timeout of one request in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 5000)]
        hook_timeout_ms: u64,
    },
    /// Print the configuration `serve` would run with, every key with its value (defaults
    /// included), as TOML; a bad one is explained as `serve` would.
    Config {
        /// A TOML file with any of `serve`'s flags (snake_case keys); flags win.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<Options>,
    },
    /// Validate application documents, and a configuration file with its trunk profiles:
    /// prints each problem, exits 1 if there is any.
    Check {
        /// A configuration file, checked as `serve` would check it; documents are then
        /// checked under its rules (`media`, `max_verbs`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Check documents as a server with `--media skip` would load them.
        #[arg(long, value_enum, value_name = "refuse|skip")]
        media: Option<baton::config::MediaArg>,
        #[arg(required_unless_present = "config")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    match cli.log_format.as_str() {
        "json" => logs.json().init(),
        _ => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match cli.command {
        Command::Serve { config, options } => serve(config, *options),
        Command::Check { config, media, files } => check(config.as_deref(), media, &files),
        Command::Config { config, options } => match merged(config, *options).and_then(|o| o.effective()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Demo { rate, duration } => demo(rate, duration),
        Command::Load { target, rate, duration, calls, bind, shards, hook_sink, transport, tls_ca } => {
            load(&baton::load::LoadConfig {
                target,
                rate,
                duration: std::time::Duration::from_secs_f64(duration.max(0.0)),
                calls,
                bind,
                drain: std::time::Duration::from_secs(10),
                progress: true,
                shards,
                hook_sink,
                transport,
                tls_ca,
            })
        }
        Command::Replay { file, webhook_secret, hook_timeout_ms } => {
            replay(&file, webhook_secret.as_deref(), std::time::Duration::from_millis(hook_timeout_ms))
        }
    }
}

/// The flags over the file, if there is one.
fn merged(config: Option<PathBuf>, flags: Options) -> Result<Options, String> {
    Ok(match config.as_deref().map(Options::from_file).transpose()? {
        Some(file) => flags.over(file),
        None => flags,
    })
}

fn serve(config: Option<PathBuf>, flags: Options) -> ExitCode {
    let options = match merged(config, flags) {
        Ok(options) => options,
        Err(e) => return fail(&e),
    };
    let config = match options.into_server_config() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let edge = &config.settings.edge;
    let allow: Vec<String> = edge.allow.iter().map(ToString::to_string).collect();
    tracing::info!(
        invites_per_s = edge.invite_rate,
        burst = edge.invite_burst,
        unconfirmed = edge.unconfirmed,
        allow = if allow.is_empty() { "anyone".to_string() } else { allow.join(",") },
        "per-source admission (a load test from one address needs a higher --source-rate)"
    );
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    for addr in server.local_addrs() {
        tracing::info!(%addr, "listening (udp)");
    }
    for (transport, addr) in server.stream_addrs() {
        tracing::info!(%addr, "listening ({transport})");
    }
    if let Some(addr) = server.metrics_addr() {
        tracing::info!(%addr, "HTTP endpoint on http://{addr}/ (healthz, readyz, metrics, v1/calls)");
    }
    // SIGHUP reads the TLS certificate again; SIGINT or SIGTERM ends.
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        match server.reload_tls() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded (open connections keep theirs)"),
            Err(e) => tracing::warn!(error = %e, "SIGHUP: TLS certificate not reloaded; the one in use stays"),
        }
    }
    tracing::info!("signal: shutting down gracefully (a second signal stops at once)");
    let stopper = server.stopper();
    std::thread::spawn(move || {
        if signals.forever().any(|s| s != SIGHUP) {
            stopper.stop();
        }
    });
    let stats = server.shutdown();
    tracing::info!(?stats, "stopped");
    ExitCode::SUCCESS
}

fn check(config: Option<&std::path::Path>, media: Option<baton::config::MediaArg>, files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    let mut rules =
        baton_proto::DocRules { media: media.map_or_else(Default::default, Into::into), ..Default::default() };
    if let Some(path) = config {
        match Options::from_file(path).and_then(|o| o.over(Options::default()).into_server_config()) {
            Ok(server) => {
                let profiles: Vec<&str> = server.settings.profiles.iter().map(|p| p.name.as_str()).collect();
                println!("{}: ok ({} trunk profiles: {})", path.display(), profiles.len(), profiles.join(", "));
                rules = baton_proto::DocRules {
                    media: media.map_or(server.hooks.rules.media, Into::into),
                    ..server.hooks.rules
                };
            }
            Err(e) => {
                ok = false;
                for line in e.lines().filter(|l| !l.trim().is_empty()) {
                    println!("{}: {}", path.display(), line.trim());
                }
            }
        }
    }
    for path in files {
        let result = std::fs::read_to_string(path).map_err(|e| vec![e.to_string()]).and_then(|text| {
            parse_document_within(&text, rules).map_err(|errors| errors.iter().map(ToString::to_string).collect())
        });
        match result {
            Ok(app) => println!("{}: ok ({})", path.display(), app.summary()),
            Err(problems) => {
                ok = false;
                for p in problems {
                    println!("{}: {p}", path.display());
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The demo's application: transfer every call to an agent.
const DEMO_APP: &str = r#"[{"verb": "sip:refer", "referTo": "agent"}]"#;

fn demo(rate: f64, duration: f64) -> ExitCode {
    let app = match parse_document(DEMO_APP) {
        Ok(app) => app,
        Err(e) => return fail(&format!("demo application: {e:?}")),
    };
    let config = baton::server::ServerConfig {
        listen: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))],
        // The load generator is one source calling faster than any trunk.
        settings: baton_proto::Settings { app: Some(app), edge: baton_proto::EdgeLimits::lab(), ..Default::default() },
        hooks: Default::default(),
        grace: std::time::Duration::from_secs(5),
        // One shard: the load generator in this process needs the other core.
        ..Default::default()
    };
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let Some(&target) = server.local_addrs().first() else { return fail("the demo server has no address") };
    println!("baton listening on udp:{target}; a carrier calls in at {rate}/s for {duration}s, accepts each REFER,");
    println!("reports NOTIFY 100/180/200 and expects baton's BYE (hooks off).");
    let code = load(&baton::load::LoadConfig {
        target,
        rate,
        duration: std::time::Duration::from_secs_f64(duration.max(0.0)),
        calls: None,
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        drain: std::time::Duration::from_secs(10),
        progress: true,
        shards: 1,
        hook_sink: None,
        transport: baton_proto::Transport::Udp,
        tls_ca: None,
    });
    server.shutdown();
    code
}

fn load(cfg: &baton::load::LoadConfig) -> ExitCode {
    if cfg.rate.is_nan() || cfg.rate <= 0.0 {
        return fail("--rate must be above 0");
    }
    match baton::load::run(cfg) {
        Ok(report) => {
            println!("{report}");
            if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn replay(path: &std::path::Path, secret: Option<&str>, timeout: std::time::Duration) -> ExitCode {
    let letters = match baton::hooks::dead_letter::read(path) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let total = letters.len();
    let failed = match baton::hooks::worker::replay(letters, secret, timeout) {
        Ok(f) => f,
        Err(e) => return fail(&e.to_string()),
    };
    // What still fails replaces the file, so it always holds exactly what is undelivered.
    let kept = failed.iter().filter_map(|l| serde_json::to_string(l).ok()).map(|l| l + "\n").collect::<String>();
    let tmp = path.with_extension("replaying");
    let written = if failed.is_empty() {
        std::fs::remove_file(path)
    } else {
        std::fs::write(&tmp, kept).and_then(|_| std::fs::rename(&tmp, path))
    };
    if let Err(e) = written {
        return fail(&format!("{}: {e}", path.display()));
    }
    println!("{total} replayed: {} delivered, {} failed", total - failed.len(), failed.len());
    for letter in &failed {
        println!("  {} {} ({}): {}", letter.method, letter.url, letter.call_sid, letter.last_error);
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("baton: {message}");
    ExitCode::from(2)
}
