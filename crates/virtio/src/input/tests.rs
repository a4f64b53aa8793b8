use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::test_util::*;

/// Selects `sel`/`sub` and reads back (size, answer).
fn ask(dev: &mut Input, sel: u8, sub: u8) -> (u8, Vec<u8>) {
    dev.write_config(0, &[sel, sub]);
    let mut c = [0u8; CONFIG_SIZE];
    dev.read_config(0, &mut c);
    assert_eq!((c[0], c[1]), (sel, sub));
    let size = c[2];
    (size, c[8..8 + usize::from(size)].to_vec())
}

#[test]
fn config_answers_as_qemu() {
    let mut k = Input::new(InputKind::Keyboard);
    assert_eq!(
        ask(&mut k, select::ID_NAME, 0),
        (21, b"QEMU Virtio Keyboard\0".to_vec())
    );
    assert_eq!(
        ask(&mut k, select::ID_DEVIDS, 0),
        (8, vec![6, 0, 0x27, 0x06, 1, 0, 1, 0])
    );
    assert_eq!(ask(&mut k, select::ID_SERIAL, 0).0, 0);
    assert_eq!(ask(&mut k, select::PROP_BITS, 0).0, 0);
    assert_eq!(ask(&mut k, select::EV_BITS, EV_LED as u8), (1, vec![7]));
    assert_eq!(ask(&mut k, select::EV_BITS, EV_REP as u8), (1, vec![0]));
    let (size, keys) = ask(&mut k, select::EV_BITS, EV_KEY as u8);
    // KEY_COMPOSE (127) is the highest key: 16 bytes.
    assert_eq!(size, 16);
    assert_eq!(keys[30 / 8] & (1 << (30 % 8)), 1 << (30 % 8)); // KEY_A
    assert_eq!(ask(&mut k, select::EV_BITS, EV_ABS as u8).0, 0);
    assert_eq!(ask(&mut k, select::UNSET, 0).0, 0);
    // A name asked with another subsel is not an answer.
    assert_eq!(ask(&mut k, select::ID_NAME, 1).0, 0);

    let mut t = Input::new(InputKind::Tablet);
    assert_eq!(ask(&mut t, select::ID_NAME, 0).1, b"QEMU Virtio Tablet\0");
    assert_eq!(ask(&mut t, select::ID_DEVIDS, 0).1[4..], [3, 0, 2, 0]);
    assert_eq!(ask(&mut t, select::EV_BITS, EV_ABS as u8), (1, vec![3]));
    assert_eq!(ask(&mut t, select::EV_BITS, EV_REL as u8), (2, vec![0, 1]));
    let (size, abs) = ask(&mut t, select::ABS_INFO, ABS_Y as u8);
    assert_eq!(size, 20);
    assert_eq!(abs[4..8], 0x7fffu32.to_le_bytes());
    // BTN_GEAR_UP (0x151) is the highest button: 43 bytes.
    let (size, btns) = ask(&mut t, select::EV_BITS, EV_KEY as u8);
    assert_eq!(size, 43);
    assert_eq!(btns[0x110 / 8], 0x1f); // BTN_LEFT..BTN_EXTRA

    let mut m = Input::new(InputKind::Mouse);
    assert_eq!(ask(&mut m, select::ID_NAME, 0).1, b"QEMU Virtio Mouse\0");
    assert_eq!(ask(&mut m, select::EV_BITS, EV_REL as u8), (2, vec![3, 1]));
    assert_eq!(ask(&mut m, select::ABS_INFO, 0).0, 0);
}

#[test]
fn config_reads_at_any_offset_and_length() {
    let mut k = Input::new(InputKind::Keyboard);
    k.write_config(0, &[select::ID_NAME]);
    let mut b = [0u8; 4];
    k.read_config(8, &mut b);
    assert_eq!(&b, b"QEMU");
    // Past the end reads as zero; writes to the answer are ignored.
    let mut far = [0xffu8; 4];
    k.read_config(CONFIG_SIZE as u64 - 2, &mut far);
    assert_eq!(far, [0; 4]);
    k.read_config(u64::MAX, &mut far);
    assert_eq!(far, [0; 4]);
    k.write_config(2, &[0x55; 10]);
    k.write_config(u64::MAX, &[1, 2]);
    let mut c = [0u8; 3];
    k.read_config(0, &mut c);
    assert_eq!(c, [select::ID_NAME, 0, 21]);
}

