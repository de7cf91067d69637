//! The engine's UDP socket: non-blocking, large buffers, and on Linux UDP GSO/GRO.
//!
//! # Why GSO/GRO
//!
//! On Linux the kernel spends roughly 4.6 µs of CPU per datagram, so one datagram per syscall
//! tops out near 430 MB/s at 1472-byte payloads (`sendmmsg`/`recvmmsg` do not help: the cost is
//! per datagram, not per syscall). UDP generic segmentation offload (`UDP_SEGMENT`) sends up to
//! [`LINUX_MAX_GSO_SEGMENTS`] datagrams of one size as a single super-packet, and `UDP_GRO`
//! delivers coalesced datagrams to the receiver in one `recvmsg`, which takes the data plane to
//! several GB/s.
//!
//! # Contract
//!
//! - [`UdpSocket::send_segments`] sends a buffer as consecutive datagrams of one size.
//! - [`UdpSocket::recv`] may return several datagrams at once; split them with
//!   [`RecvMeta::segments`].
//! - `WouldBlock` is never a failure: register `WRITABLE` / `READABLE` interest with mio (this
//!   type implements [`mio::event::Source`]) and retry on the next event.
//!
//! Every other platform gets a portable fallback (one datagram per `send_to` / `recv_from`), so the
//! crate still compiles and works there, just slower.

// The workspace denies `unsafe_code`. This file is the one exception: `sendmsg`/`recvmsg` with
// control messages and a few `setsockopt`s have no safe wrapper. Each block states why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Default kernel receive buffer requested by [`SocketConfig`]: 64 MiB.
pub const DEFAULT_RECV_BUFFER: usize = 64 << 20;
/// Default kernel send buffer requested by [`SocketConfig`]: 16 MiB.
pub const DEFAULT_SEND_BUFFER: usize = 16 << 20;
/// Most datagrams one GSO `sendmsg` may carry on Linux (`UDP_MAX_SEGMENTS` on older kernels).
pub const LINUX_MAX_GSO_SEGMENTS: usize = 64;
/// Largest UDP payload over IPv4 (65535 − 20 − 8). One GSO send never carries more bytes than this.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Receive buffer size that can hold any coalesced GRO super-packet (and any single datagram).
pub const RECV_BUFFER_LEN: usize = 1 << 16;

/// Settings for [`UdpSocket::bind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    pub(crate) recv_buffer: usize,
    pub(crate) send_buffer: usize,
    pub(crate) gso: bool,
    pub(crate) gro: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            recv_buffer: DEFAULT_RECV_BUFFER,
            send_buffer: DEFAULT_SEND_BUFFER,
            gso: true,
            gro: true,
        }
    }
}

impl SocketConfig {
    /// Kernel receive buffer to request, in bytes (default [`DEFAULT_RECV_BUFFER`]). Small buffers
    /// lose datagrams on the host at high rates.
    pub fn recv_buffer(&mut self, bytes: usize) -> &mut Self {
        self.recv_buffer = bytes;
        self
    }

    /// Kernel send buffer to request, in bytes (default [`DEFAULT_SEND_BUFFER`]).
    pub fn send_buffer(&mut self, bytes: usize) -> &mut Self {
        self.send_buffer = bytes;
        self
    }

    /// Whether to use UDP GSO (`UDP_SEGMENT`) for sends when the kernel supports it (default on).
    pub fn gso(&mut self, enabled: bool) -> &mut Self {
        self.gso = enabled;
        self
    }

    /// Whether to ask for UDP GRO (`UDP_GRO`) coalescing on receive when the kernel supports it
    /// (default on).
    pub fn gro(&mut self, enabled: bool) -> &mut Self {
        self.gro = enabled;
        self
    }
}

/// What [`UdpSocket::recv`] read into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written at the start of the buffer: one datagram, or several coalesced by GRO.
    pub len: usize,
    /// Who sent the datagram(s).
    pub from: SocketAddr,
    /// Size of each datagram in `buf[..len]`; the last one may be shorter. Equals `len` when the
    /// read holds a single datagram, and is never zero.
    pub segment_size: usize,
}

impl RecvMeta {
    /// Splits the received bytes into the original datagrams.
    ///
    /// `buf` must be the buffer passed to [`UdpSocket::recv`]. Yields nothing for an empty
    /// datagram or if `buf` is shorter than `len` (a caller bug, not a panic).
    pub fn segments<'a>(&self, buf: &'a [u8]) -> std::slice::Chunks<'a, u8> {
        let bytes = buf.get(..self.len).unwrap_or(&[]);
        bytes.chunks(self.segment_size.max(1))
    }
}

