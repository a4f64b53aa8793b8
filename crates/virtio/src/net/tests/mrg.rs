//! VIRTIO_NET_F_MRG_RXBUF: a received frame spread over several rx chains.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::Ordering;

use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use super::super::*;
use crate::features;
use crate::test_util::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x57];
/// The rx queue's used ring. virtio-queue's mock lays its used ring over the
/// second half of the avail ring (its `end()` counts entries as bytes), and
/// these tests post more than half a ring, so the queue gets its own.
const RX_USED: u64 = 0x8000;

struct Setup<'a> {
    net: Net,
    peer: UnixDatagram,
    rx: MockSplitQueue<'a, Memory>,
    irq: Arc<RecordingInterrupt>,
}

/// A device with an rx queue of `rx_size` entries; `features` are acked.
fn setup(mem: &Memory, rx_size: u16, features: u64, event_idx: bool) -> Setup<'_> {
    let (backend, peer) = SocketBackend::pair().unwrap();
    let rx = MockSplitQueue::create(mem, GuestAddress(0), rx_size);
    let tx = MockSplitQueue::create(mem, GuestAddress(0x1_0000), 16);
    let mut net = Net::new(Box::new(backend), MAC);
    let mut queues: Vec<Queue> = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
    queues[0]
        .try_set_used_ring_address(GuestAddress(RX_USED))
        .unwrap();
    for q in &mut queues {
        q.set_event_idx(event_idx);
    }
    let irq = Arc::new(RecordingInterrupt::default());
    net.activate(ActivateContext {
        mem: mem.clone(),
        queues,
        interrupt: irq.clone(),
        acked_features: features::VERSION_1 | features,
    })
    .unwrap();
    Setup { net, peer, rx, irq }
}

/// A frame of `len` bytes (header included) with a recognisable payload.
fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![1, 4, 0x36, 0, 0x40, 5, 0x22, 0, 0x10, 0, 0xaa, 0xbb];
    f.extend((0..len - HDR_LEN).map(|i| (i % 251) as u8));
    f
}

/// Buffer `i` of the tests: one page each from DATA on.
fn buf(i: u16) -> u64 {
    DATA + u64::from(i) * 0x1000
}

/// Posts single-descriptor writable chains of `len` bytes at descriptors
/// `first..first + n`, buffer `i` at `buf(i)`.
fn post(rx: &MockSplitQueue<'_, Memory>, first: u16, n: u16, len: u32) {
    for i in first..first + n {
        add_chain(rx, i, &[(buf(i), len, WRITE)]);
    }
}

/// Reads back what the used entries `from..from + n` hold, concatenated.
fn gather(mem: &Memory, from: u16, n: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for i in from..from + n {
        let (id, len) = used(mem, i);
        let mut part = vec![0u8; len as usize];
        mem.read_slice(&mut part, GuestAddress(buf(id as u16)))
            .unwrap();
        out.extend(part);
    }
    out
}

/// (id, len) of entry `i` of the rx used ring.
fn used(mem: &Memory, i: u16) -> (u32, u32) {
    let at = RX_USED + 4 + 8 * u64::from(i);
    let id = mem.read_obj::<u32>(GuestAddress(at)).unwrap();
    let len = mem.read_obj::<u32>(GuestAddress(at + 4)).unwrap();
    (id, len)
}

/// The rx used ring's index.
fn used_idx(mem: &Memory) -> u16 {
    mem.read_obj::<u16>(GuestAddress(RX_USED + 2)).unwrap()
}

fn num_buffers(mem: &Memory, head: u16) -> u16 {
    let mut n = [0u8; 2];
    mem.read_slice(&mut n, GuestAddress(buf(head) + 10))
        .unwrap();
    u16::from_le_bytes(n)
}

#[test]
fn mrg_rxbuf_is_offered() {
    let (backend, _peer) = SocketBackend::pair().unwrap();
    let net = Net::new(Box::new(backend), MAC);
    assert_ne!(net.device_features() & F_MRG_RXBUF, 0);
    assert_eq!(F_MRG_RXBUF, 1 << 15);
}

