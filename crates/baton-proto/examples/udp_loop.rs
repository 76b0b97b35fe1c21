//! baton's transfer engine inside another program: one `std::net::UdpSocket`, one thread,
//! no runtime. Every call that arrives runs the application (by default: answer, REFER to
//! `agent`, report). Hooks are printed as JSON lines; one the call waits for is answered
//! "go on". A real embedding hands them to its own HTTP client instead.
//!
//!     cargo run -p baton-proto --example udp_loop -- [IP:PORT] [APP.json]

use baton_proto::{parse_document, Answer, Engine, Flow, HookReply, Output, Seed, Settings};
use std::error::Error;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:5060".into());
    let app = match args.next() {
        Some(path) => std::fs::read_to_string(path)?,
        None => r#"[{"verb": "sip:refer", "referTo": "agent", "actionHook": "/transferred"}]"#.into(),
    };
    // A bad document is refused with every problem, each with its verb index and property.
    let app = parse_document(&app).map_err(|problems| format!("{problems:?}"))?;

    let socket = UdpSocket::bind(&listen)?;
    let local = socket.local_addr()?;
    let settings = Settings { app: Some(app), ..Settings::default() };
    let mut engine = Engine::new(Arc::new(settings), 0, Seed::from_os()?);
    eprintln!("transferring calls on udp:{local}");

    let mut buf = vec![0u8; 65_535];
    loop {
        // Sleep until a datagram arrives or the engine's next deadline (it never reads
        // the clock: `now` is always handed in).
        let wait = engine.poll_timeout().map(|t| t.saturating_duration_since(Instant::now()));
        socket.set_read_timeout(Some(wait.unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(1))))?;
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => engine.handle_receive(Instant::now(), Flow::udp(local, peer), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
        engine.handle_timeout(Instant::now());
        while let Some(output) = engine.poll_output() {
            match output {
                Output::Transmit(t) => {
                    socket.send_to(&t.bytes, t.dst)?;
                }
                Output::Hook(job) => {
                    let body = job.body.json().map(|json| json.to_string()).unwrap_or_default();
                    println!("{{\"hook\": {:?}, \"body\": {body}}}", job.hook.url);
                    if let Some(to) = job.reply {
                        let reply =
                            HookReply { shard: to.shard, call: to.call, token: to.token, outcome: Ok(Answer::Nothing) };
                        engine.handle_hook_reply(Instant::now(), reply);
                    }
                }
                Output::CallGone(_) => {}
            }
        }
    }
}