/// The engine's non-blocking UDP socket.
///
/// Register it with mio through its [`mio::event::Source`] implementation.
#[derive(Debug)]
pub struct UdpSocket {
    inner: mio::net::UdpSocket,
    /// Cleared for good if the kernel refuses a GSO send (`EIO`/`EINVAL`: the route's device
    /// cannot segment). Atomic so that `send_segments` can take `&self`.
    gso: AtomicBool,
    gro: bool,
}

impl UdpSocket {
    /// Creates a non-blocking UDP socket bound to `addr` (IPv4 or IPv6; use port 0 for any).
    ///
    /// Buffer sizes are best effort: `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` first (needs
    /// `CAP_NET_ADMIN`), then the ordinary options, which the kernel caps at
    /// `net.core.{r,w}mem_max`; check [`UdpSocket::buffer_sizes`] for what was granted. GSO and
    /// GRO are turned on when asked for and supported, silently off otherwise. On Linux the
    /// socket also sets the don't-fragment bit (`IP_PMTUDISC_DO`), so a datagram larger than the
    /// path MTU fails with `EMSGSIZE` instead of being fragmented.
    ///
    /// # Errors
    ///
    /// Creating, configuring as non-blocking or binding the socket failed.
    pub fn bind(addr: SocketAddr, config: &SocketConfig) -> io::Result<Self> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_nonblocking(true)?;
        sys::set_buffers(&socket, config);
        sys::set_dont_fragment(&socket, addr);
        socket.bind(&addr.into())?;
        let gso = config.gso && sys::gso_supported(&socket);
        let gro = config.gro && sys::enable_gro(&socket);
        let std_socket: std::net::UdpSocket = socket.into();
        Ok(Self {
            inner: mio::net::UdpSocket::from_std(std_socket),
            gso: AtomicBool::new(gso),
            gro,
        })
    }

    /// The address the socket is bound to (with the real port if bound to port 0).
    ///
    /// # Errors
    ///
    /// The OS could not report the address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Kernel buffer sizes as `getsockopt` reports them: `(receive, send)`. Linux reports double
    /// the requested value (it counts bookkeeping overhead). Zero if the query failed.
    pub fn buffer_sizes(&self) -> (usize, usize) {
        let socket = socket2::SockRef::from(&self.inner);
        (
            socket.recv_buffer_size().unwrap_or(0),
            socket.send_buffer_size().unwrap_or(0),
        )
    }

    /// Whether sends currently use UDP GSO. Can turn false after a send if the kernel refuses GSO.
    pub fn gso_enabled(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    /// Whether receives may return several coalesced datagrams (UDP GRO).
    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    /// How many segments one [`UdpSocket::send_segments`] call sends in a single syscall:
    /// [`LINUX_MAX_GSO_SEGMENTS`] with GSO, 1 without. Batching more per call still works, it is
    /// just split into several syscalls.
    pub fn max_gso_segments(&self) -> usize {
        if self.gso_enabled() {
            LINUX_MAX_GSO_SEGMENTS
        } else {
            1
        }
    }

    /// Sends `buf` to `dest` as consecutive datagrams of `segment_size` bytes (the last one may
    /// be shorter), using one GSO `sendmsg` per [`UdpSocket::max_gso_segments`] segments (and at
    /// most [`MAX_UDP_PAYLOAD`] bytes) when GSO is on, one `send_to` per segment otherwise.
    ///
    /// Returns how many bytes of `buf` went out, always whole segments. If it is less than
    /// `buf.len()`, the socket stopped accepting data part-way (or failed after some segments);
    /// resend the rest later, and the next call reports the error if it persists.
    ///
    /// If the kernel refuses a GSO send with `EIO`/`EINVAL` (the route's device cannot segment),
    /// GSO is turned off for good on this socket and the data is sent without it.
    ///
    /// # Errors
    ///
    /// Only when nothing was sent:
    /// - `WouldBlock`: the send buffer is full; wait for a writable event;
    /// - `InvalidInput`: `segment_size` is zero;
    /// - raw OS error `EMSGSIZE`: a segment exceeds the path MTU (the don't-fragment bit is
    ///   set); send smaller segments;
    /// - any other OS error from `sendmsg`/`send_to`.
    pub fn send_segments(
        &self,
        dest: SocketAddr,
        buf: &[u8],
        segment_size: usize,
    ) -> io::Result<usize> {
        if segment_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "segment size must be nonzero",
            ));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        #[cfg(target_os = "linux")]
        if self.gso_enabled() {
            let dest_addr = socket2::SockAddr::from(dest);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&self.inner);
            let result = send_batched(buf, gso_chunk_len(segment_size), |chunk| {
                sys::send_gso(fd, &dest_addr, chunk, segment_size)
            });
            match result {
                Err(e) if sys::is_gso_refusal(&e) => {
                    self.gso.store(false, Ordering::Relaxed);
                    let fallback = self.send_each(dest, buf, segment_size);
                    // `EINVAL` also means "segment larger than the route MTU". If the plain send
                    // says exactly that, GSO was not the problem: keep it on.
                    if matches!(&fallback, Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE)) {
                        self.gso.store(true, Ordering::Relaxed);
                    }
                    return fallback;
                }
                other => return other,
            }
        }
        self.send_each(dest, buf, segment_size)
    }

    /// The non-GSO path: one `send_to` per segment.
    fn send_each(&self, dest: SocketAddr, buf: &[u8], segment_size: usize) -> io::Result<usize> {
        send_batched(buf, segment_size, |segment| {
            retry_interrupted(|| self.inner.send_to(segment, dest))
        })
    }

    /// Receives one datagram, or with GRO several coalesced datagrams of one size, into `buf`.
    ///
    /// With GRO on, `buf` should be at least [`RECV_BUFFER_LEN`] (64 KiB) long: a coalesced read
    /// that does not fit is cut down to the whole datagrams that fit, and the rest is lost.
    /// Without GRO, a datagram longer than `buf` is truncated (as with `recv_from`). Split the
    /// result with [`RecvMeta::segments`].
    ///
    /// # Errors
    ///
    /// `WouldBlock` when no datagram is queued (wait for a readable event), or an OS error.
    /// `Interrupted` is retried internally.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        #[cfg(target_os = "linux")]
        {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&self.inner);
            let raw = sys::recv_msg(fd, buf)?;
            Ok(recv_meta(
                raw.copied,
                raw.from,
                raw.gro_segment,
                raw.truncated,
            ))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let (len, from) = retry_interrupted(|| self.inner.recv_from(buf))?;
            Ok(recv_meta(len, from, None, false))
        }
    }
}

