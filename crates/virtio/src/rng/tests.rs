use std::io::{self, Read};

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::test_util::*;

/// A source producing 0, 1, 2, ... so tests can tell the bytes came from it.
struct Counter(u8);

impl Read for Counter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for b in buf.iter_mut() {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(buf.len())
    }
}

struct Broken;

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("no entropy"))
    }
}

#[test]
fn fills_writable_buffers_in_order() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(0)));
    let irq = activate(&mut rng, &mem, &[&mock], 0);
    add_chain(&mock, 0, &[(DATA, 16, WRITE), (DATA + 0x1000, 8, WRITE)]);
    rng.process_queue(0);

    assert_eq!(used_idx(&mock), 1);
    assert_eq!(used(&mock, 0), (0, 24));
    let mut a = [0u8; 16];
    mem.read_slice(&mut a, GuestAddress(DATA)).unwrap();
    assert_eq!(a, core::array::from_fn::<u8, 16, _>(|i| i as u8));
    let mut b = [0u8; 8];
    mem.read_slice(&mut b, GuestAddress(DATA + 0x1000)).unwrap();
    assert_eq!(b, core::array::from_fn::<u8, 8, _>(|i| 16 + i as u8));
    assert_eq!(*irq.used.lock().unwrap(), vec![0]);
}

#[test]
fn urandom_fills_a_buffer() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::urandom().unwrap();
    activate(&mut rng, &mem, &[&mock], 0);
    add_chain(&mock, 0, &[(DATA, 64, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used(&mock, 0), (0, 64));
    let mut a = [0u8; 64];
    mem.read_slice(&mut a, GuestAddress(DATA)).unwrap();
    // 64 random bytes are all zero with probability 2^-512.
    assert!(a.iter().any(|&b| b != 0));
}

#[test]
fn readable_buffers_are_left_alone() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(1)));
    activate(&mut rng, &mem, &[&mock], 0);
    mem.write_slice(&[0xaa; 8], GuestAddress(DATA)).unwrap();
    add_chain(&mock, 0, &[(DATA, 8, 0)]);
    rng.process_queue(0);
    assert_eq!(used(&mock, 0), (0, 0));
    let mut a = [0u8; 8];
    mem.read_slice(&mut a, GuestAddress(DATA)).unwrap();
    assert_eq!(a, [0xaa; 8]);
}

#[test]
fn buffer_outside_memory_is_returned_empty() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(1)));
    activate(&mut rng, &mem, &[&mock], 0);
    add_chain(&mock, 0, &[(MEM_SIZE - 4, 8, WRITE)]);
    add_chain(&mock, 1, &[(DATA, 4, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used_idx(&mock), 2);
    assert_eq!(used(&mock, 0), (0, 0));
    // The next request is still served.
    assert_eq!(used(&mock, 1), (1, 4));
}

#[test]
fn failing_source_returns_nothing() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Broken));
    activate(&mut rng, &mem, &[&mock], 0);
    add_chain(&mock, 0, &[(DATA, 8, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used(&mock, 0), (0, 0));
}

#[test]
fn huge_request_is_capped() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(0)));
    activate(&mut rng, &mem, &[&mock], 0);
    add_chain(&mock, 0, &[(DATA, 1 << 20, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used(&mock, 0), (0, MAX_BYTES_PER_REQUEST as u32));
}

#[test]
fn nothing_happens_before_activation_or_after_reset() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(0)));
    add_chain(&mock, 0, &[(DATA, 8, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used_idx(&mock), 0);
    activate(&mut rng, &mem, &[&mock], 0);
    rng.reset();
    rng.process_queue(0);
    assert_eq!(used_idx(&mock), 0);
}

#[test]
fn bogus_avail_index_asks_for_reset() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(0)));
    let irq = activate(&mut rng, &mem, &[&mock], 0);
    // avail.idx 100 ahead of a 16-entry queue.
    mock.avail().idx().store(100);
    rng.process_queue(0);
    assert!(irq.needs_reset.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(used_idx(&mock), 0);
}

/// Counts the WARN events emitted on the thread it is the default for.
struct CountWarnings(Arc<std::sync::atomic::AtomicUsize>);

impl tracing::Subscriber for CountWarnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Fails while the shared flag is set, else counts like [`Counter`].
struct Flaky(Arc<std::sync::atomic::AtomicBool>);

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.fill(7);
        Ok(buf.len())
    }
}

#[test]
fn a_source_that_stays_broken_warns_once_per_outage() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let warnings = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(true));
    let mem = memory();
    // At most 8 chains: virtio-queue's mock puts the used ring over the
    // second half of the avail ring.
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Flaky(broken.clone())));
    activate(&mut rng, &mem, &[&mock], 0);
    tracing::subscriber::with_default(CountWarnings(warnings.clone()), || {
        // A driver retrying at once after empty answers.
        for i in 0..4 {
            add_chain(&mock, i, &[(DATA, 8, WRITE)]);
            rng.process_queue(0);
            assert_eq!(used(&mock, i), (u32::from(i), 0));
        }
        assert_eq!(warnings.load(Ordering::SeqCst), 1);
        // It recovers, then breaks again: a new outage, a new warning.
        broken.store(false, Ordering::SeqCst);
        add_chain(&mock, 4, &[(DATA, 8, WRITE)]);
        rng.process_queue(0);
        assert_eq!(used(&mock, 4), (4, 8));
        broken.store(true, Ordering::SeqCst);
        add_chain(&mock, 5, &[(DATA, 8, WRITE)]);
        add_chain(&mock, 6, &[(DATA, 8, WRITE)]);
        rng.process_queue(0);
        assert_eq!(used_idx(&mock), 7);
    });
    assert_eq!(warnings.load(Ordering::SeqCst), 2);
}

/// A polling driver sets VRING_AVAIL_F_NO_INTERRUPT (without EVENT_IDX):
/// its buffers are served without an interrupt; cleared, interrupts resume.
#[test]
fn no_interrupt_flag_is_honoured_without_event_idx() {
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut rng = Rng::new(Box::new(Counter(0)));
    let irq = activate(&mut rng, &mem, &[&mock], 0);
    let flags = mock.avail_addr();
    mem.write_obj(1u16.to_le(), flags).unwrap();
    add_chain(&mock, 0, &[(DATA, 16, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used_idx(&mock), 1, "served");
    assert!(
        irq.used.lock().unwrap().is_empty(),
        "no interrupt asked for"
    );
    mem.write_obj(0u16, flags).unwrap();
    add_chain(&mock, 1, &[(DATA, 16, WRITE)]);
    rng.process_queue(0);
    assert_eq!(used_idx(&mock), 2);
    assert_eq!(*irq.used.lock().unwrap(), vec![0]);
}
