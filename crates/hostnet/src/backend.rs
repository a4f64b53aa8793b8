//! A NIC's back-end: where an emulated NIC's frames go (a tap, a stream
//! socket as QEMU's `-netdev stream` and passt use, or, for tests, a
//! socketpair), as every NIC model (virtio-net, e1000) sees it. It lives
//! here, beside the taps and streams it abstracts, so that NIC models
//! share it without depending on one another.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;

use crate::stream::StreamNetdev;
use crate::tap::{Offloads, Tap, VNET_HDR_LEN};

/// A packet backend. Frames carry the 12-byte `virtio_net_hdr_v1`
/// ([`VNET_HDR_LEN`]) in front in both directions, as a TAP opened with
/// IFF_VNET_HDR and a vnet header size of 12 expects; a NIC that does its
/// own offloads sends a zero header and, with the receive offloads off,
/// gets one with nothing to do.
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
    /// (off until set).
    fn set_offloads(&mut self, _offloads: Offloads) -> io::Result<()> {
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

impl NetBackend for Tap {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match Tap::send(self, frame) {
            Ok(_) => Ok(()),
            // EIO: the interface is administratively down. Like an unplugged
            // cable on the host side, frames are lost but the tap comes back
            // with `ip link set up`, so this is not a backend failure. A
            // deleted tap answers EBADFD, which takes the link down.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                tracing::trace!(tap = %self.name(), "tap is down, frame dropped");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Tap::recv(self, buf)
    }

    fn set_offloads(&mut self, offloads: Offloads) -> io::Result<()> {
        Tap::set_offloads(self, offloads)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

// A stream carries bare Ethernet frames, so the vnet header is dropped on
// the way out and a zero one (no checksum or GSO request) put in front on
// the way in; no offload is offered to the guest, whose frames therefore
// always arrive complete with their checksums. A full socket pushes back
// on the transmit queue instead of dropping.
impl NetBackend for StreamNetdev {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // The header is all zero: without offloads the guest asks for
        // nothing (and num_buffers is unused on transmit).
        StreamNetdev::send(self, &frame[VNET_HDR_LEN.min(frame.len())..])
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((hdr, body)) = buf.split_at_mut_checked(VNET_HDR_LEN) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let n = StreamNetdev::recv(self, body)?;
        hdr.fill(0);
        Ok(VNET_HDR_LEN + n)
    }

    fn supports_offloads(&self) -> bool {
        false
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.fd()
    }

    fn connected(&self) -> bool {
        self.is_connected()
    }

    fn disconnect(&mut self) {
        StreamNetdev::disconnect(self);
    }

    fn reconnect_fd(&self) -> Option<RawFd> {
        StreamNetdev::reconnect_fd(self)
    }

    fn reconnect(&mut self) -> io::Result<bool> {
        self.try_reconnect()
    }

    fn writable_fd(&self) -> Option<RawFd> {
        StreamNetdev::writable_fd(self)
    }

    fn has_pending(&self) -> bool {
        StreamNetdev::has_pending(self)
    }

    fn flush(&mut self) -> io::Result<bool> {
        StreamNetdev::flush(self)
    }
}
