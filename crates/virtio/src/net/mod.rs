//! virtio-net (device type 1): one rx/tx queue pair on a [`NetBackend`].
//!
//! Frames cross the backend with the 12-byte `virtio_net_hdr_v1` in front, so
//! a VNET_HDR tap sees the guest's checksum/GSO requests unchanged and the
//! guest sees the kernel's. With MRG_RXBUF a received frame is spread over as
//! many receive chains as it needs (`num_buffers` says how many); without it
//! every frame goes into one chain (with GUEST_TSO the driver posts 64 KiB
//! chains for that) and `num_buffers` is 1. A backend error takes the link
//! down (config interrupt) instead of failing the VMM; a back-end that can
//! reconnect (a stream) brings it up again when its peer is back.

mod tap;
/// Host-side tap helpers for tests, kept here under their old name for the
/// VMM's tests; they live in `rvirt-hostnet`.
#[cfg(any(test, feature = "test-utils"))]
pub use rvirt_hostnet::testing;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

pub use rvirt_hostnet::backend::{NetBackend, SocketBackend};
pub use rvirt_hostnet::{StreamError, StreamNetdev, Tap, TapError};

use crate::chain::{self, Segment};
use crate::ratelimit::warn_limited;
use crate::{queue_util, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

/// Size of `struct virtio_net_hdr_v1` (modern virtio always uses it).
pub const HDR_LEN: usize = 12;
/// Largest frame with header: a 64 KiB GSO packet plus Ethernet/VLAN header.
pub const MAX_FRAME: usize = HDR_LEN + 65535 + 22;
pub const QUEUE_SIZE: u16 = 256;
pub const RX_QUEUE: u16 = 0;
pub const TX_QUEUE: u16 = 1;
/// Frames moved per call at most, so one busy direction cannot starve the
/// other queues of the event loop.
pub const BUDGET: usize = 256;
/// mac, status, max_virtqueue_pairs, mtu.
pub const CONFIG_SIZE: usize = 12;

/// Checksum and TSO offloads, offered when the backend takes the header.
pub const OFFLOAD_FEATURES: u64 = (1 << VIRTIO_NET_F_CSUM)
    | (1 << VIRTIO_NET_F_GUEST_CSUM)
    | (1 << VIRTIO_NET_F_HOST_TSO4)
    | (1 << VIRTIO_NET_F_HOST_TSO6)
    | (1 << VIRTIO_NET_F_GUEST_TSO4)
    | (1 << VIRTIO_NET_F_GUEST_TSO6);

/// VIRTIO_NET_F_MRG_RXBUF: a received frame may span several rx chains.
/// The header stays 12 bytes (`virtio_net_hdr_v1` always has `num_buffers`).
pub const F_MRG_RXBUF: u64 = 1 << VIRTIO_NET_F_MRG_RXBUF;

struct Active {
    mem: Memory,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
    /// MRG_RXBUF was negotiated.
    mrg_rxbuf: bool,
}

/// The network device.
pub struct Net {
    backend: Box<dyn NetBackend>,
    mac: [u8; 6],
    /// The link as QMP's `set_link` sets it.
    link_up: bool,
    /// The back-end has its peer. The guest sees the link up when both
    /// are.
    carrier: bool,
    active: Option<Active>,
    /// The back-end refused a frame: the transmit queue waits for it to be
    /// writable, the frame still in the ring.
    tx_blocked: bool,
    /// A frame read from the backend that waits for a receive buffer.
    rx_frame: Vec<u8>,
    rx_len: usize,
    tx_frame: Vec<u8>,
}

impl Net {
    /// A device with MAC address `mac` on `backend`; the link starts up.
    pub fn new(backend: Box<dyn NetBackend>, mac: [u8; 6]) -> Self {
        let carrier = backend.connected();
        Net {
            backend,
            mac,
            link_up: true,
            carrier,
            tx_blocked: false,
            active: None,
            rx_frame: vec![0; MAX_FRAME],
            rx_len: 0,
            tx_frame: Vec::with_capacity(MAX_FRAME),
        }
    }

    /// The link as the guest sees it: set up (QMP `set_link`) and the
    /// back-end connected.
    pub fn link_up(&self) -> bool {
        self.status_up()
    }

    /// Sets the link status (QMP `set_link`); a change the guest can see
    /// raises a config interrupt.
    pub fn set_link_up(&mut self, up: bool) {
        if self.link_up == up {
            return;
        }
        let before = self.status_up();
        self.link_up = up;
        tracing::info!(up, "virtio-net: link status changed");
        self.status_changed(before);
    }

    /// What the guest sees: the link set up and the back-end connected.
    fn status_up(&self) -> bool {
        self.link_up && self.carrier
    }

    fn status_changed(&self, before: bool) {
        if before != self.status_up() {
            if let Some(active) = &self.active {
                active.interrupt.signal_config_change();
            }
        }
    }

    /// The descriptor the VMM polls; on readability it calls
    /// [`Net::process_backend_rx`].
    pub fn backend_fd(&self) -> Option<std::os::fd::RawFd> {
        self.backend.raw_fd()
    }

    /// False while a received frame waits for the guest to post a buffer
    /// (with MRG_RXBUF: enough buffers for the whole frame), or the device
    /// is stopped or the link down: the VMM then stops polling the backend
    /// until the rx queue is kicked, so frames wait in the host (the tap
    /// queue) instead of piling up here.
    pub fn wants_backend_rx(&self) -> bool {
        self.active.is_some() && self.status_up() && self.rx_len == 0
    }

    fn backend_failed(&mut self, error: &io::Error) {
        tracing::warn!(%error, "virtio-net: backend failed, taking the link down");
        let before = self.status_up();
        self.backend.disconnect();
        self.carrier = false;
        self.rx_len = 0;
        self.tx_blocked = false;
        self.status_changed(before);
    }

    /// The back-end's reconnection time came: the link comes up again if
    /// its peer is back.
    pub fn process_reconnect(&mut self) {
        match self.backend.reconnect() {
            Ok(true) => {
                let before = self.status_up();
                self.carrier = true;
                tracing::info!("virtio-net: back-end connected again");
                self.status_changed(before);
            }
            Ok(false) => {}
            Err(error) => warn_limited!(%error, "virtio-net: cannot reconnect the back-end"),
        }
    }

    /// Moves frames from the backend into receive buffers until either side
    /// runs out (or [`BUDGET`] frames).
    pub fn process_backend_rx(&mut self) {
        if self.active.is_none() || !self.status_up() {
            return;
        }
        let mut added = false;
        for _ in 0..BUDGET {
            if self.rx_len == 0 {
                match self.backend.recv(&mut self.rx_frame) {
                    Ok(n) if n >= HDR_LEN => self.rx_len = n,
                    // End of file: the peer is gone, and polling would spin.
                    Ok(0) => {
                        self.backend_failed(&io::Error::from(io::ErrorKind::UnexpectedEof));
                        break;
                    }
                    Ok(n) => {
                        tracing::debug!(n, "virtio-net: dropping a runt frame from the backend");
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.backend_failed(&e);
                        break;
                    }
                }
            }
            if self.deliver_frame(&mut added) == Delivery::Wait {
                break;
            }
        }
        if added {
            self.signal_rx();
        }
    }

    /// Puts the pending frame into receive buffers. Chains returned to the
    /// used ring set `*added`, so the caller interrupts even when the frame
    /// itself has to wait.
    fn deliver_frame(&mut self, added: &mut bool) -> Delivery {
        let Some(active) = self.active.as_mut() else {
            return Delivery::Wait;
        };
        let frame = &mut self.rx_frame[..self.rx_len];
        let result = if active.mrg_rxbuf {
            deliver_merged(&active.mem, &mut active.rx, frame, added)
        } else {
            deliver_single(&active.mem, &mut active.rx, frame, added)
        };
        match result {
            Ok(Delivery::Done) => {
                self.rx_len = 0;
                Delivery::Done
            }
            Ok(Delivery::Wait) => Delivery::Wait,
            Err(error) => {
                warn_limited!(%error, "virtio-net: broken rx queue, device needs reset");
                active.interrupt.signal_needs_reset();
                // The frame is lost with the queue.
                self.rx_len = 0;
                Delivery::Wait
            }
        }
    }

    fn signal_rx(&mut self) {
        if let Some(active) = self.active.as_mut() {
            if queue_util::wants_interrupt(&mut active.rx, &active.mem) {
                active.interrupt.signal_used_queue(RX_QUEUE);
            }
        }
    }

    fn process_tx(&mut self) {
        let link_up = self.status_up();
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let backend = &mut *self.backend;
        let frame = &mut self.tx_frame;
        let pushes_back = backend.writable_fd().is_some();
        let mut failure = None;
        let drained =
            queue_util::drain_until(&mut active.tx, mem, TX_QUEUE, &*active.interrupt, |chain| {
                let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
                if let Some(fault) = segs.fault {
                    tracing::debug!(%fault, "virtio-net: dropping a malformed tx chain");
                    return Some(0);
                }
                let total = chain::total_len(&segs.readable);
                if total < HDR_LEN as u64 || total > MAX_FRAME as u64 {
                    tracing::debug!(total, "virtio-net: dropping a tx frame of bad size");
                    return Some(0);
                }
                if !link_up || failure.is_some() {
                    return Some(0);
                }
                frame.clear();
                for Segment { addr, len } in &segs.readable {
                    let start = frame.len();
                    frame.resize(start + *len as usize, 0);
                    if mem.read_slice(&mut frame[start..], *addr).is_err() {
                        return Some(0);
                    }
                }
                match backend.send(frame) {
                    Ok(()) => {}
                    // The back-end pushes back: the frame stays in the ring
                    // until it can take it.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && pushes_back => return None,
                    // A full tap queue drops, as a real NIC would.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => failure = Some(e),
                }
                Some(0)
            });
        self.tx_blocked = drained == queue_util::Drained::Stopped;
        if let Some(e) = failure {
            self.backend_failed(&e);
        }
    }

    /// The back-end can take more: the rest of a frame first, then what
    /// waits in the transmit queue.
    fn process_writable(&mut self) {
        match self.backend.flush() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.backend_failed(&e);
                return;
            }
        }
        if self.tx_blocked {
            self.tx_blocked = false;
            self.process_tx();
        }
    }

    fn config(&self) -> [u8; CONFIG_SIZE] {
        let mut c = [0u8; CONFIG_SIZE];
        c[..6].copy_from_slice(&self.mac);
        let status = if self.status_up() {
            VIRTIO_NET_S_LINK_UP as u16
        } else {
            0
        };
        c[6..8].copy_from_slice(&status.to_le_bytes());
        c[8..10].copy_from_slice(&1u16.to_le_bytes());
        c
    }
}

