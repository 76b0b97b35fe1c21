//! The XDP program that steers SIP datagrams to the shards' AF_XDP sockets, assembled here
//! from eBPF instructions (no C toolchain at build or run time), and the bpf(2) calls that
//! load it, make its socket map and attach it to the interface.
//!
//! The program lets through to the kernel everything that is not an unfragmented UDP
//! datagram to the listen address and port (ARP, ICMP, TCP, other ports, IPv4 with
//! options, IP fragments); what is, it redirects to the socket of the receive queue it
//! arrived on, or passes to the kernel when that queue has none.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One eBPF instruction (linux/bpf.h `struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: dst | (src << 4), off, imm }
    }

    fn bytes(&self) -> [u8; 8] {
        let mut b = [0; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const LDX_B: u8 = 0x71;
const ADD_K: u8 = 0x07;
const AND_K: u8 = 0x57;
const MOV_K: u8 = 0xb7;
const MOV_X: u8 = 0xbf;
const JA: u8 = 0x05;
const JGT_X: u8 = 0x2d;
/// 32-bit compares (BPF_JMP32): an address or port is a u32, and a 64-bit compare would
/// sign-extend the immediate.
const JEQ32_K: u8 = 0x16;
const JNE32_K: u8 = 0x56;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const LD_IMM64: u8 = 0x18;
const PSEUDO_MAP_FD: u8 = 1;
const HELPER_REDIRECT_MAP: i32 = 51;
const XDP_PASS: i32 = 2;

/// Jump targets, resolved when the program is finished.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    V4,
    V6,
    Redirect,
    Pass,
}

/// An assembler with forward jumps to labels.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    jumps: Vec<(usize, Label)>,
    labels: Vec<(Label, usize)>,
}

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn::new(code, dst, src, off, imm));
    }

    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.jumps.push((self.insns.len(), to));
        self.op(code, dst, src, 0, imm);
    }

    fn label(&mut self, l: Label) {
        self.labels.push((l, self.insns.len()));
    }

    /// `if packet + len > end goto pass`: what the verifier needs before reading `len` bytes.
    fn need(&mut self, len: i32) {
        self.op(MOV_X, 4, 2, 0, 0);
        self.op(ADD_K, 4, 0, 0, len);
        self.jump(JGT_X, 4, 3, 0, Label::Pass);
    }

    /// `if (u32) load(off) != value goto pass`.
    fn require(&mut self, load: u8, off: i16, value: i32) {
        self.op(load, 5, 2, off, 0);
        self.jump(JNE32_K, 5, 0, value, Label::Pass);
    }

    fn finish(mut self) -> Vec<Insn> {
        for (at, to) in std::mem::take(&mut self.jumps) {
            let target = self.labels.iter().find(|(l, _)| *l == to).map_or(at + 1, |(_, i)| *i);
            self.insns[at].off = (target as i64 - at as i64 - 1) as i16;
        }
        self.insns
    }
}

/// A u32 the program loads from the packet, as the bytes lie in memory (network order read
/// little-endian).
fn wire_u32(b: [u8; 4]) -> i32 {
    i32::from_le_bytes(b)
}

fn wire_u16(port: u16) -> i32 {
    i32::from(u16::from_le_bytes(port.to_be_bytes()))
}

/// The program for one listen address; `map` is the socket map's fd. An unspecified IP
/// (0.0.0.0, ::) matches any destination address of that family.
fn program(listen: SocketAddr, map: i32) -> Vec<Insn> {
    const ETH: i32 = 14;
    let mut a = Asm::default();
    a.op(MOV_X, 6, 1, 0, 0); // r6 = ctx
    a.op(LDX_W, 2, 1, 0, 0); // r2 = data
    a.op(LDX_W, 3, 1, 4, 0); // r3 = data_end
    a.need(ETH);
    a.op(LDX_H, 5, 2, 12, 0);
    a.jump(JEQ32_K, 5, 0, wire_u16(0x0800), Label::V4);
    a.jump(JEQ32_K, 5, 0, wire_u16(0x86dd), Label::V6);
    a.jump(JA, 0, 0, 0, Label::Pass);
    a.label(Label::V4);
    if let IpAddr::V4(ip) = listen.ip() {
        a.need(ETH + 20 + 8);
        a.require(LDX_B, 14, 0x45); // version 4, no options
        a.require(LDX_B, 23, 17); // UDP
        a.op(LDX_H, 5, 2, 20, 0); // flags and fragment offset
        a.op(AND_K, 5, 0, 0, wire_u16(0x3fff)); // MF and the offset: any fragment
        a.jump(JNE32_K, 5, 0, 0, Label::Pass);
        if !ip.is_unspecified() {
            a.require(LDX_W, 30, wire_u32(ip.octets()));
        }
        a.require(LDX_H, 36, wire_u16(listen.port()));
        a.jump(JA, 0, 0, 0, Label::Redirect);
    } else {
        a.jump(JA, 0, 0, 0, Label::Pass);
    }
    a.label(Label::V6);
    if let IpAddr::V6(ip) = listen.ip() {
        a.need(ETH + 40 + 8);
        a.require(LDX_B, 20, 17); // next header UDP (no extension headers)
        if !ip.is_unspecified() {
            for (i, word) in ip.octets().chunks_exact(4).enumerate() {
                let word = [word[0], word[1], word[2], word[3]];
                a.require(LDX_W, 38 + 4 * i as i16, wire_u32(word));
            }
        }
        a.require(LDX_H, 56, wire_u16(listen.port()));
    } else {
        a.jump(JA, 0, 0, 0, Label::Pass);
    }
    a.label(Label::Redirect);
    a.op(LDX_W, 2, 6, 16, 0); // r2 = ctx->rx_queue_index
    a.op(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map);
    a.op(0, 0, 0, 0, 0);
    a.op(MOV_K, 3, 0, 0, XDP_PASS); // no socket on this queue: the kernel takes it
    a.op(CALL, 0, 0, 0, HELPER_REDIRECT_MAP);
    a.op(EXIT, 0, 0, 0, 0);
    a.label(Label::Pass);
    a.op(MOV_K, 0, 0, 0, XDP_PASS);
    a.op(EXIT, 0, 0, 0, 0);
    a.finish()
}