#[test]
fn mrg_frame_split_over_two_buffers() {
    let mem = memory();
    let mut s = setup(&mem, 16, F_MRG_RXBUF, false);
    post(&s.rx, 0, 3, 64);
    let f = frame(100);
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used_idx(&mem), 2, "two buffers used, the third kept");
    assert_eq!(used(&mem, 0), (0, 64), "the first buffer is filled");
    assert_eq!(used(&mem, 1), (1, 36));
    assert_eq!(num_buffers(&mem, 0), 2);
    let mut expect = f.clone();
    expect[10..12].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(gather(&mem, 0, 2), expect);
    // One interrupt for the whole frame.
    assert_eq!(*s.irq.used.lock().unwrap(), vec![RX_QUEUE]);
    // A small frame then takes the remaining buffer alone.
    s.peer.send(&frame(20)).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used(&mem, 2), (2, 20));
    assert_eq!(num_buffers(&mem, 2), 1);
}

#[test]
fn mrg_tso_frame_over_many_buffers() {
    let mem = memory();
    let mut s = setup(&mem, 64, F_MRG_RXBUF | OFFLOAD_FEATURES, false);
    // Linux's smallest mergeable buffer: a full Ethernet frame plus header.
    const LEN: u32 = 1526;
    post(&s.rx, 0, 64, LEN);
    let f = frame(HDR_LEN + 65535);
    let n = f.len().div_ceil(LEN as usize) as u16;
    assert_eq!(n, 43);
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used_idx(&mem), n);
    for i in 0..n - 1 {
        assert_eq!(used(&mem, i), (u32::from(i), LEN), "buffer {i} not full");
    }
    let last = f.len() as u32 - u32::from(n - 1) * LEN;
    assert_eq!(used(&mem, n - 1), (u32::from(n - 1), last));
    assert_eq!(num_buffers(&mem, 0), n);
    let mut expect = f.clone();
    expect[10..12].copy_from_slice(&n.to_le_bytes());
    assert_eq!(gather(&mem, 0, n), expect);
    assert_eq!(*s.irq.used.lock().unwrap(), vec![RX_QUEUE]);
}

#[test]
fn mrg_frame_waits_until_enough_buffers_are_posted() {
    let mem = memory();
    let mut s = setup(&mem, 16, F_MRG_RXBUF, false);
    post(&s.rx, 0, 1, 64);
    let f = frame(200);
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    // Nothing consumed, nothing signalled, the frame is held.
    assert_eq!(used_idx(&mem), 0);
    assert!(s.irq.used.lock().unwrap().is_empty());
    assert!(!s.net.wants_backend_rx());
    // Still not enough after a kick with one more buffer.
    post(&s.rx, 1, 1, 64);
    s.net.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&mem), 0);
    // The fourth buffer completes it: 64 + 64 + 64 + 8.
    post(&s.rx, 2, 2, 64);
    s.net.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&mem), 4);
    assert_eq!(used(&mem, 0), (0, 64));
    assert_eq!(used(&mem, 3), (3, 8));
    assert_eq!(num_buffers(&mem, 0), 4);
    let mut expect = f.clone();
    expect[10..12].copy_from_slice(&4u16.to_le_bytes());
    assert_eq!(gather(&mem, 0, 4), expect);
    assert_eq!(*s.irq.used.lock().unwrap(), vec![RX_QUEUE]);
    assert!(s.net.wants_backend_rx());
}

#[test]
fn mrg_waiting_frame_asks_for_a_kick_past_the_posted_buffers() {
    let mem = memory();
    let mut s = setup(&mem, 16, F_MRG_RXBUF, true);
    post(&s.rx, 0, 2, 64);
    s.peer.send(&frame(1000)).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used_idx(&mem), 0);
    // avail_event (after the used ring) must be the avail index, not the
    // rolled-back position: otherwise the driver's next post sends no kick
    // (vring_need_event) and the frame waits forever.
    let avail_event = RX_USED + 4 + 8 * 16;
    assert_eq!(mem.read_obj::<u16>(GuestAddress(avail_event)).unwrap(), 2);
}