impl mio::event::Source for UdpSocket {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

/// Sends `buf` in chunks of `chunk_len` bytes through `send_one`, which returns bytes sent or an
/// error. Stops at the first error: reports it if nothing went out yet, otherwise returns the bytes
/// sent so far.
fn send_batched(
    buf: &[u8],
    chunk_len: usize,
    mut send_one: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut sent = 0;
    for chunk in buf.chunks(chunk_len) {
        match send_one(chunk) {
            // UDP sends are all-or-nothing, so `Ok` means the whole chunk left.
            Ok(_) => sent += chunk.len(),
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

/// Bytes per `sendmsg`: as many whole segments as GSO allows, and at least one segment.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Only the GSO path uses it.
fn gso_chunk_len(segment_size: usize) -> usize {
    let segments = (MAX_UDP_PAYLOAD / segment_size).clamp(1, LINUX_MAX_GSO_SEGMENTS);
    segments * segment_size
}

/// Builds the metadata of a read of `copied` bytes. `gro_segment` is the kernel's `UDP_GRO`
/// segment size, if any; `truncated` says the read did not fit in the buffer.
fn recv_meta(
    copied: usize,
    from: SocketAddr,
    gro_segment: Option<usize>,
    truncated: bool,
) -> RecvMeta {
    let segment_size = match gro_segment {
        Some(size) if size > 0 && size < copied => size,
        _ => copied,
    };
    // A truncated coalesced read: keep the whole datagrams only. A truncated single datagram
    // stays as it is, like `recv_from` (authentication will reject it).
    let len = if truncated && segment_size < copied {
        copied - copied % segment_size
    } else {
        copied
    };
    RecvMeta {
        len,
        from,
        segment_size: segment_size.max(1),
    }
}

/// Runs `op` again while it fails with `Interrupted`.
fn retry_interrupted<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Linux: GSO/GRO, forced buffers, don't-fragment, raw `sendmsg`/`recvmsg`.
#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::mem;
    use std::net::SocketAddr;
    use std::os::fd::{AsRawFd, RawFd};
    use std::ptr;

    use libc::{c_int, c_void};

    use super::{retry_interrupted, SocketConfig};

    /// Control-message buffer, aligned for `cmsghdr` (whose first field is a `size_t`).
    #[repr(C, align(8))]
    struct CmsgBuf([u8; 64]);

    /// Size of the `UDP_SEGMENT` payload (a `u16`) and of the `UDP_GRO` one (an `int`).
    const SEGMENT_OPT_LEN: u32 = mem::size_of::<u16>() as u32;
    const GRO_OPT_LEN: u32 = mem::size_of::<c_int>() as u32;

    fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
        // SAFETY: `value` is a live `c_int` and we pass its exact size; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                ptr::from_ref(&value).cast::<c_void>(),
                mem::size_of::<c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn getsockopt_int(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
        let mut value: c_int = 0;
        let mut len = mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live locals; `len` holds the size of `value`, so the
        // kernel writes at most that many bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                ptr::from_mut(&mut value).cast::<c_void>(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Forced sizes first (ignore the `rmem_max`/`wmem_max` caps; needs `CAP_NET_ADMIN`), then
    /// the ordinary options. Never fails: a small buffer is slower, not broken.
    pub(super) fn set_buffers(socket: &socket2::Socket, config: &SocketConfig) {
        let fd = socket.as_raw_fd();
        // The kernel takes an `int` and doubles it; stay clear of overflow.
        let clamp = |bytes: usize| c_int::try_from(bytes).unwrap_or(c_int::MAX / 2);
        let recv = clamp(config.recv_buffer);
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, recv).is_err() {
            let _ = socket.set_recv_buffer_size(config.recv_buffer);
        }
        let send = clamp(config.send_buffer);
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, send).is_err() {
            let _ = socket.set_send_buffer_size(config.send_buffer);
        }
    }

    /// Sets the don't-fragment bit so oversized (GSO) datagrams fail loudly with `EMSGSIZE`
    /// instead of leaving as IP fragments. Best effort.
    pub(super) fn set_dont_fragment(socket: &socket2::Socket, addr: SocketAddr) {
        let fd = socket.as_raw_fd();
        let _ = setsockopt_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        );
        if addr.is_ipv6() {
            let _ = setsockopt_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_DO,
            );
        }
    }

