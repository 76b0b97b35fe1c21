//! One AF_XDP socket with its own UMEM: the memory frames live in, and the four rings the
//! kernel and the shard pass frame addresses through (fill and RX for receiving, TX and
//! completion for sending). Single-producer, single-consumer rings in shared memory; the
//! shard's thread is the only user of its socket.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const AF_XDP: i32 = 44;
const SOL_XDP: i32 = 283;
const XDP_MMAP_OFFSETS: i32 = 1;
const XDP_RX_RING: i32 = 2;
const XDP_TX_RING: i32 = 3;
const XDP_UMEM_REG: i32 = 4;
const XDP_UMEM_FILL_RING: i32 = 5;
const XDP_UMEM_COMPLETION_RING: i32 = 6;
const PGOFF_RX: i64 = 0;
const PGOFF_TX: i64 = 0x8000_0000;
const PGOFF_FILL: i64 = 0x1_0000_0000;
const PGOFF_COMPLETION: i64 = 0x1_8000_0000;
const XDP_COPY: u16 = 1 << 1;
const XDP_ZEROCOPY: u16 = 1 << 2;

/// Bytes per frame: a page, so any Ethernet frame fits.
pub const FRAME: usize = 4096;
/// Frames in the UMEM: half lent to the kernel for receiving, half kept for sending.
const FRAMES: usize = 4096;
/// Entries of each ring.
const RING: u32 = 2048;

#[repr(C)]
#[derive(Default)]
struct UmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fr: RingOffset,
    cr: RingOffset,
}

#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

/// A mapped ring: its two indexes and its entries (`T`: a frame address for fill and
/// completion, a descriptor for RX and TX).
struct Ring<T> {
    map: *mut libc::c_void,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    /// This side's copy of the index it moves.
    local: u32,
}