// bpf(2) commands and constants.
const MAP_CREATE: libc::c_long = 0;
const MAP_UPDATE_ELEM: libc::c_long = 2;
const PROG_LOAD: libc::c_long = 5;
const LINK_CREATE: libc::c_long = 28;
const MAP_TYPE_XSKMAP: u32 = 17;
const PROG_TYPE_XDP: u32 = 6;
const ATTACH_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;

/// `union bpf_attr`, as the bytes the kernel reads (every command's fields are at fixed
/// offsets; what a command does not use stays zero).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32(&mut self, at: usize, v: u32) -> &mut Attr {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64(&mut self, at: usize, v: u64) -> &mut Attr {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn call(&mut self, cmd: libc::c_long) -> io::Result<libc::c_long> {
        // SAFETY: `self` is a bpf_attr-sized buffer the kernel reads (and for some commands
        // writes) within its length; pointers in it point at live buffers of the caller.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_mut_ptr(), self.0.len() as u32) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    fn fd(&mut self, cmd: libc::c_long) -> io::Result<OwnedFd> {
        let fd = self.call(cmd)?;
        // SAFETY: a successful call returned a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic path, after the driver (slower; any interface).
    Generic,
}

/// The loaded program attached to one interface, with its socket map. Dropping it detaches
/// the program (the link's fd is its only owner).
pub struct Steering {
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
    pub attach: Attach,
}

impl Steering {
    /// Loads the program for `listen` and attaches it to `ifindex`, natively where the
    /// driver allows it, else generically. `queues` sockets fit in its map.
    pub fn attach(ifindex: u32, listen: SocketAddr, queues: u32) -> Result<Steering, String> {
        let why = |what: &str, e: io::Error| match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                format!("{what}: not permitted (baton needs CAP_BPF and CAP_NET_ADMIN, or root): {e}")
            }
            _ => format!("{what}: {e}"),
        };
        let map = Attr::new()
            .u32(0, MAP_TYPE_XSKMAP)
            .u32(4, 4)
            .u32(8, 4)
            .u32(12, queues.max(1))
            .fd(MAP_CREATE)
            .map_err(|e| why("creating the XDP socket map", e))?;
        let insns: Vec<u8> = program(listen, map.as_raw_fd()).iter().flat_map(Insn::bytes).collect();
        let license = c"GPL";
        let mut log = vec![0u8; 64 * 1024];
        let prog = Attr::new()
            .u32(0, PROG_TYPE_XDP)
            .u32(4, (insns.len() / 8) as u32)
            .u64(8, insns.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .u32(24, 1)
            .u32(28, log.len() as u32)
            .u64(32, log.as_mut_ptr() as u64)
            .u32(68, ATTACH_XDP)
            .fd(PROG_LOAD)
            .map_err(|e| {
                let verifier =
                    String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned();
                format!("{}; the verifier said: {}", why("loading the XDP program", e), verifier.trim())
            })?;
        let link = |flags: u32| {
            Attr::new()
                .u32(0, prog.as_raw_fd() as u32)
                .u32(4, ifindex)
                .u32(8, ATTACH_XDP)
                .u32(12, flags)
                .fd(LINK_CREATE)
        };
        let (link, attach) = match link(XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, Attach::Native),
            Err(native) => match link(XDP_FLAGS_SKB_MODE) {
                Ok(l) => {
                    tracing::info!(error = %native, "native XDP refused; attached in generic mode");
                    (l, Attach::Generic)
                }
                Err(e) => return Err(why("attaching the XDP program", e)),
            },
        };
        Ok(Steering { map, _prog: prog, _link: link, attach })
    }

    /// Steers what arrives on `queue` to the AF_XDP socket `xsk`.
    pub fn insert(&self, queue: u32, xsk: i32) -> io::Result<()> {
        let (key, value) = (queue, xsk as u32);
        Attr::new()
            .u32(0, self.map.as_raw_fd() as u32)
            .u64(8, &key as *const u32 as u64)
            .u64(16, &value as *const u32 as u64)
            .call(MAP_UPDATE_ELEM)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_their_labels_and_the_program_ends_in_exit() {
        for listen in ["10.77.0.1:5060", "0.0.0.0:5060", "[fd00::1]:5060"] {
            let p = program(listen.parse().unwrap(), 7);
            assert_eq!(p.last().map(|i| i.code), Some(EXIT));
            for (i, insn) in p.iter().enumerate() {
                let target = i as i64 + 1 + i64::from(insn.off);
                if matches!(insn.code, JA | JGT_X | JEQ32_K | JNE32_K) {
                    assert!(target > i as i64 && (target as usize) < p.len(), "{listen}: jump at {i} to {target}");
                }
            }
            // The map fd is in the wide load, marked as one.
            assert!(p.iter().any(|i| i.code == LD_IMM64 && i.regs == 1 | (PSEUDO_MAP_FD << 4) && i.imm == 7));
        }
    }

    #[test]
    fn constants_are_in_wire_order() {
        assert_eq!(wire_u16(5060).to_le_bytes()[..2], 5060u16.to_be_bytes());
        assert_eq!(wire_u32([10, 77, 0, 1]).to_le_bytes(), [10, 77, 0, 1]);
    }
}
