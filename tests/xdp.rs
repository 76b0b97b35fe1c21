//! `--io xdp`: the real binary in a network namespace of the test's own, a carrier in
//! another, joined by a veth pair (docs/operating.md, "Kernel bypass"). Needs root and a
//! kernel with AF_XDP; where either is missing the test says so and skips.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn ip(args: &[&str]) -> bool {
    run(Command::new("ip").args(args)).status.success()
}

/// Network namespaces of the test's own, removed on drop.
struct Lab {
    ns: Vec<String>,
    /// Unique to this lab: names its links and its 10.N.x.y networks.
    n: u32,
}

impl Lab {
    fn new(count: usize) -> Option<Lab> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = 80 + NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = (0..count).map(|i| format!("bt{i}-{}-{n}", std::process::id())).collect();
        let lab = Lab { ns, n };
        lab.ns.iter().all(|ns| ip(&["netns", "add", ns]) && ip(&["-n", ns, "link", "set", "lo", "up"])).then_some(lab)
    }

    /// A veth pair from namespace `a` to `b` (two queues each side), with these addresses
    /// (`x.y` within this lab's 10.N network); returns the interfaces' names.
    fn link(&self, (a, addr_a): (usize, &str), (b, addr_b): (usize, &str)) -> Option<(String, String)> {
        let (name_a, name_b) = (format!("x{}-{a}{b}", self.n), format!("x{}-{b}{a}", self.n));
        let (ns_a, ns_b) = (self.ns[a].as_str(), self.ns[b].as_str());
        let ok = ip(&[
            "link",
            "add",
            &name_a,
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
            "netns",
            ns_a,
            "type",
            "veth",
            "peer",
            "name",
            &name_b,
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
            "netns",
            ns_b,
        ]) && ip(&["-n", ns_a, "addr", "add", &format!("10.{}.{addr_a}/24", self.n), "dev", &name_a])
            && ip(&["-n", ns_b, "addr", "add", &format!("10.{}.{addr_b}/24", self.n), "dev", &name_b])
            && ip(&["-n", ns_a, "link", "set", &name_a, "up"])
            && ip(&["-n", ns_b, "link", "set", &name_b, "up"]);
        ok.then_some((name_a, name_b))
    }

    fn addr(&self, x_y: &str) -> String {
        format!("10.{}.{x_y}", self.n)
    }

    fn exec(&self, ns: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[ns], program]);
        c.stdin(Stdio::null());
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.ns {
            ip(&["netns", "del", ns]);
        }
    }
}

