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
