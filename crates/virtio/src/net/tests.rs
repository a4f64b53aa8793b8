use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering;

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::test_util::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

struct Setup<'a> {
    net: Net,
    peer: UnixDatagram,
    rx: MockSplitQueue<'a, Memory>,
    tx: MockSplitQueue<'a, Memory>,
    irq: Arc<RecordingInterrupt>,
}

fn setup(mem: &Memory) -> Setup<'_> {
    let (backend, peer) = SocketBackend::pair().unwrap();
    peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let rx = MockSplitQueue::create(mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(mem, GuestAddress(0x1_0000), 16);
    let mut net = Net::new(Box::new(backend), MAC);
    let irq = activate(&mut net, mem, &[&rx, &tx], OFFLOAD_FEATURES);
    Setup {
        net,
        peer,
        rx,
        tx,
        irq,
    }
}

/// A header with flags/gso fields set, so pass-through is visible.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![1, 4, 0x36, 0, 0x40, 5, 0x22, 0, 0x10, 0, 0xaa, 0xbb];
    f.extend_from_slice(payload);
    f
}

#[test]
fn guest_frame_reaches_the_backend_with_its_header() {
    let mem = memory();
    let mut s = setup(&mem);
    let f = frame(b"\xff\xff\xff\xff\xff\xffethernet frame");
    // Header and payload in separate descriptors, as Linux does.
    mem.write_slice(&f[..HDR_LEN], GuestAddress(DATA)).unwrap();
    mem.write_slice(&f[HDR_LEN..], GuestAddress(DATA + 0x1000))
        .unwrap();
    add_chain(
        &s.tx,
        0,
        &[
            (DATA, HDR_LEN as u32, 0),
            (DATA + 0x1000, (f.len() - HDR_LEN) as u32, 0),
        ],
    );
    s.net.process_queue(TX_QUEUE);
    assert_eq!(used(&s.tx, 0), (0, 0));
    let mut got = vec![0u8; MAX_FRAME];
    let n = s.peer.recv(&mut got).unwrap();
    assert_eq!(&got[..n], &f[..]);
    assert_eq!(*s.irq.used.lock().unwrap(), vec![TX_QUEUE]);
}

#[test]
fn backend_frame_reaches_a_receive_buffer() {
    let mem = memory();
    let mut s = setup(&mem);
    add_chain(&s.rx, 0, &[(DATA, 2048, WRITE)]);
    s.net.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&s.rx), 0, "no frame yet, the buffer stays posted");
    let f = frame(b"incoming");
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used(&s.rx, 0), (0, f.len() as u32));
    let mut got = vec![0u8; f.len()];
    mem.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    // Header passed through, except num_buffers which the device sets to 1.
    assert_eq!(&got[..10], &f[..10]);
    assert_eq!(&got[10..12], &[1, 0]);
    assert_eq!(&got[HDR_LEN..], b"incoming");
    assert_eq!(*s.irq.used.lock().unwrap(), vec![RX_QUEUE]);
}

#[test]
fn frames_wait_for_buffers_backpressure() {
    let mem = memory();
    let mut s = setup(&mem);
    s.peer.send(&frame(b"one")).unwrap();
    s.peer.send(&frame(b"two")).unwrap();
    s.net.process_backend_rx();
    // One frame read and held; the second stays in the socket.
    assert!(!s.net.wants_backend_rx());
    assert!(s.irq.used.lock().unwrap().is_empty());
    add_chain(&s.rx, 0, &[(DATA, 2048, WRITE)]);
    add_chain(&s.rx, 1, &[(DATA + 0x1000, 2048, WRITE)]);
    s.net.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&s.rx), 2);
    let mut a = [0u8; 3];
    mem.read_slice(&mut a, GuestAddress(DATA + HDR_LEN as u64))
        .unwrap();
    assert_eq!(&a, b"one");
    mem.read_slice(&mut a, GuestAddress(DATA + 0x1000 + HDR_LEN as u64))
        .unwrap();
    assert_eq!(&a, b"two");
    assert!(s.net.wants_backend_rx());
}

#[test]
fn frame_spread_over_several_descriptors() {
    let mem = memory();
    let mut s = setup(&mem);
    add_chain(
        &s.rx,
        0,
        &[
            (DATA, HDR_LEN as u32, WRITE),
            (DATA + 0x1000, 4, WRITE),
            (DATA + 0x2000, 100, WRITE),
        ],
    );
    let f = frame(b"abcdefgh");
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used(&s.rx, 0), (0, f.len() as u32));
    let mut a = [0u8; 4];
    mem.read_slice(&mut a, GuestAddress(DATA + 0x1000)).unwrap();
    assert_eq!(&a, b"abcd");
    mem.read_slice(&mut a, GuestAddress(DATA + 0x2000)).unwrap();
    assert_eq!(&a, b"efgh");
}

#[test]
fn too_small_or_hostile_rx_buffers_drop_the_frame_only() {
    let mem = memory();
    let mut s = setup(&mem);
    add_chain(&s.rx, 0, &[(DATA, 8, WRITE)]); // smaller than the frame
    add_chain(&s.rx, 1, &[(MEM_SIZE - 8, 64, WRITE)]); // outside RAM
    add_chain(&s.rx, 2, &[(DATA, 64, 0)]); // device-readable
    add_chain(&s.rx, 3, &[(DATA + 0x1000, 64, WRITE)]);
    for p in [&b"a"[..], b"b", b"c", b"d"] {
        s.peer.send(&frame(p)).unwrap();
    }
    s.net.process_backend_rx();
    assert_eq!(used_idx(&s.rx), 4);
    for i in 0..3 {
        assert_eq!(used(&s.rx, i).1, 0);
    }
    assert_eq!(used(&s.rx, 3), (3, HDR_LEN as u32 + 1));
    let mut d = [0u8; 1];
    mem.read_slice(&mut d, GuestAddress(DATA + 0x1000 + HDR_LEN as u64))
        .unwrap();
    assert_eq!(&d, b"d");
}