#[test]
fn mrg_hostile_chains_in_the_middle_are_returned_empty() {
    let mem = memory();
    let mut s = setup(&mem, 16, F_MRG_RXBUF, false);
    add_chain(&s.rx, 0, &[(buf(0), 64, WRITE)]);
    add_chain(&s.rx, 1, &[(MEM_SIZE - 8, 64, WRITE)]); // outside RAM
    add_chain(&s.rx, 2, &[(buf(2), 8, WRITE)]); // smaller than the header
    add_chain(&s.rx, 3, &[(buf(3), 64, 0)]); // device-readable
    add_chain(&s.rx, 4, &[(buf(4), 0, WRITE)]); // empty
    add_chain(&s.rx, 5, &[(buf(5), 64, WRITE)]);
    let f = frame(100);
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    assert_eq!(used_idx(&mem), 6);
    // The bad chains first, empty, so the frame's buffers stay together.
    for (i, head) in [1, 2, 3, 4].into_iter().enumerate() {
        assert_eq!(used(&mem, i as u16), (head, 0));
    }
    assert_eq!(used(&mem, 4), (0, 64));
    assert_eq!(used(&mem, 5), (5, 36));
    assert_eq!(num_buffers(&mem, 0), 2);
    let mut expect = f.clone();
    expect[10..12].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(gather(&mem, 4, 2), expect);
    // The header-sized scrap buffer was not written to.
    let mut scrap = [0u8; 8];
    mem.read_slice(&mut scrap, GuestAddress(buf(2))).unwrap();
    assert_eq!(scrap, [0; 8]);
}

#[test]
fn mrg_waiting_frame_returns_only_the_bad_chains_before_the_good_ones() {
    let mem = memory();
    let mut s = setup(&mem, 16, F_MRG_RXBUF, false);
    add_chain(&s.rx, 0, &[(MEM_SIZE - 8, 64, WRITE)]); // bad, leading
    add_chain(&s.rx, 1, &[(buf(1), 64, WRITE)]);
    add_chain(&s.rx, 2, &[(buf(2), 4, WRITE)]); // bad, in the middle
    let f = frame(150);
    s.peer.send(&f).unwrap();
    s.net.process_backend_rx();
    // Only the leading bad chain comes back; the rest waits for more.
    assert_eq!(used_idx(&mem), 1);
    assert_eq!(used(&mem, 0), (0, 0));
    assert_eq!(*s.irq.used.lock().unwrap(), vec![RX_QUEUE]);
    assert!(!s.net.wants_backend_rx());
    add_chain(&s.rx, 3, &[(buf(3), 100, WRITE)]);
    s.net.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&mem), 4);
    assert_eq!(used(&mem, 1), (2, 0));
    assert_eq!(used(&mem, 2), (1, 64));
    assert_eq!(used(&mem, 3), (3, 86));
    let mut expect = f.clone();
    expect[10..12].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(gather(&mem, 2, 2), expect);
}

#[test]
fn mrg_frame_larger_than_the_whole_ring_is_dropped_and_buffers_kept() {
    let mem = memory();
    let mut s = setup(&mem, 4, F_MRG_RXBUF, false);
    post(&s.rx, 0, 4, 16);
    s.peer.send(&frame(100)).unwrap();
    s.peer.send(&frame(30)).unwrap();
    s.net.process_backend_rx();
    // The big frame is gone without consuming a buffer; the next one fits.
    assert_eq!(used_idx(&mem), 2);
    assert_eq!(used(&mem, 0), (0, 16));
    assert_eq!(used(&mem, 1), (1, 14));
    assert_eq!(num_buffers(&mem, 0), 2);
    assert!(s.net.wants_backend_rx());
}

