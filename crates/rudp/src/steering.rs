//! Steering a shared port's datagrams by connection ID (PROTOCOL.md §3.2,
//! §6.9; docs/architecture.md, "Using every core").
//!
//! Several endpoints can share one UDP port (`SO_REUSEPORT`, one per
//! worker thread). By default the kernel picks the socket by hashing the
//! sender's address and port, so a client whose NAT rebinds it to a new
//! port lands on another worker, which does not know its connection: the
//! connection could not migrate. Each worker's endpoint therefore puts its
//! index in the first byte of the connection IDs it chooses
//! ([`crate::EndpointConfig`]'s `server_id`), and [`steer_by_server_id`]
//! attaches a classic BPF program to the group that reads that byte from
//! every packet's destination CID and returns it as the socket index.
//! INITIALs (whose destination CID is zero, chosen by nobody yet) get an
//! out-of-range answer, which makes the kernel fall back to its hash.

use std::io;
use std::net::UdpSocket;

/// The largest group the program can steer: one byte of index.
pub const MAX_STEERED_SOCKETS: usize = 256;

/// Attaches the steering program to `socket`'s `SO_REUSEPORT` group: from
/// then on a packet whose destination CID starts with byte `i` goes to the
/// group's `i`th socket (in the order they were bound), an INITIAL by the
/// usual hash. Bind every socket of the group first, in worker order, and
/// give worker `i`'s endpoint `server_id(Some(i))`.
///
/// Linux only; elsewhere it fails with `Unsupported`, and the group keeps
/// hashing by address (connections then survive a change of address only
/// when the hash happens to pick the same worker).
pub fn steer_by_server_id(socket: &UdpSocket) -> io::Result<()> {
    imp::attach(socket)
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::os::fd::AsRawFd;

    // Classic BPF opcodes (linux/filter.h).
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_A: u16 = 0x16; // BPF_RET | BPF_A
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K

    /// The program sees the UDP payload from offset 0 (the kernel pulls
    /// the UDP header first). Byte 3 is the packet type (§3.1), with the
    /// sealed bit masked off; bytes 4.. the destination CID.
    fn program() -> [libc::sock_filter; 6] {
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        [
            op(LD_B_ABS, 0, 0, 3),     // A = type byte
            op(ALU_AND_K, 0, 0, 0x3f), // A &= 0x3f
            op(JEQ_K, 2, 0, 1),        // INITIAL? -> hash
            op(LD_B_ABS, 0, 0, 4),     // A = first byte of the DCID
            op(RET_A, 0, 0, 0),        // socket A (out of range: hash)
            op(RET_K, 0, 0, u32::MAX), // out of range: hash
        ]
    }

    pub(super) fn attach(socket: &UdpSocket) -> io::Result<()> {
        let mut filter = program();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: `prog` points at `filter`, which outlives the call; the
        // kernel copies the program before setsockopt returns.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_REUSEPORT_CBPF,
                (&prog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(super) fn attach(_socket: &UdpSocket) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "steering a shared port by connection ID needs Linux",
        ))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::{bind_udp, PortSharing};
    use std::time::Duration;

    /// A DATA packet's first bytes addressed to a CID starting with `id`.
    fn data_to(id: u8) -> Vec<u8> {
        let mut d = vec![0x52, 0x55, 0x01, 0x03, id, 1, 2, 3, 4, 5, 6, 7];
        d.resize(40, 0);
        d
    }

    #[test]
    fn packets_reach_the_socket_their_cid_names_from_any_source_port() {
        let addr = "127.0.0.1:0".parse().expect("an address");
        let first = bind_udp(addr, PortSharing::Shared).expect("bind");
        let addr = first.local_addr().expect("bound");
        let second = bind_udp(addr, PortSharing::Shared).expect("bind the same port");
        steer_by_server_id(&first).expect("attach the program");
        let sockets = [first, second];
        for s in &sockets {
            s.set_nonblocking(false).expect("blocking for the test");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
        }
        // Many source ports, each sending to both CIDs: every packet for
        // CID byte i must arrive at socket i.
        for _ in 0..20 {
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a sender");
            for id in [0u8, 1] {
                sender.send_to(&data_to(id), addr).expect("send");
                let mut buf = [0u8; 64];
                let (n, _) = sockets[usize::from(id)]
                    .recv_from(&mut buf)
                    .expect("the packet reached the socket its CID names");
                assert_eq!(buf[4], id, "{n} bytes");
            }
        }
    }
}