    /// Kernels with UDP GSO (4.18+) answer `getsockopt(UDP_SEGMENT)`; older ones fail it.
    pub(super) fn gso_supported(socket: &socket2::Socket) -> bool {
        getsockopt_int(socket.as_raw_fd(), libc::SOL_UDP, libc::UDP_SEGMENT).is_ok()
    }

    /// Turns on `UDP_GRO` (5.0+); false if the kernel refuses.
    pub(super) fn enable_gro(socket: &socket2::Socket) -> bool {
        setsockopt_int(socket.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, 1).is_ok()
    }

    /// Errors with which the kernel refuses GSO itself (device without checksum offload, or a
    /// segmentation it cannot do), as opposed to ordinary send errors.
    pub(super) fn is_gso_refusal(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
    }

    /// One `sendmsg` of `buf` to `dest`, segmented by the kernel into `segment_size` datagrams
    /// when `buf` holds more than one. The caller keeps `buf` within the GSO limits.
    pub(super) fn send_gso(
        fd: RawFd,
        dest: &socket2::SockAddr,
        buf: &[u8],
        segment_size: usize,
    ) -> io::Result<usize> {
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast::<c_void>(),
            iov_len: buf.len(),
        };
        let mut control = CmsgBuf([0; 64]);
        // SAFETY: all-zero bytes are a valid `msghdr` (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = dest.as_ptr().cast_mut().cast::<c_void>();
        msg.msg_namelen = dest.len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if buf.len() > segment_size {
            // More than one segment means `segment_size < buf.len() <= MAX_UDP_PAYLOAD`, so it
            // fits the option's `u16`.
            let size = u16::try_from(segment_size)
                .map_err(|_| io::Error::from_raw_os_error(libc::EMSGSIZE))?;
            // SAFETY: CMSG_SPACE is pure arithmetic.
            let space = unsafe { libc::CMSG_SPACE(SEGMENT_OPT_LEN) } as usize;
            msg.msg_control = control.0.as_mut_ptr().cast::<c_void>();
            msg.msg_controllen = space as _;
            // SAFETY: `msg_control` points to `control`, which is aligned for `cmsghdr` and at
            // least `space` (24) bytes long, so CMSG_FIRSTHDR is non-null and the header plus
            // its 2-byte payload lie inside `control`. The payload write is unaligned-safe.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(SEGMENT_OPT_LEN) as _;
                ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
            }
        }
        retry_interrupted(|| {
            // SAFETY: `msg` points to `dest`, `iov` (which covers `buf`) and `control`, all alive
            // and unmoved for this call; the kernel only reads them.
            let n = unsafe { libc::sendmsg(fd, &msg, 0) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        })
    }

    /// What one `recvmsg` returned.
    pub(super) struct RawRecv {
        pub(super) copied: usize,
        pub(super) from: SocketAddr,
        pub(super) gro_segment: Option<usize>,
        pub(super) truncated: bool,
    }

    /// One `recvmsg` into `buf`, reading the `UDP_GRO` segment size if the kernel attached it.
    pub(super) fn recv_msg(fd: RawFd, buf: &mut [u8]) -> io::Result<RawRecv> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<c_void>(),
            iov_len: buf.len(),
        };
        let mut control = CmsgBuf([0; 64]);
        // SAFETY: all-zero bytes are a valid `msghdr` (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast::<c_void>();
        msg.msg_controllen = control.0.len() as _;
        // SAFETY: `try_init` hands us zeroed address storage and its size; `recvmsg` writes at
        // most `msg_namelen` bytes there and at most `iov_len`/`msg_controllen` bytes into `buf`
        // and `control`, all alive for the call. We report the kernel's address length back, so
        // `SockAddr` only reads initialised bytes.
        let (copied, addr) = unsafe {
            socket2::SockAddr::try_init(|storage, len| {
                msg.msg_name = storage.cast::<c_void>();
                msg.msg_namelen = *len;
                let copied = retry_interrupted(|| {
                    let n = libc::recvmsg(fd, &mut msg, 0);
                    usize::try_from(n).map_err(|_| io::Error::last_os_error())
                })?;
                *len = msg.msg_namelen;
                Ok(copied)
            })?
        };
        let from = addr.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
        })?;
        Ok(RawRecv {
            copied,
            from,
            gro_segment: gro_segment(&msg),
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        })
    }

    /// The `UDP_GRO` segment size among the control messages `recvmsg` left in `msg`.
    fn gro_segment(msg: &libc::msghdr) -> Option<usize> {
        // SAFETY: `msg_control`/`msg_controllen` describe the still-live control buffer the
        // kernel just filled (`msg_controllen` was updated to the bytes it wrote); the CMSG_*
        // helpers stay within it, and we check each header's length before reading its payload.
        unsafe {
            let min_len = libc::CMSG_LEN(GRO_OPT_LEN) as usize;
            let mut cmsg = libc::CMSG_FIRSTHDR(msg);
            while !cmsg.is_null() {
                let header = &*cmsg;
                if header.cmsg_level == libc::SOL_UDP
                    && header.cmsg_type == libc::UDP_GRO
                    && header.cmsg_len as usize >= min_len
                {
                    let size = ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>());
                    return usize::try_from(size).ok();
                }
                cmsg = libc::CMSG_NXTHDR(msg, cmsg);
            }
        }
        None
    }
}