#[test]
fn mrg_out_of_range_head_asks_for_reset() {
    let mem = memory();
    let mut s = setup(&mem, 16, F_MRG_RXBUF, false);
    s.rx.avail().ring().ref_at(0).unwrap().store(99u16.to_le());
    s.rx.avail().idx().store(1);
    s.peer.send(&frame(100)).unwrap();
    s.net.process_backend_rx();
    assert!(s.irq.needs_reset.load(Ordering::SeqCst));
    assert!(s.net.wants_backend_rx(), "the frame is lost with the queue");
}

#[test]
fn without_mrg_rxbuf_a_frame_never_spans_chains() {
    let mem = memory();
    let mut s = setup(&mem, 16, 0, false);
    post(&s.rx, 0, 2, 64);
    s.peer.send(&frame(100)).unwrap();
    s.peer.send(&frame(50)).unwrap();
    s.net.process_backend_rx();
    // The big frame is dropped into the first chain, the small one fills
    // the second on its own.
    assert_eq!(used_idx(&mem), 2);
    assert_eq!(used(&mem, 0), (0, 0));
    assert_eq!(used(&mem, 1), (1, 50));
    assert_eq!(num_buffers(&mem, 1), 1);
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    /// What the device should do with `chains` (None: malformed, Some:
    /// writable capacity ≥ the header) for a frame of `len` bytes, as the
    /// used entries it adds: (head, written) in used-ring order.
    fn model(chains: &[Option<u32>], len: usize) -> Vec<(u32, u32)> {
        let mut have = 0usize;
        let mut k = None;
        for (i, c) in chains.iter().enumerate() {
            have += c.unwrap_or(0) as usize;
            if have >= len {
                k = Some(i + 1);
                break;
            }
        }
        let Some(k) = k else {
            // Waits: only the malformed chains before the first good one go back.
            let lead = chains.iter().take_while(|c| c.is_none()).count();
            return (0..lead as u32).map(|h| (h, 0)).collect();
        };
        let mut out: Vec<(u32, u32)> = (0..k)
            .filter(|&i| chains[i].is_none())
            .map(|i| (i as u32, 0))
            .collect();
        let mut left = len;
        for (i, c) in chains[..k].iter().enumerate() {
            if let Some(cap) = c {
                let n = left.min(*cap as usize);
                out.push((i as u32, n as u32));
                left -= n;
            }
        }
        out
    }

    fn chain() -> impl Strategy<Value = Option<u32>> {
        prop_oneof![
            1 => Just(None),
            6 => (HDR_LEN as u32..4096).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Any mix of buffer sizes and malformed chains against any frame
        /// size: the used ring holds exactly what the model says, and the
        /// frame's buffers read back as the frame with num_buffers set.
        #[test]
        fn merged_delivery_matches_the_model(
            chains in proptest::collection::vec(chain(), 1..48),
            len in HDR_LEN..20_000usize,
        ) {
            let mem = memory();
            let mut s = setup(&mem, 64, F_MRG_RXBUF, false);
            for (i, c) in chains.iter().enumerate() {
                let i = i as u16;
                match c {
                    Some(cap) => add_chain(&s.rx, i, &[(buf(i), *cap, WRITE)]),
                    None => add_chain(&s.rx, i, &[(MEM_SIZE - 8, 64, WRITE)]),
                }
            }
            let f = frame(len);
            s.peer.send(&f).unwrap();
            s.net.process_backend_rx();
            let expect = model(&chains, len);
            let got: Vec<(u32, u32)> = (0..used_idx(&mem)).map(|i| used(&mem, i)).collect();
            prop_assert_eq!(&got, &expect);
            let frame_bufs = expect.iter().filter(|e| e.1 > 0).count() as u16;
            if frame_bufs > 0 {
                let first = expect.len() as u16 - frame_bufs;
                let mut want = f.clone();
                want[10..12].copy_from_slice(&frame_bufs.to_le_bytes());
                prop_assert_eq!(gather(&mem, first, frame_bufs), want);
                prop_assert!(s.net.wants_backend_rx());
            } else {
                prop_assert!(!s.net.wants_backend_rx(), "the frame waits");
            }
        }
    }
}
