//! virtio-net on a stream socket (QEMU's `-netdev stream`, passt): the
//! framing and connection are `rvirt-hostnet`'s; this is the glue. The
//! stream carries bare Ethernet frames, so the virtio-net header is
//! dropped on the way out and a zero one (no checksum or GSO request) put
//! in front on the way in; no offload is offered to the guest, whose
//! frames therefore always arrive complete with their checksums. A full
//! socket pushes back on the transmit queue instead of dropping.

use std::io;
use std::os::fd::RawFd;

use rvirt_hostnet::StreamNetdev;

use super::backend::NetBackend;
use super::HDR_LEN;

impl NetBackend for StreamNetdev {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // The header is all zero: without offloads the guest asks for
        // nothing (and num_buffers is unused on transmit).
        StreamNetdev::send(self, &frame[HDR_LEN.min(frame.len())..])
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((hdr, body)) = buf.split_at_mut_checked(HDR_LEN) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let n = StreamNetdev::recv(self, body)?;
        hdr.fill(0);
        Ok(HDR_LEN + n)
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