/// An RX or TX descriptor (linux/if_xdp.h `struct xdp_desc`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, off: RingOffset, pgoff: i64) -> io::Result<Ring<T>> {
        let len = off.desc as usize + RING as usize * std::mem::size_of::<T>();
        // SAFETY: maps the ring the kernel made for this socket, at the offset it named.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let at = |o: u64| map.cast::<u8>().wrapping_add(o as usize);
        Ok(Ring {
            map,
            map_len: len,
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            entries: at(off.desc).cast(),
            mask: RING - 1,
            local: 0,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, at a u32 the kernel shares with us.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { &*self.consumer }
    }

    fn slot(&self, i: u32) -> *mut T {
        self.entries.wrapping_add((i & self.mask) as usize)
    }

    /// Producer side: entries free to fill.
    fn free(&self) -> u32 {
        RING - self.local.wrapping_sub(self.consumer().load(Ordering::Acquire))
    }

    /// Producer side: writes one entry (the caller checked `free`).
    fn push(&mut self, v: T) {
        // SAFETY: the slot is inside the mapping and not owned by the kernel (free > 0).
        unsafe { self.slot(self.local).write(v) };
        self.local = self.local.wrapping_add(1);
    }

    /// Producer side: hands what was pushed to the kernel.
    fn submit(&self) {
        self.producer().store(self.local, Ordering::Release);
    }

    /// Consumer side: entries ready to read.
    fn ready(&self) -> u32 {
        self.producer().load(Ordering::Acquire).wrapping_sub(self.local)
    }

    /// Consumer side: reads one entry (the caller checked `ready`).
    fn pop(&mut self) -> T {
        // SAFETY: the kernel published this slot (ready > 0) and will not touch it until
        // the consumer index moves past it.
        let v = unsafe { self.slot(self.local).read() };
        self.local = self.local.wrapping_add(1);
        v
    }

    /// Consumer side: gives what was read back to the kernel.
    fn release(&self) {
        self.consumer().store(self.local, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping `map` made; nothing refers to it after this.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// Whether the socket works on the driver's own memory or copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copying {
    ZeroCopy,
    Copy,
}

pub struct Xsk {
    fd: OwnedFd,
    umem: *mut u8,
    fill: Ring<u64>,
    completion: Ring<u64>,
    rx: Ring<Desc>,
    tx: Ring<Desc>,
    /// Frames kept for sending and not in flight.
    spare: Vec<u64>,
    /// TX descriptors pushed since the last kick.
    unsent: bool,
    pub copying: Copying,
}

// SAFETY: the raw pointers are into mappings this value owns; it moves to the shard thread
// before first use and is used there alone.
unsafe impl Send for Xsk {}

impl Xsk {
    /// A socket on `queue` of `ifindex`, zero-copy where the driver allows it, else copy mode.
    pub fn open(ifindex: u32, queue: u32) -> io::Result<Xsk> {
        // SAFETY: plain socket(2); the fd is owned below.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = FRAME * FRAMES;
        // SAFETY: anonymous private memory for the UMEM, owned by this value until drop.
        let umem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut xsk = Xsk::rings(fd, umem.cast(), len).inspect_err(|_| {
            // SAFETY: the mapping made above; no ring was made from it.
            unsafe { libc::munmap(umem, len) };
        })?;
        xsk.copying = xsk.bind(ifindex, queue)?;
        for i in 0..FRAMES / 2 {
            xsk.fill.push((i * FRAME) as u64);
        }
        xsk.fill.submit();
        Ok(xsk)
    }

    fn rings(fd: OwnedFd, umem: *mut u8, len: usize) -> io::Result<Xsk> {
        let raw = fd.as_raw_fd();
        let reg = UmemReg { addr: umem as u64, len: len as u64, chunk_size: FRAME as u32, ..Default::default() };
        setsockopt(raw, XDP_UMEM_REG, &reg)?;
        for opt in [XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING, XDP_TX_RING] {
            setsockopt(raw, opt, &RING)?;
        }
        let mut off = MmapOffsets::default();
        let mut size = std::mem::size_of::<MmapOffsets>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `size` bytes of offsets into `off`.
        let r = unsafe {
            libc::getsockopt(raw, SOL_XDP, XDP_MMAP_OFFSETS, (&mut off as *mut MmapOffsets).cast(), &mut size)
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fill = Ring::map(raw, off.fr, PGOFF_FILL)?;
        let completion = Ring::map(raw, off.cr, PGOFF_COMPLETION)?;
        let rx = Ring::map(raw, off.rx, PGOFF_RX)?;
        let mut tx = Ring::map(raw, off.tx, PGOFF_TX)?;
        // The producer rings start where the kernel's index is.
        fill.local = fill.producer().load(Ordering::Relaxed);
        tx.local = tx.producer().load(Ordering::Relaxed);
        let spare = (FRAMES / 2..FRAMES).map(|i| (i * FRAME) as u64).collect();
        Ok(Xsk { fd, umem, fill, completion, rx, tx, spare, unsent: false, copying: Copying::Copy })
    }

    fn bind(&self, ifindex: u32, queue: u32) -> io::Result<Copying> {
        let bind = |flags: u16| {
            let addr = SockaddrXdp { family: AF_XDP as u16, flags, ifindex, queue_id: queue, shared_umem_fd: 0 };
            // SAFETY: a sockaddr_xdp of the size given.
            let r = unsafe {
                libc::bind(
                    self.fd.as_raw_fd(),
                    (&addr as *const SockaddrXdp).cast(),
                    std::mem::size_of::<SockaddrXdp>() as u32,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        match bind(XDP_ZEROCOPY) {
            Ok(()) => Ok(Copying::ZeroCopy),
            Err(_) => bind(XDP_COPY).map(|()| Copying::Copy),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The frame a descriptor names.
    fn frame(&self, addr: u64, len: u32) -> &[u8] {
        let start = addr as usize;
        let end = (start + len as usize).min(FRAME * FRAMES);
        // SAFETY: inside the UMEM this value owns; the kernel handed this frame to us.
        unsafe { std::slice::from_raw_parts(self.umem.add(start), end.saturating_sub(start)) }
    }

    /// Whether received frames wait in the RX ring (read from shared memory: no system call).
    pub fn has_rx(&self) -> bool {
        self.rx.ready() > 0
    }

    /// Reads up to `budget` received frames, handing each to `each`, and lends their frames
    /// back to the kernel. Returns how many were read.
    pub fn receive(&mut self, budget: usize, each: &mut dyn FnMut(&[u8])) -> usize {
        let n = (self.rx.ready() as usize).min(budget).min(self.fill.free() as usize);
        for _ in 0..n {
            let d = self.rx.pop();
            each(self.frame(d.addr, d.len));
            // In aligned mode the frame starts at the chunk boundary.
            self.fill.push(d.addr & !(FRAME as u64 - 1));
        }
        if n > 0 {
            self.rx.release();
            self.fill.submit();
        }
        n
    }

    /// Frames the kernel has finished sending become spare again.
    fn reclaim(&mut self) {
        let n = self.completion.ready();
        for _ in 0..n {
            let addr = self.completion.pop();
            self.spare.push(addr);
        }
        if n > 0 {
            self.completion.release();
        }
    }

    /// Queues one frame, written by `write` into a spare frame (it returns the length).
    /// False when no frame or TX slot is free: the caller sends another way.
    pub fn send(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        self.reclaim();
        if self.tx.free() == 0 {
            return false;
        }
        let Some(addr) = self.spare.pop() else { return false };
        // SAFETY: a spare frame of the UMEM: not lent to the kernel, not in flight.
        let frame = unsafe { std::slice::from_raw_parts_mut(self.umem.add(addr as usize), FRAME) };
        match write(frame) {
            Some(len) => {
                self.tx.push(Desc { addr, len: len as u32, options: 0 });
                self.unsent = true;
                true
            }
            None => {
                self.spare.push(addr);
                false
            }
        }
    }

    /// Publishes queued frames and asks the kernel to send them.
    pub fn kick(&mut self) {
        if !std::mem::take(&mut self.unsent) {
            return;
        }
        self.tx.submit();
        // SAFETY: an empty sendto on our own socket: the kernel's signal to drain TX.
        let r =
            unsafe { libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // EAGAIN/EBUSY/ENOBUFS: the kernel is still sending; kick again at the next flush.
            if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS)) {
                self.unsent = true;
            } else {
                tracing::debug!(error = %e, "AF_XDP transmit");
            }
        }
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // SAFETY: the UMEM mapping made in `open`; the socket (and so the kernel's use of
        // the memory) is closed when `fd` drops, after this, but no frame is read again.
        unsafe { libc::munmap(self.umem.cast(), FRAME * FRAMES) };
    }
}

fn setsockopt<T>(fd: RawFd, opt: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T of the size given.
    let r = unsafe { libc::setsockopt(fd, SOL_XDP, opt, (value as *const T).cast(), std::mem::size_of::<T>() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