/// What became of the pending frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Delivered, or dropped (bad buffer, too big for the ring): it is gone.
    Done,
    /// Not enough receive buffers (or a broken ring): nothing more to do now.
    Wait,
}

/// Pops the next receive chain. When there is none, asks for a kick (with
/// EVENT_IDX that publishes avail_event at the ring's current end) and
/// re-checks once for a buffer posted in between.
fn next_rx_chain<'m>(
    rx: &mut Queue,
    mem: &'m Memory,
) -> Result<Option<DescriptorChain<&'m Memory>>, virtio_queue::Error> {
    if let Some(chain) = rx.iter(mem)?.next() {
        return Ok(Some(chain));
    }
    if !rx.enable_notification(mem)? {
        return Ok(None);
    }
    Ok(rx.iter(mem)?.next())
}

/// Stores `num_buffers` in the frame's `virtio_net_hdr_v1`.
fn set_num_buffers(frame: &mut [u8], n: u16) {
    frame[10..12].copy_from_slice(&n.to_le_bytes());
}

/// Writes the start of `data` into `segs` in order; returns the bytes written.
fn write_segments(mem: &Memory, segs: &[Segment], data: &[u8]) -> usize {
    let mut off = 0usize;
    for &Segment { addr, len } in segs {
        let n = (len as usize).min(data.len() - off);
        if n == 0 || mem.write_slice(&data[off..off + n], addr).is_err() {
            break;
        }
        off += n;
    }
    off
}