/// baton with `--io xdp` in namespace 0 of `lab`, its log collected.
struct XdpBaton {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for XdpBaton {
    /// A test that failed half-way leaves no baton running in its namespace.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl XdpBaton {
    /// None (after saying why) when the kernel refuses XDP here.
    fn start(lab: &Lab, listen: &str, iface: &str, extra: &[&str]) -> Option<XdpBaton> {
        let app = concat!(env!("CARGO_MANIFEST_DIR"), "/perf/apps/transfer.json");
        let mut child = lab
            .exec(0, env!("CARGO_BIN_EXE_baton"))
            .args(["serve", "--listen", listen, "--io", &format!("xdp:{iface}"), "--app", app])
            .args(["--source-rate", "1000000", "--source-burst", "1000000", "--source-unconfirmed", "1000000"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut baton = XdpBaton { child, log, reader: Some(reader) };
        let deadline = std::time::Instant::now() + common::WAIT;
        while !baton.text().contains("listening") {
            if let Ok(Some(status)) = baton.child.try_wait() {
                baton.reader.take().map(|r| r.join());
                let out = baton.text();
                if out.contains("XDP") {
                    skip(&format!("the kernel refused: {out}"));
                    return None;
                }
                panic!("baton exited ({status}) before listening:\n{out}");
            }
            assert!(std::time::Instant::now() < deadline, "baton did not start:\n{}", baton.text());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mode = baton.text();
        assert!(mode.contains("io=\"xdp native") || mode.contains("io=\"xdp generic"), "{mode}");
        Some(baton)
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// What the shards received, by path, once baton has stopped: every datagram of the
    /// carrier on the ring, none by the kernel's socket. The answer to a load's last BYE
    /// may still be in flight when the load ends and baton is stopped: one per load may be
    /// missing.
    fn all_on_the_ring(counted: &dyn Fn(&str) -> u64, sent: u64, loads: u64) {
        let ring = counted("ring_in");
        assert!(ring <= sent && ring + loads >= sent, "{ring} of {sent} datagrams on the ring");
        assert_eq!(counted("socket_in"), 0);
    }

    /// Stops baton and sums what its shards logged of one path counter.
    fn stop(mut self) -> impl Fn(&str) -> u64 {
        assert!(run(Command::new("kill").args(["-INT", &self.child.id().to_string()])).status.success());
        assert!(self.child.wait().unwrap().success());
        self.reader.take().map(|r| r.join());
        let text = self.text();
        move |key: &str| {
            text.lines()
                .filter(|l| l.contains("datagrams by path"))
                .filter_map(|l| l.split(&format!("{key}=")).nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        }
    }
}

/// `baton load` from namespace `ns`: `calls` transfers, all of which must complete.
/// Returns its report.
fn load(lab: &Lab, ns: usize, target: &str, bind: &str, calls: u32) -> String {
    let (target, bind, n) = (format!("{target}:5060"), format!("{bind}:0"), calls.to_string());
    let out = run(lab
        .exec(ns, env!("CARGO_BIN_EXE_baton"))
        .args(["load", "--target", &target, "--bind", &bind, "--calls", &n, "--rate", "500"]));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains(&format!("calls {calls} completed {calls} refused (503) 0 failed 0")), "{report}");
    report
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        == Some(0)
}

fn skip(why: &str) {
    eprintln!("SKIPPED (xdp): {why}");
}

#[test]
fn transfers_cross_a_veth_on_the_rings_while_the_kernel_keeps_arp_and_icmp() {
    if !is_root() {
        return skip("not root: network namespaces and XDP need it");
    }
    let Some(lab) = Lab::new(2) else { return skip("could not make network namespaces") };
    let Some((xa, _)) = lab.link((0, "0.1"), (1, "0.2")) else { return skip("could not make a veth pair") };
    let baton_ip = lab.addr("0.1");
    let Some(baton) = XdpBaton::start(&lab, &format!("udp:{baton_ip}:5060"), &xa, &["--shards", "2"]) else {
        return;
    };
    // The carrier forgets baton's Ethernet address: ARP has to be answered with XDP attached.
    ip(&["-n", &lab.ns[1], "neigh", "flush", "all"]);
    load(&lab, 1, &baton_ip, &lab.addr("0.2"), 500);
    let neigh = run(Command::new("ip").args(["-n", &lab.ns[1], "neigh", "show", &baton_ip]));
    assert!(String::from_utf8_lossy(&neigh.stdout).contains("lladdr"), "ARP was answered");
    match lab.exec(1, "ping").args(["-c", "2", "-W", "2", &baton_ip]).output() {
        Ok(out) => assert!(out.status.success(), "ICMP answered: {}", String::from_utf8_lossy(&out.stdout)),
        Err(e) => skip(&format!("no ping here ({e}): ICMP not checked")),
    }
    // The carrier's Ethernet address changes: the kernel learns it from the carrier's next
    // ARP request and says so, and baton's next frames go to the new address at once (not
    // after its periodic re-read, which would leave 5 s of answers going nowhere).
    let xb = format!("x{}-10", lab.n);
    assert!(ip(&["-n", &lab.ns[1], "link", "set", "dev", &xb, "address", "02:00:00:00:77:02"]));
    ip(&["-n", &lab.ns[1], "neigh", "flush", "all"]);
    let report = load(&lab, 1, &baton_ip, &lab.addr("0.2"), 100);
    assert!(report.contains("retransmissions seen 0"), "{report}");
    let counted = baton.stop();
    // 600 calls bring INVITE, ACK, 202, three NOTIFYs and the BYE's 200: 7 datagrams each;
    // baton sends the 200, the REFER, three 200s and the BYE: 6. Only a datagram sent before
    // the kernel knew the carrier's Ethernet address may take the socket.
    XdpBaton::all_on_the_ring(&counted, 4200, 2);
    assert_eq!(counted("ring_out") + counted("socket_out"), 3600);
    assert!(counted("socket_out") <= 2, "{}", counted("socket_out"));
}

#[test]
fn a_carrier_behind_a_router_is_reached_through_the_gateway() {
    if !is_root() {
        return skip("not root: network namespaces and XDP need it");
    }
    // baton (0) -- router (1) -- carrier (2), on two networks.
    let Some(lab) = Lab::new(3) else { return skip("could not make network namespaces") };
    let (Some((xa, _)), Some(_)) = (lab.link((0, "0.1"), (1, "0.254")), lab.link((1, "1.254"), (2, "1.2"))) else {
        return skip("could not make the veth pairs");
    };
    let routed = ip(&["-n", &lab.ns[0], "route", "add", "default", "via", &lab.addr("0.254")])
        && ip(&["-n", &lab.ns[2], "route", "add", "default", "via", &lab.addr("1.254")])
        && run(lab.exec(1, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"])).status.success();
    assert!(routed, "routes and forwarding");
    let baton_ip = lab.addr("0.1");
    // This one spins on its ring rather than sleeping (one shard: it takes a whole core).
    let busy = ["--xdp-busy-poll", "true", "--shards", "1"];
    let Some(baton) = XdpBaton::start(&lab, &format!("udp:{baton_ip}:5060"), &xa, &busy) else { return };
    load(&lab, 2, &baton_ip, &lab.addr("1.2"), 200);
    let counted = baton.stop();
    XdpBaton::all_on_the_ring(&counted, 1400, 1);
    // Frames to the carrier go to the router's Ethernet address.
    assert_eq!(counted("ring_out") + counted("socket_out"), 1200);
    assert!(counted("socket_out") <= 2, "{}", counted("socket_out"));
}

#[test]
fn a_missing_interface_or_a_wildcard_address_is_a_clean_error() {
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/perf/apps/transfer.json");
    let out = run(baton().args(["serve", "--listen", "udp:127.0.0.1:0", "--io", "xdp:nosuch0", "--app", app]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--io xdp:nosuch0: no such network interface"), "{err}");
    let out = run(baton().args(["serve", "--listen", "udp:0.0.0.0:0", "--io", "xdp:lo", "--app", app]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--io xdp:lo: listen on an address of lo (not 0.0.0.0)"), "{err}");
    let out = run(baton().args(["serve", "--listen", "udp:127.0.0.1:0", "--io", "xdp", "--app", app]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be auto, uring, epoll or xdp:INTERFACE"));
    // Without the privileges, the message names them.
    if !is_root() {
        return skip("not root: the privilege message is not checked");
    }
    let unprivileged = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(env!("CARGO_BIN_EXE_baton"))
        .args(["serve", "--listen", "udp:127.0.0.1:0", "--io", "xdp:lo", "--app", app])
        .stdin(Stdio::null())
        .output();
    match unprivileged {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("not permitted (baton needs CAP_BPF and CAP_NET_ADMIN, or root)"), "{err}");
        }
        Err(e) => skip(&format!("no setpriv here ({e}): the privilege message is not checked")),
    }
}
