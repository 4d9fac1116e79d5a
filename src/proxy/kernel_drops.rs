//! Datagrams the kernel dropped before the proxy could read them, because
//! a socket's receive buffer was full (issue #26 item 4). A sender's
//! bursts can overrun a relay that is busy for a moment; those losses are
//! the local host's, not the modelled link's, and the proxy's statistics
//! say so instead of leaving them unexplained.
//!
//! Linux keeps a drop counter per socket (`sk_drops`), which
//! `getsockopt(SO_MEMINFO)` reads without parsing `/proc/net/udp`.

/// Buffer size asked for each proxy socket, as rudp's endpoints ask
/// (`rudp::SOCKET_BUFFER`); the kernel caps it at `net.core.rmem_max`.
pub use rudp::SOCKET_BUFFER;

/// The socket's count of datagrams dropped for want of buffer room, or
/// `None` where the system does not say.
#[cfg(target_os = "linux")]
pub fn socket_drops(socket: &impl std::os::fd::AsRawFd) -> Option<u64> {
    // SK_MEMINFO_VARS: 9 counters on every kernel that has SO_MEMINFO.
    let mut info = [0u32; 9];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt(2) writes at most `len` bytes into `info`, which
    // is that large, and sets `len` to what it wrote.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let drops = libc::SK_MEMINFO_DROPS as usize;
    (r == 0 && len as usize >= (drops + 1) * 4).then(|| u64::from(info[drops]))
}

/// Elsewhere the count is unknown.
#[cfg(not(target_os = "linux"))]
pub fn socket_drops<T>(_socket: &T) -> Option<u64> {
    None
}

/// A UDP socket for the proxy, bound to `addr`, with receive and send
/// buffers of [`SOCKET_BUFFER`] as far as the kernel allows; the warning
/// says when it allows less, and how to raise the cap.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = rudp::bind_udp(addr, rudp::PortSharing::Exclusive)?;
    tokio::net::UdpSocket::from_std(socket)
}

/// The receive buffer the kernel gave `socket`, when smaller than asked:
/// Linux reports twice the usable size.
pub fn capped_buffer(socket: &tokio::net::UdpSocket) -> Option<usize> {
    let got = socket2::SockRef::from(socket).recv_buffer_size().ok()?;
    (got < SOCKET_BUFFER).then_some(got)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A socket nobody reads, flooded past its buffer: the kernel's count
    /// of what it dropped is what we read.
    #[test]
    fn drops_of_an_unread_socket_are_counted() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let small = socket2::SockRef::from(&rx);
        small.set_recv_buffer_size(4096).unwrap();
        assert_eq!(socket_drops(&rx), Some(0));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            tx.send_to(&[7u8; 1000], rx.local_addr().unwrap()).unwrap();
        }
        let drops = socket_drops(&rx).unwrap();
        assert!(drops > 100 && drops <= 200, "{drops}");
    }
}