/// Other platforms: ordinary buffer options, no GSO/GRO.
#[cfg(not(target_os = "linux"))]
mod sys {
    use std::net::SocketAddr;

    use super::SocketConfig;

    pub(super) fn set_buffers(socket: &socket2::Socket, config: &SocketConfig) {
        let _ = socket.set_recv_buffer_size(config.recv_buffer);
        let _ = socket.set_send_buffer_size(config.send_buffer);
    }

    pub(super) fn set_dont_fragment(_socket: &socket2::Socket, _addr: SocketAddr) {}

    pub(super) fn gso_supported(_socket: &socket2::Socket) -> bool {
        false
    }

    pub(super) fn enable_gro(_socket: &socket2::Socket) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Upper bound on any blocking wait in these tests; never reached when things work.
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn localhost() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn bind(config: &SocketConfig) -> UdpSocket {
        UdpSocket::bind(localhost(), config).expect("bind 127.0.0.1:0")
    }

    fn plain_config() -> SocketConfig {
        let mut config = SocketConfig::default();
        config.gso(false).gro(false);
        config
    }

    /// Datagram `index` of a test stream: its index, then bytes that depend on index and offset.
    fn datagram(index: u32, len: usize) -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..len)
            .map(|offset| (index as usize * 131 + offset * 7 + offset / 251) as u8)
            .collect();
        let tag = index.to_le_bytes();
        let n = len.min(tag.len());
        bytes[..n].copy_from_slice(&tag[..n]);
        bytes
    }

    /// `count` datagrams of `segment_size` bytes, the last one `last_len` bytes.
    fn stream(count: u32, segment_size: usize, last_len: usize) -> Vec<Vec<u8>> {
        let len = |i| {
            if i + 1 == count {
                last_len
            } else {
                segment_size
            }
        };
        (0..count).map(|i| datagram(i, len(i))).collect()
    }

    /// Sends all of `buf`, `batch_segments` segments per call, spinning on `WouldBlock`.
    fn send_all(
        socket: &UdpSocket,
        dest: SocketAddr,
        buf: &[u8],
        segment_size: usize,
        batch_segments: usize,
    ) {
        let deadline = Instant::now() + TIMEOUT;
        let mut offset = 0;
        while offset < buf.len() {
            let end = buf.len().min(offset + batch_segments * segment_size);
            match socket.send_segments(dest, &buf[offset..end], segment_size) {
                Ok(n) => {
                    assert!(n > 0, "Ok(0) for a non-empty buffer");
                    assert!(
                        n % segment_size == 0 || offset + n == buf.len(),
                        "partial segment"
                    );
                    offset += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "send blocked for {TIMEOUT:?}");
                    std::hint::spin_loop();
                }
                Err(e) => panic!("send_segments failed: {e}"),
            }
        }
    }

    /// Receives until `count` datagrams arrived; returns them and the metadata of every read.
    fn recv_datagrams(
        socket: &mut UdpSocket,
        from: SocketAddr,
        count: usize,
    ) -> (Vec<Vec<u8>>, Vec<RecvMeta>) {
        let mut poll = mio::Poll::new().expect("mio poll");
        let mut events = mio::Events::with_capacity(8);
        poll.registry()
            .register(socket, mio::Token(0), mio::Interest::READABLE)
            .expect("register");
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = vec![0; RECV_BUFFER_LEN];
        let mut datagrams = Vec::new();
        let mut reads = Vec::new();
        loop {
            loop {
                match socket.recv(&mut buf) {
                    Ok(meta) => {
                        assert_eq!(meta.from, from);
                        reads.push(meta);
                        datagrams.extend(meta.segments(&buf).map(<[u8]>::to_vec));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv failed: {e}"),
                }
            }
            if datagrams.len() >= count {
                poll.registry().deregister(socket).expect("deregister");
                return (datagrams, reads);
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "only {} of {count} datagrams arrived",
                datagrams.len()
            );
            poll.poll(&mut events, Some(deadline - now)).expect("poll");
        }
    }

    /// Sends `expected` from a socket bound with `send_config` to one bound with `recv_config`
    /// and checks every byte; returns the metadata of every read.
    fn round_trip(
        send_config: &SocketConfig,
        recv_config: &SocketConfig,
        expected: &[Vec<u8>],
        segment_size: usize,
        batch_segments: usize,
    ) -> Vec<RecvMeta> {
        let sockets = (bind(send_config), bind(recv_config));
        round_trip_between(sockets, expected, segment_size, batch_segments)
    }

    fn round_trip_between(
        (sender, mut receiver): (UdpSocket, UdpSocket),
        expected: &[Vec<u8>],
        segment_size: usize,
        batch_segments: usize,
    ) -> Vec<RecvMeta> {
        let dest = receiver.local_addr().expect("local addr");
        let from = sender.local_addr().expect("local addr");
        let buf = expected.concat();
        send_all(&sender, dest, &buf, segment_size, batch_segments);
        let (received, reads) = recv_datagrams(&mut receiver, from, expected.len());
        assert_eq!(received.len(), expected.len(), "datagram count");
        for (i, (got, want)) in received.iter().zip(expected).enumerate() {
            assert!(
                got == want,
                "datagram {i} differs (len {} vs {})",
                got.len(),
                want.len()
            );
        }
        reads
    }

    #[test]
    fn gso_to_gro_delivers_every_byte_in_coalesced_reads() {
        let config = SocketConfig::default();
        let probe = bind(&config);
        #[cfg(target_os = "linux")]
        {
            assert!(probe.gso_enabled() && probe.gro_enabled());
            assert_eq!(probe.max_gso_segments(), LINUX_MAX_GSO_SEGMENTS);
        }
        let expected = stream(100, 1200, 1200);
        let batch = probe.max_gso_segments();
        let reads = round_trip(&config, &config, &expected, 1200, batch);
        assert!(reads.iter().all(|meta| meta.segment_size == 1200));
        #[cfg(target_os = "linux")]
        assert!(
            reads.iter().any(|meta| meta.len > 1200),
            "GRO never coalesced: {} reads",
            reads.len()
        );
    }

    #[test]
    fn one_call_larger_than_a_gso_batch_is_split_internally() {
        let config = SocketConfig::default();
        let expected = stream(100, 1200, 1200);
        // 120 000 bytes in one call: more than 64 segments and more than 65 507 bytes.
        round_trip(&config, &config, &expected, 1200, 100);
    }

    #[test]
    fn plain_sockets_deliver_one_datagram_per_read() {
        let config = plain_config();
        let probe = bind(&config);
        assert!(!probe.gso_enabled() && !probe.gro_enabled());
        assert_eq!(probe.max_gso_segments(), 1);
        let expected = stream(100, 1200, 1200);
        let reads = round_trip(&config, &config, &expected, 1200, 64);
        assert_eq!(reads.len(), 100);
        assert!(reads
            .iter()
            .all(|m| m.len == 1200 && m.segment_size == 1200));
    }

    #[test]
    fn gso_sender_to_plain_receiver_gets_separate_datagrams() {
        let expected = stream(100, 1200, 1200);
        let reads = round_trip(
            &SocketConfig::default(),
            &plain_config(),
            &expected,
            1200,
            64,
        );
        assert_eq!(reads.len(), 100);
        assert!(reads
            .iter()
            .all(|m| m.len == 1200 && m.segment_size == 1200));
    }

    #[test]
    fn short_last_segment_survives_with_and_without_offload() {
        let expected = stream(11, 1200, 500);
        let reads = round_trip(
            &SocketConfig::default(),
            &SocketConfig::default(),
            &expected,
            1200,
            64,
        );
        assert!(reads.iter().all(|m| m.segment_size == 1200 || m.len == 500));
        let reads = round_trip(&plain_config(), &plain_config(), &expected, 1200, 64);
        assert_eq!(
            reads.last().map(|m| (m.len, m.segment_size)),
            Some((500, 500))
        );
    }

    #[test]
    fn ipv6_loopback_round_trip() {
        let any_v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
        let config = SocketConfig::default();
        let Ok(sender) = UdpSocket::bind(any_v6, &config) else {
            eprintln!("no IPv6 loopback here; skipping");
            return;
        };
        let receiver = UdpSocket::bind(any_v6, &config).expect("second ::1 bind");
        let expected = stream(20, 1000, 10);
        round_trip_between((sender, receiver), &expected, 1000, 64);
    }

    #[test]
    fn buffer_sizes_are_reported() {
        let socket = bind(&SocketConfig::default());
        let (recv, send) = socket.buffer_sizes();
        assert!(recv > 0 && send > 0, "({recv}, {send})");
        let mut small = SocketConfig::default();
        small.recv_buffer(4096).send_buffer(4096);
        let (small_recv, small_send) = bind(&small).buffer_sizes();
        assert!(small_recv > 0 && small_send > 0);
        assert!(small_recv <= recv && small_send <= send);
    }

    #[test]
    fn zero_segment_size_is_rejected_and_empty_buffer_sends_nothing() {
        let socket = bind(&SocketConfig::default());
        let dest = socket.local_addr().expect("local addr");
        let err = socket.send_segments(dest, &[1, 2, 3], 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(socket.send_segments(dest, &[], 1200).unwrap(), 0);
    }

    #[test]
    fn recv_on_empty_socket_would_block() {
        let socket = bind(&SocketConfig::default());
        let mut buf = vec![0; RECV_BUFFER_LEN];
        let err = socket.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn flooding_a_tiny_buffer_gives_only_progress_or_would_block() {
        // Loopback never pushes back (the kernel orphans the skb at the device, and a full
        // receiver drops), so `WouldBlock` may not show up here; the partial-send rule itself is
        // covered by `batch_stops_at_would_block_and_reports_what_left`. This checks that a
        // flood into a socket nobody reads yields only whole-segment progress or `WouldBlock`.
        for gso in [true, false] {
            let mut config = SocketConfig::default();
            config.send_buffer(4096).recv_buffer(4096).gso(gso);
            let sender = bind(&config);
            let receiver = bind(&config);
            let dest = receiver.local_addr().expect("local addr");
            let buf = datagram(7, 64 * 1000);
            let mut would_block = 0;
            for _ in 0..500 {
                match sender.send_segments(dest, &buf, 1000) {
                    Ok(n) => assert!(n > 0 && n % 1000 == 0, "sent {n}"),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => would_block += 1,
                    Err(e) => panic!("gso {gso}: unexpected error {e}"),
                }
            }
            // The flooded socket still delivers: at least its queue's worth arrived.
            let mut buf = vec![0; RECV_BUFFER_LEN];
            let meta = receiver.recv(&mut buf).expect("flooded receiver has data");
            assert!(meta.segments(&buf).all(|d| d.len() == 1000));
            eprintln!("gso {gso}: {would_block} WouldBlock results");
        }
    }

    fn would_block() -> io::Error {
        io::Error::from(io::ErrorKind::WouldBlock)
    }

    #[test]
    fn batch_stops_at_would_block_and_reports_what_left() {
        let buf = vec![0u8; 10 * 100];
        let mut calls = 0;
        // Chunks of 640 bytes: the first goes out, the second blocks.
        let result = send_batched(&buf, 640, |chunk| {
            calls += 1;
            if calls == 1 {
                Ok(chunk.len())
            } else {
                Err(would_block())
            }
        });
        assert_eq!(result.unwrap(), 640);
        let err = send_batched(&buf, 640, |_| Err(would_block())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        // Any other error after progress is also deferred to the next call.
        let mut calls = 0;
        let result = send_batched(&buf, 640, |chunk| {
            calls += 1;
            if calls == 1 {
                Ok(chunk.len())
            } else {
                Err(io::Error::other("no buffer space"))
            }
        });
        assert_eq!(result.unwrap(), 640);
    }

    #[test]
    fn chunks_respect_gso_limits() {
        assert_eq!(gso_chunk_len(1200), 54 * 1200);
        assert_eq!(gso_chunk_len(1000), 64 * 1000);
        assert_eq!(gso_chunk_len(1), 64);
        assert_eq!(gso_chunk_len(MAX_UDP_PAYLOAD), MAX_UDP_PAYLOAD);
        assert_eq!(gso_chunk_len(70_000), 70_000);
        for size in 1..=MAX_UDP_PAYLOAD {
            let len = gso_chunk_len(size);
            assert!(
                len % size == 0 && len <= MAX_UDP_PAYLOAD && len / size <= 64,
                "{size}"
            );
        }
    }

    #[test]
    fn recv_meta_keeps_whole_segments_of_a_truncated_read() {
        let from = localhost();
        let meta = recv_meta(3000, from, Some(1200), true);
        assert_eq!((meta.len, meta.segment_size), (2400, 1200));
        let meta = recv_meta(3000, from, Some(1200), false);
        assert_eq!((meta.len, meta.segment_size), (3000, 1200));
        let buf = [7u8; 3000];
        let lens: Vec<usize> = meta.segments(&buf).map(<[u8]>::len).collect();
        assert_eq!(lens, [1200, 1200, 600]);
        // No GRO, or a bogus size: one datagram.
        assert_eq!(recv_meta(900, from, None, false).segment_size, 900);
        assert_eq!(recv_meta(900, from, Some(0), false).segment_size, 900);
        assert_eq!(recv_meta(900, from, Some(5000), false).segment_size, 900);
        // Truncated single datagram stays as received.
        assert_eq!(recv_meta(900, from, None, true).len, 900);
        // Empty datagram: segment size never zero, no segments.
        let empty = recv_meta(0, from, None, false);
        assert_eq!(empty.segment_size, 1);
        assert_eq!(empty.segments(&buf).count(), 0);
        // A buffer shorter than `len` yields nothing instead of panicking.
        assert_eq!(meta.segments(&buf[..10]).count(), 0);
    }
}
