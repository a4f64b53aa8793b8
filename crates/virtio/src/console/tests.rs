use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::test_util::*;

/// A `Write` the test can look into afterwards.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Closed;

impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn setup<'a>(
    mem: &'a Memory,
    out: Box<dyn Write + Send>,
) -> (
    Console,
    MockSplitQueue<'a, Memory>,
    MockSplitQueue<'a, Memory>,
    Arc<RecordingInterrupt>,
) {
    let rx = MockSplitQueue::create(mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(mem, GuestAddress(0x1_0000), 16);
    let mut con = Console::new(out);
    let irq = activate(&mut con, mem, &[&rx, &tx], 0);
    (con, rx, tx, irq)
}

#[test]
fn guest_output_reaches_the_writer() {
    let mem = memory();
    let sink = Sink::default();
    let (mut con, _rx, tx, irq) = setup(&mem, Box::new(sink.clone()));
    mem.write_slice(b"hello ", GuestAddress(DATA)).unwrap();
    mem.write_slice(b"world\n", GuestAddress(DATA + 0x100))
        .unwrap();
    add_chain(&tx, 0, &[(DATA, 6, 0), (DATA + 0x100, 6, 0)]);
    con.process_queue(TX_QUEUE);
    assert_eq!(&*sink.0.lock().unwrap(), b"hello world\n");
    assert_eq!(used(&tx, 0), (0, 0));
    assert_eq!(*irq.used.lock().unwrap(), vec![TX_QUEUE]);
}

#[test]
fn host_input_waits_for_buffers_then_is_delivered() {
    let mem = memory();
    let (mut con, rx, _tx, irq) = setup(&mem, Box::new(Sink::default()));
    assert_eq!(con.push_input(b"abcdefgh"), 8);
    // No receive buffers yet: nothing used, everything pending.
    assert_eq!(used_idx(&rx), 0);
    assert_eq!(con.pending_input(), 8);
    // A 5-byte buffer takes the first 5 bytes.
    add_chain(&rx, 0, &[(DATA, 5, WRITE)]);
    con.process_queue(RX_QUEUE);
    assert_eq!(used(&rx, 0), (0, 5));
    assert_eq!(con.pending_input(), 3);
    let mut a = [0u8; 5];
    mem.read_slice(&mut a, GuestAddress(DATA)).unwrap();
    assert_eq!(&a, b"abcde");
    // The next buffer gets the rest.
    add_chain(&rx, 1, &[(DATA + 0x100, 64, WRITE)]);
    con.process_queue(RX_QUEUE);
    assert_eq!(used(&rx, 1), (1, 3));
    let mut b = [0u8; 3];
    mem.read_slice(&mut b, GuestAddress(DATA + 0x100)).unwrap();
    assert_eq!(&b, b"fgh");
    assert_eq!(con.pending_input(), 0);
    assert_eq!(*irq.used.lock().unwrap(), vec![RX_QUEUE, RX_QUEUE]);
}

#[test]
fn posted_buffers_are_kept_until_input_arrives() {
    let mem = memory();
    let (mut con, rx, _tx, _irq) = setup(&mem, Box::new(Sink::default()));
    add_chain(&rx, 0, &[(DATA, 16, WRITE)]);
    con.process_queue(RX_QUEUE);
    assert_eq!(used_idx(&rx), 0, "an empty buffer must not be returned");
    con.push_input(b"x");
    assert_eq!(used(&rx, 0), (0, 1));
}

#[test]
fn pending_input_is_bounded() {
    let mem = memory();
    let (mut con, _rx, _tx, _irq) = setup(&mem, Box::new(Sink::default()));
    let big = vec![b'z'; MAX_PENDING_INPUT + 100];
    assert_eq!(con.push_input(&big), MAX_PENDING_INPUT);
    assert!(!con.wants_input());
    assert_eq!(con.push_input(b"more"), 0);
}

#[test]
fn input_before_activation_is_delivered_at_activation() {
    let mem = memory();
    let rx = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let tx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
    let mut con = Console::new(Box::new(Sink::default()));
    con.push_input(b"early");
    add_chain(&rx, 0, &[(DATA, 16, WRITE)]);
    activate(&mut con, &mem, &[&rx, &tx], 0);
    assert_eq!(used(&rx, 0), (0, 5));
}

#[test]
fn hostile_chains_are_returned_and_service_goes_on() {
    let mem = memory();
    let sink = Sink::default();
    let (mut con, rx, tx, _irq) = setup(&mem, Box::new(sink.clone()));
    // tx: a buffer outside RAM, then a good one.
    add_chain(&tx, 0, &[(MEM_SIZE - 2, 8, 0)]);
    mem.write_slice(b"ok", GuestAddress(DATA)).unwrap();
    add_chain(&tx, 1, &[(DATA, 2, 0)]);
    con.process_queue(TX_QUEUE);
    assert_eq!(used_idx(&tx), 2);
    assert_eq!(&*sink.0.lock().unwrap(), b"ok");
    // rx: a read-only buffer (wrong direction for input) consumes nothing.
    add_chain(&rx, 0, &[(DATA, 8, 0)]);
    add_chain(&rx, 1, &[(DATA + 0x100, 8, WRITE)]);
    con.push_input(b"hi");
    assert_eq!(used(&rx, 0), (0, 0));
    assert_eq!(used(&rx, 1), (1, 2));
}

#[test]
fn closed_output_does_not_stall_the_guest() {
    let mem = memory();
    let (mut con, _rx, tx, _irq) = setup(&mem, Box::new(Closed));
    add_chain(&tx, 0, &[(DATA, 8, 0)]);
    con.process_queue(TX_QUEUE);
    assert_eq!(used(&tx, 0), (0, 0));
}

#[test]
fn broken_rx_ring_asks_for_reset() {
    let mem = memory();
    let (mut con, rx, _tx, irq) = setup(&mem, Box::new(Sink::default()));
    rx.avail().idx().store(100);
    con.push_input(b"x");
    assert!(irq.needs_reset.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn config_reads_zero_and_type_is_console() {
    let con = Console::new(Box::new(Sink::default()));
    let mut cfg = [0xffu8; CONFIG_SIZE];
    con.read_config(0, &mut cfg);
    assert_eq!(cfg, [0; CONFIG_SIZE]);
    assert_eq!(con.device_type(), 3);
    assert_eq!(con.queue_max_sizes().len(), 2);
}