/// Without MRG_RXBUF: the whole frame goes into one chain, or is dropped
/// when that chain is malformed or too small.
fn deliver_single(
    mem: &Memory,
    rx: &mut Queue,
    frame: &mut [u8],
    added: &mut bool,
) -> Result<Delivery, virtio_queue::Error> {
    let Some(chain) = next_rx_chain(rx, mem)? else {
        return Ok(Delivery::Wait);
    };
    let head = chain.head_index();
    let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
    // Without MRG_RXBUF num_buffers must be 1 (the tap leaves it unset).
    set_num_buffers(frame, 1);
    let written = if let Some(fault) = segs.fault {
        tracing::debug!(%fault, "virtio-net: malformed rx chain, frame dropped");
        0
    } else if chain::total_len(&segs.writable) < frame.len() as u64 {
        tracing::debug!(
            len = frame.len(),
            "virtio-net: rx buffer too small, frame dropped"
        );
        0
    } else {
        write_segments(mem, &segs.writable, frame)
    };
    // ≤ MAX_FRAME, fits.
    rx.add_used(mem, head, written as u32)?;
    *added = true;
    Ok(Delivery::Done)
}

/// With MRG_RXBUF: the frame is spread over as many chains ("buffers") as it
/// needs, the header (with `num_buffers`) in the first; all of them reach the
/// used ring together. Until enough are posted the frame waits and no chain
/// is consumed: the avail position is rolled back.
///
/// A malformed chain, or one too small for the header (the driver must make
/// every buffer at least that big), is returned on its own with length 0
/// (Linux drops such a buffer as a short packet) and never counted as part
/// of a frame; such chains go to the used ring before the frame's buffers so
/// those stay consecutive, as the driver reads them.
fn deliver_merged(
    mem: &Memory,
    rx: &mut Queue,
    frame: &mut [u8],
    added: &mut bool,
) -> Result<Delivery, virtio_queue::Error> {
    let need = frame.len() as u64;
    // The driver cannot have more chains posted than the ring has entries;
    // this also bounds the walk if it keeps moving the avail index.
    let limit = usize::from(rx.size());
    let mut good: Vec<(u16, Vec<Segment>)> = Vec::new();
    let mut bad: Vec<u16> = Vec::new();
    // Avail position of the first usable chain, and how many bad chains
    // came before it: those can be consumed even when the frame waits.
    let mut first_good: Option<(u16, usize)> = None;
    let mut have = 0u64;
    let mut popped = 0usize;
    let outcome = loop {
        if have >= need {
            break Delivery::Done;
        }
        if popped == limit {
            // Every buffer the ring can hold is posted and still too small:
            // waiting cannot help.
            tracing::debug!(
                need,
                "virtio-net: frame larger than all rx buffers, dropped"
            );
            good.clear();
            break Delivery::Done;
        }
        let pos = rx.next_avail();
        let Some(chain) = next_rx_chain(rx, mem)? else {
            break Delivery::Wait;
        };
        popped += 1;
        let head = chain.head_index();
        let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        let cap = chain::total_len(&segs.writable);
        if let Some(fault) = segs.fault {
            tracing::debug!(%fault, "virtio-net: malformed rx chain returned empty");
            bad.push(head);
        } else if cap < HDR_LEN as u64 {
            tracing::debug!(
                cap,
                "virtio-net: rx buffer smaller than the header returned empty"
            );
            bad.push(head);
        } else {
            first_good.get_or_insert((pos, bad.len()));
            have += cap;
            good.push((head, segs.writable));
        }
    };
    if outcome == Delivery::Wait || good.is_empty() {
        // Keep the usable chains (and everything after them) for later.
        let returned = match first_good {
            Some((pos, leading)) => {
                rx.set_next_avail(pos);
                leading
            }
            None => bad.len(),
        };
        for &head in &bad[..returned] {
            rx.add_used(mem, head, 0)?;
            *added = true;
        }
        return Ok(outcome);
    }
    for &head in &bad {
        rx.add_used(mem, head, 0)?;
    }
    // At most the queue size (≤ 256) chains.
    set_num_buffers(frame, good.len() as u16);
    let mut off = 0usize;
    for (head, segs) in &good {
        // The chains were checked against guest memory, so each is filled
        // to its capacity except the last, as the spec requires.
        let n = write_segments(mem, segs, &frame[off..]);
        off += n;
        // ≤ MAX_FRAME, fits.
        rx.add_used(mem, *head, n as u32)?;
    }
    *added = true;
    Ok(Delivery::Done)
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        let mut f = (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS) | F_MRG_RXBUF;
        if self.backend.supports_offloads() {
            f |= OFFLOAD_FEATURES;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let c = self.config();
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start < CONFIG_SIZE {
            let n = data.len().min(CONFIG_SIZE - start);
            data[..n].copy_from_slice(&c[start..start + n]);
        }
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let [rx, tx] = crate::device::ready_queues(ctx.queues)?;
        self.active = Some(Active {
            mem: ctx.mem,
            rx,
            tx,
            interrupt: ctx.interrupt,
            mrg_rxbuf: ctx.acked_features & F_MRG_RXBUF != 0,
        });
        self.rx_len = 0;
        if let Err(e) = self
            .backend
            .set_offloads(tap::guest_offloads(ctx.acked_features))
        {
            // The backend might hand the guest offloaded frames it did not
            // accept; better no link than corrupt packets.
            self.backend_failed(&e);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.rx_len = 0;
        self.tx_blocked = false;
    }

    fn process_queue(&mut self, queue: u16) {
        match queue {
            // New receive buffers: deliver what waits.
            RX_QUEUE => self.process_backend_rx(),
            // While the back-end pushes back, its writability resumes.
            TX_QUEUE if self.tx_blocked => {}
            TX_QUEUE => self.process_tx(),
            _ => {}
        }
    }
    fn host_fd(&self) -> Option<std::os::fd::RawFd> {
        if !self.carrier {
            // Reconnection goes on whatever the guest does.
            self.backend.reconnect_fd()
        } else if self.wants_backend_rx() {
            self.backend_fd()
        } else {
            None
        }
    }
    fn process_host_fd(&mut self) {
        if self.carrier {
            self.process_backend_rx();
        } else {
            self.process_reconnect();
        }
    }
    fn host_fd_out(&self) -> Option<std::os::fd::RawFd> {
        if self.carrier && (self.tx_blocked || self.backend.has_pending()) {
            self.backend.writable_fd()
        } else {
            None
        }
    }
    fn process_host_fd_out(&mut self) {
        self.process_writable();
    }
}