#[test]
fn bad_tx_chains_are_returned_and_not_sent() {
    let mem = memory();
    let mut s = setup(&mem);
    add_chain(&s.tx, 0, &[(DATA, 4, 0)]); // shorter than the header
    add_chain(&s.tx, 1, &[(MEM_SIZE - 8, 64, 0)]); // outside RAM
    add_chain(&s.tx, 2, &[(DATA, 0x1_0000, 0), (DATA, 0x1_0000, 0)]); // too long
    add_chain(&s.tx, 4, &[(DATA, 64, WRITE)]); // device-writable
    s.net.process_queue(TX_QUEUE);
    assert_eq!(used_idx(&s.tx), 4);
    s.peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        s.peer.recv(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    assert!(s.net.link_up());
}

#[test]
fn a_failing_backend_takes_the_link_down() {
    let mem = memory();
    let mut s = setup(&mem);
    drop(s.peer);
    let f = frame(b"lost");
    mem.write_slice(&f, GuestAddress(DATA)).unwrap();
    add_chain(&s.tx, 0, &[(DATA, f.len() as u32, 0)]);
    add_chain(&s.tx, 1, &[(DATA, f.len() as u32, 0)]);
    s.net.process_queue(TX_QUEUE);
    // Every chain comes back, the link is down and the driver was told.
    assert_eq!(used_idx(&s.tx), 2);
    assert!(!s.net.link_up());
    assert_eq!(s.irq.config.load(Ordering::SeqCst), 1);
    let mut cfg = [0u8; CONFIG_SIZE];
    s.net.read_config(0, &mut cfg);
    assert_eq!(&cfg[6..8], &[0, 0]);
    // And nothing else happens after it.
    s.net.process_backend_rx();
    assert!(!s.net.wants_backend_rx());
}

/// A backend whose peer is gone: reads return end of file.
struct Eof;

impl NetBackend for Eof {
    fn send(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn recv(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

#[test]
fn end_of_file_on_receive_takes_the_link_down() {
    let mem = memory();
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
    let mut net = Net::new(Box::new(Eof), MAC);
    let irq = activate(&mut net, &mem, &[&rx, &tx], 0);
    add_chain(&rx, 0, &[(DATA, 2048, WRITE)]);
    net.process_backend_rx();
    assert!(!net.link_up());
    assert!(!net.wants_backend_rx(), "the VMM must stop polling");
    assert_eq!(irq.config.load(Ordering::SeqCst), 1);
    assert_eq!(used_idx(&rx), 0);
}

#[test]
fn config_has_mac_and_link_status() {
    let mem = memory();
    let mut s = setup(&mem);
    let mut cfg = [0u8; CONFIG_SIZE];
    s.net.read_config(0, &mut cfg);
    assert_eq!(&cfg[..6], &MAC);
    assert_eq!(&cfg[6..8], &(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
    let mut status = [0u8; 2];
    s.net.set_link_up(false);
    s.net.read_config(6, &mut status);
    assert_eq!(status, [0, 0]);
    assert_eq!(s.irq.config.load(Ordering::SeqCst), 1);
    s.net.set_link_up(false);
    assert_eq!(
        s.irq.config.load(Ordering::SeqCst),
        1,
        "no change, no interrupt"
    );
    s.net.read_config(u64::MAX, &mut status);
    let f = s.net.device_features();
    assert_ne!(f & (1 << VIRTIO_NET_F_MAC), 0);
    assert_ne!(f & (1 << VIRTIO_NET_F_STATUS), 0);
    assert_eq!(f & OFFLOAD_FEATURES, OFFLOAD_FEATURES);
    assert_eq!(s.net.device_type(), 1);
}

#[test]
fn reset_stops_the_device() {
    let mem = memory();
    let mut s = setup(&mem);
    s.net.reset();
    add_chain(&s.rx, 0, &[(DATA, 2048, WRITE)]);
    s.peer.send(&frame(b"x")).unwrap();
    s.net.process_backend_rx();
    s.net.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&s.rx), 0);
}

#[test]
fn broken_rx_ring_asks_for_reset() {
    let mem = memory();
    let mut s = setup(&mem);
    s.rx.avail().idx().store(100);
    s.peer.send(&frame(b"x")).unwrap();
    s.net.process_backend_rx();
    assert!(s.irq.needs_reset.load(Ordering::SeqCst));
    let _ = &s.tx;
}

#[test]
fn offloads_follow_guest_features() {
    assert_eq!(tap::guest_offloads(0).tun_flags(), 0);
    assert_eq!(tap::guest_offloads(OFFLOAD_FEATURES).tun_flags(), 0x7);
    // TSO without GUEST_CSUM is not passed on.
    assert_eq!(
        tap::guest_offloads(1 << VIRTIO_NET_F_GUEST_TSO4).tun_flags(),
        0
    );
}

mod mrg;
mod stream;
mod tap_ns;
