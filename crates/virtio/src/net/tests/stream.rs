//! virtio-net on a stream back-end: bare frames with their length in
//! front, no offloads offered, the link following the peer.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use super::*;

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[test]
fn frames_cross_without_the_header_and_no_offload_is_offered() {
    let mem = memory();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let backend = StreamNetdev::from_fd(ours.into()).unwrap();
    let mut net = Net::new(Box::new(backend), MAC);
    assert_eq!(net.device_features() & OFFLOAD_FEATURES, 0);
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
    let irq = activate(&mut net, &mem, &[&rx, &tx], 0);

    let out = frame(b"\xff\xff\xff\xff\xff\xffto the stream");
    let mut zero_hdr = out.clone();
    zero_hdr[..HDR_LEN].fill(0);
    mem.write_slice(&zero_hdr, GuestAddress(DATA)).unwrap();
    add_chain(&tx, 0, &[(DATA, out.len() as u32, 0)]);
    net.process_queue(TX_QUEUE);
    let mut got = vec![0u8; 4 + out.len() - HDR_LEN];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, framed(&out[HDR_LEN..]));

    peer.write_all(&framed(b"from the stream")).unwrap();
    add_chain(&rx, 0, &[(DATA + 0x2000, 2048, WRITE)]);
    net.process_queue(RX_QUEUE);
    assert_eq!(used(&rx, 0), (0, (HDR_LEN + 15) as u32));
    let mut buf = [0u8; HDR_LEN + 15];
    mem.read_slice(&mut buf, GuestAddress(DATA + 0x2000))
        .unwrap();
    assert_eq!(&buf[..HDR_LEN], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(&buf[HDR_LEN..], b"from the stream");
    assert_eq!(irq.config.load(Ordering::SeqCst), 0);
}

#[test]
fn the_link_follows_the_peer_and_comes_back_on_reconnection() {
    let mem = memory();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let backend = StreamNetdev::connect(&path, Some(Duration::from_millis(10))).unwrap();
    let mut net = Net::new(Box::new(backend), MAC);
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
    let irq = activate(&mut net, &mem, &[&rx, &tx], 0);
    assert!(net.link_up());
    let (peer, _) = listener.accept().unwrap();
    add_chain(&rx, 0, &[(DATA, 2048, WRITE)]);
    net.process_queue(RX_QUEUE);

    // The peer goes: end of file takes the link down, and the device then
    // waits on the reconnection timer instead of the socket.
    drop(peer);
    net.process_host_fd();
    assert!(!net.link_up());
    assert_eq!(irq.config.load(Ordering::SeqCst), 1);
    let timer = net.host_fd().expect("the reconnection timer is polled");
    let mut cfg = [0u8; CONFIG_SIZE];
    net.read_config(0, &mut cfg);
    assert_eq!(&cfg[6..8], &[0, 0]);

    // The timer fires and the peer is listening again: up, and the guest
    // is told.
    // SAFETY: the timer stays open while `net` lives.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(timer) };
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let limit = rustix::time::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&limit)).unwrap();
    net.process_host_fd();
    assert!(net.link_up());
    assert_eq!(irq.config.load(Ordering::SeqCst), 2);
    let (mut peer, _) = listener.accept().unwrap();
    peer.write_all(&framed(b"again")).unwrap();
    rvirt_testkit::wait_for(
        "the frame after reconnection",
        Duration::from_secs(10),
        || {
            net.process_host_fd();
            used_idx(&rx) == 1
        },
    );
    let mut buf = [0u8; 5];
    mem.read_slice(&mut buf, GuestAddress(DATA + HDR_LEN as u64))
        .unwrap();
    assert_eq!(&buf, b"again");
}

#[test]
fn broken_framing_takes_the_link_down() {
    let mem = memory();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let mut net = Net::new(Box::new(StreamNetdev::from_fd(ours.into()).unwrap()), MAC);
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
    let irq = activate(&mut net, &mem, &[&rx, &tx], 0);
    add_chain(&rx, 0, &[(DATA, 2048, WRITE)]);
    peer.write_all(&u32::MAX.to_be_bytes()).unwrap();
    net.process_backend_rx();
    assert!(!net.link_up());
    assert_eq!(irq.config.load(Ordering::SeqCst), 1);
    assert_eq!(net.host_fd(), None, "a passed socket does not reconnect");
    assert_eq!(used_idx(&rx), 0);
}

#[test]
fn a_full_socket_holds_the_transmit_queue_until_it_drains() {
    let mem = memory();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let mut net = Net::new(Box::new(StreamNetdev::from_fd(ours.into()).unwrap()), MAC);
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
    let _irq = activate(&mut net, &mem, &[&rx, &tx], 0);
    // Big frames until the socket (nobody reads it) refuses one: that
    // chain and those after it stay in the ring, and the device waits for
    // the socket to be writable instead of dropping them.
    let big = 60000u32;
    mem.write_slice(&vec![0u8; big as usize], GuestAddress(DATA))
        .unwrap();
    for i in 0..16 {
        add_chain(&tx, i, &[(DATA, big, 0)]);
    }
    net.process_queue(TX_QUEUE);
    let taken = used_idx(&tx);
    assert!(taken < 16, "the socket never filled");
    assert!(net.host_fd_out().is_some(), "waits for writability");
    // A kick meanwhile changes nothing.
    net.process_queue(TX_QUEUE);
    assert_eq!(used_idx(&tx), taken);
    // The peer reads: the device goes on where it stopped, no frame lost.
    let reader = std::thread::spawn(move || {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = rvirt_hostnet::stream::FrameReader::default();
        let mut out = vec![0u8; rvirt_hostnet::stream::MAX_FRAME];
        let mut n = 0;
        while r.read_frame(&mut peer, &mut out).is_ok() {
            n += 1;
        }
        n
    });
    rvirt_testkit::wait_for(
        "the transmit queue to drain",
        Duration::from_secs(10),
        || {
            if net.host_fd_out().is_some() {
                net.process_host_fd_out();
            }
            used_idx(&tx) == 16 && net.host_fd_out().is_none()
        },
    );
    drop(net);
    assert_eq!(reader.join().unwrap(), 16);
}