fn event_at(mem: &Memory, addr: u64) -> InputEvent {
    let mut b = [0u8; 8];
    mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
    InputEvent::from_bytes(b)
}

#[test]
fn events_fill_buffers_and_wait_for_more() {
    let mem = memory();
    let events = MockSplitQueue::new(&mem, 16);
    let status = MockSplitQueue::new(&mem, 16);
    let mut k = Input::new(InputKind::Keyboard);
    // No driver yet: dropped.
    assert!(!k.send(&[InputEvent::new(EV_KEY, 30, 1)]));
    let irq = activate(&mut k, &mem, &[&events, &status], 0);
    add_chain(&events, 0, &[(DATA, 8, WRITE)]);
    assert!(k.send(&[InputEvent::new(EV_KEY, 30, 1)]));
    // One buffer: the key went, the SYN waits.
    assert_eq!(used_idx(&events), 1);
    assert_eq!(event_at(&mem, DATA), InputEvent::new(EV_KEY, 30, 1));
    assert_eq!(k.pending(), 1);
    add_chain(&events, 1, &[(DATA + 0x100, 8, WRITE)]);
    k.process_queue(0);
    assert_eq!(used_idx(&events), 2);
    assert_eq!(event_at(&mem, DATA + 0x100), InputEvent::new(EV_SYN, 0, 0));
    assert_eq!(k.pending(), 0);
    assert!(irq.used.lock().unwrap().iter().all(|&q| q == 0));
    assert!(!irq.needs_reset.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_driver_that_posts_nothing_loses_input_not_memory() {
    let mem = memory();
    let events = MockSplitQueue::new(&mem, 16);
    let status = MockSplitQueue::new(&mem, 16);
    let mut m = Input::new(InputKind::Mouse);
    activate(&mut m, &mem, &[&events, &status], 0);
    let mut sent = 0;
    for i in 0..10_000 {
        if m.send(&[
            InputEvent::new(EV_REL, REL_X, i),
            InputEvent::new(EV_REL, REL_Y, 1),
        ]) {
            sent += 1;
        }
    }
    assert!(m.pending() <= MAX_PENDING);
    assert_eq!(sent, MAX_PENDING / 3);
    m.reset();
    assert_eq!(m.pending(), 0);
    assert!(!m.is_active());
}

#[test]
fn short_or_readable_event_buffers_are_returned_empty() {
    let mem = memory();
    let events = MockSplitQueue::new(&mem, 16);
    let status = MockSplitQueue::new(&mem, 16);
    let mut k = Input::new(InputKind::Keyboard);
    activate(&mut k, &mem, &[&events, &status], 0);
    add_chain(&events, 0, &[(DATA, 4, WRITE)]);
    add_chain(&events, 1, &[(DATA + 0x100, 8, 0)]);
    k.send(&[InputEvent::new(EV_KEY, 30, 1)]);
    assert_eq!(used(&events, 0), (0, 0));
    assert_eq!(used(&events, 1), (1, 0));
    assert_eq!(k.pending(), 0);
}

#[test]
fn status_queue_sets_leds() {
    let mem = memory();
    let events = MockSplitQueue::new(&mem, 16);
    let status = MockSplitQueue::new(&mem, 16);
    let mut k = Input::new(InputKind::Keyboard);
    let irq = activate(&mut k, &mem, &[&events, &status], 0);
    let led = |code, value| InputEvent::new(EV_LED, code, value).to_bytes();
    mem.write_slice(&led(LED_CAPSL, 1), GuestAddress(DATA))
        .unwrap();
    mem.write_slice(&led(LED_NUML, 1), GuestAddress(DATA + 8))
        .unwrap();
    mem.write_slice(&led(LED_NUML, 0), GuestAddress(DATA + 16))
        .unwrap();
    mem.write_slice(
        &InputEvent::new(EV_KEY, 1, 1).to_bytes(),
        GuestAddress(DATA + 24),
    )
    .unwrap();
    add_chain(&status, 0, &[(DATA, 8, 0)]);
    add_chain(&status, 1, &[(DATA + 8, 8, 0)]);
    add_chain(&status, 2, &[(DATA + 16, 8, 0)]);
    add_chain(&status, 3, &[(DATA + 24, 8, 0)]);
    k.process_queue(1);
    assert_eq!(used_idx(&status), 4);
    assert_eq!(k.leds(), 1 << LED_CAPSL);
    assert_eq!(*irq.used.lock().unwrap(), vec![1]);
}
