//! Where virtio-net frames go: a TAP device, a stream socket (QEMU's
//! `-netdev stream`, passt) or, for tests, a socketpair.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// A packet backend. Frames carry the 12-byte `virtio_net_hdr_v1` in front in
/// both directions, as a TAP opened with IFF_VNET_HDR and a vnet header size
/// of 12 expects.
pub trait NetBackend: Send {
    /// Sends one frame. `WouldBlock`: not taken; with a
    /// [`NetBackend::writable_fd`] the device keeps it and stops sending
    /// until that descriptor is writable (backpressure), without one it
    /// drops it (a full TAP queue drops too). Any other error takes the
    /// link down.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Receives one frame into `buf`; `WouldBlock` when there is none.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Whether checksum/TSO offload features can be offered to the guest.
    fn supports_offloads(&self) -> bool {
        true
    }
    /// Tells the backend which offloads the guest accepts on receive
    /// (the negotiated VIRTIO_NET_F_GUEST_* bits).
    fn set_offloads(&mut self, _guest_features: u64) -> io::Result<()> {
        Ok(())
    }
    /// The descriptor the VMM polls for incoming frames.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
    /// Whether frames can flow: a stream back-end has a peer to lose and
    /// find again; the others are connected for as long as they live.
    fn connected(&self) -> bool {
        true
    }
    /// The peer failed (end of file, an error, broken framing): drop the
    /// connection. Nothing for a back-end that cannot reconnect.
    fn disconnect(&mut self) {}
    /// While disconnected: a descriptor that becomes readable when it is
    /// time to try again ([`NetBackend::reconnect`]); `None` if the
    /// back-end stays down.
    fn reconnect_fd(&self) -> Option<RawFd> {
        None
    }
    /// Tries to connect again; true once connected.
    fn reconnect(&mut self) -> io::Result<bool> {
        Ok(false)
    }
    /// A descriptor that polls writable when a refused send may go
    /// through, for back-ends that push back instead of dropping.
    fn writable_fd(&self) -> Option<RawFd> {
        None
    }
    /// Part of a taken frame waits to be written ([`NetBackend::flush`]
    /// once [`NetBackend::writable_fd`] is writable).
    fn has_pending(&self) -> bool {
        false
    }
    /// Writes what waits; true once it is all out.
    fn flush(&mut self) -> io::Result<bool> {
        Ok(true)
    }
}

/// One end of a `SOCK_DGRAM` socketpair: each datagram is one frame with its
/// header. Tests hold the other end; it also serves as a loopback backend.
pub struct SocketBackend {
    sock: UnixDatagram,
}

impl SocketBackend {
    /// Wraps a datagram socket, made non-blocking.
    pub fn new(sock: UnixDatagram) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(SocketBackend { sock })
    }

    /// A backend and the peer socket (blocking) a test talks to.
    pub fn pair() -> io::Result<(Self, UnixDatagram)> {
        let (a, b) = UnixDatagram::pair()?;
        Ok((SocketBackend::new(a)?, b))
    }
}

impl NetBackend for SocketBackend {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.sock.send(frame).map(drop)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }
}
