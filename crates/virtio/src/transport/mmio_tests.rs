use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::mmio::*;
use super::VirtioTransport;
use crate::rng::Rng;
use crate::test_util::*;
use crate::{features, Memory, VirtioDevice, VirtioInterrupt};
use rvirt_bus::BusDevice;
use virtio_bindings::virtio_mmio as reg;

struct Fixture {
    mem: Memory,
    irq: Arc<CountingIrq>,
    t: MmioTransport,
}

fn fixture() -> Fixture {
    let mem = memory();
    let irq = Arc::new(CountingIrq::default());
    let dev: Arc<Mutex<dyn VirtioDevice>> =
        Arc::new(Mutex::new(Rng::new(Box::new(std::io::repeat(0x5a)))));
    let t = MmioTransport::new(dev, mem.clone(), irq.clone());
    Fixture { mem, irq, t }
}

fn rd(t: &mut MmioTransport, off: u32) -> u32 {
    let mut b = [0u8; 4];
    t.read(u64::from(off), &mut b);
    u32::from_le_bytes(b)
}

fn wr(t: &mut MmioTransport, off: u32, v: u32) {
    t.write(u64::from(off), &v.to_le_bytes());
}

fn negotiate(t: &mut MmioTransport, features: u64) {
    wr(t, reg::VIRTIO_MMIO_STATUS, ACK);
    wr(t, reg::VIRTIO_MMIO_STATUS, ACK | DRIVER);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(t, reg::VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
    wr(t, reg::VIRTIO_MMIO_STATUS, ACK | DRIVER | FEATURES_OK);
}

fn setup_queue(t: &mut MmioTransport, size: u32, desc: u64, avail: u64, used: u64) {
    wr(t, reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    wr(t, reg::VIRTIO_MMIO_QUEUE_NUM, size);
    wr(t, reg::VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_DESC_HIGH, (desc >> 32) as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (avail >> 32) as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_USED_LOW, used as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_USED_HIGH, (used >> 32) as u32);
    wr(t, reg::VIRTIO_MMIO_QUEUE_READY, 1);
}

fn mock_queue(t: &mut MmioTransport, mock: &MockSplitQueue<'_, Memory>) {
    setup_queue(
        t,
        16,
        mock.desc_table_addr().0,
        mock.avail_addr().0,
        mock.used_addr().0,
    );
}

#[test]
fn identification_registers() {
    let mut f = fixture();
    let t = &mut f.t;
    assert_eq!(rd(t, reg::VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_VERSION), 2);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_DEVICE_ID), 4);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_VENDOR_ID), VENDOR_ID);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    wr(t, reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 0, "no queue 1");
    assert_eq!(rd(t, reg::VIRTIO_MMIO_STATUS), 0);
    assert_eq!(t.queue_count(), 1);
}

#[test]
fn device_features_are_banked_and_include_transport_bits() {
    let mut f = fixture();
    let t = &mut f.t;
    wr(t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    let low = rd(t, reg::VIRTIO_MMIO_DEVICE_FEATURES);
    wr(t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    let high = rd(t, reg::VIRTIO_MMIO_DEVICE_FEATURES);
    wr(t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_DEVICE_FEATURES), 0);
    let all = u64::from(low) | (u64::from(high) << 32);
    assert_eq!(all, features::TRANSPORT);
}

#[test]
fn odd_sized_and_unaligned_register_accesses_are_ignored() {
    let mut f = fixture();
    let t = &mut f.t;
    let mut two = [0xffu8; 2];
    t.read(0, &mut two);
    assert_eq!(two, [0, 0]);
    let mut four = [0xffu8; 4];
    t.read(2, &mut four);
    assert_eq!(four, [0; 4]);
    t.write(u64::from(reg::VIRTIO_MMIO_STATUS), &[1]);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_STATUS), 0);
    t.write(u64::from(reg::VIRTIO_MMIO_STATUS) + 1, &[1, 0, 0, 0]);
    assert_eq!(rd(t, reg::VIRTIO_MMIO_STATUS), 0);
}

#[test]
fn full_bring_up_and_a_request() {
    let mut f = fixture();
    let mock = MockSplitQueue::new(&f.mem, 16);
    negotiate(&mut f.t, features::VERSION_1 | features::EVENT_IDX);
    assert_eq!(
        rd(&mut f.t, reg::VIRTIO_MMIO_STATUS),
        ACK | DRIVER | FEATURES_OK
    );
    mock_queue(&mut f.t, &mock);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_QUEUE_READY), 1);
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_STATUS,
        ACK | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    assert_eq!(
        rd(&mut f.t, reg::VIRTIO_MMIO_STATUS),
        ACK | DRIVER | FEATURES_OK | DRIVER_OK
    );

    add_chain(&mock, 0, &[(DATA, 4, WRITE)]);
    f.t.device().lock().unwrap().process_queue(0);
    assert_eq!(used(&mock, 0), (0, 4));
    let mut b = [0u8; 4];
    f.mem.read_slice(&mut b, GuestAddress(DATA)).unwrap();
    assert_eq!(b, [0x5a; 4]);

    assert_eq!(f.irq.0.load(Ordering::SeqCst), 1);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    wr(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_ACK, 1);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

#[test]
fn queue_notify_reaches_the_notifier_only_when_live() {
    struct Rec(Mutex<Vec<u16>>);
    impl QueueNotifier for Rec {
        fn notify(&self, q: u16) {
            self.0.lock().unwrap().push(q);
        }
    }
    let mut f = fixture();
    let rec = Arc::new(Rec(Mutex::new(Vec::new())));
    f.t.set_notifier(rec.clone());
    let mock = MockSplitQueue::new(&f.mem, 16);
    wr(&mut f.t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    negotiate(&mut f.t, features::VERSION_1);
    mock_queue(&mut f.t, &mock);
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_STATUS,
        ACK | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    wr(&mut f.t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    wr(&mut f.t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 7);
    assert_eq!(*rec.0.lock().unwrap(), vec![0]);
    assert_eq!(QUEUE_NOTIFY_OFFSET, 0x50);
}

#[test]
fn features_without_version_1_are_refused() {
    let mut f = fixture();
    negotiate(&mut f.t, features::EVENT_IDX);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), ACK | DRIVER);
}

#[test]
fn features_not_offered_are_refused() {
    let mut f = fixture();
    negotiate(&mut f.t, features::VERSION_1 | 1 << 40);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), ACK | DRIVER);
}

#[test]
fn features_are_frozen_after_features_ok() {
    let mut f = fixture();
    negotiate(&mut f.t, features::VERSION_1);
    wr(&mut f.t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_DRIVER_FEATURES,
        features::EVENT_IDX as u32,
    );
    assert_eq!(f.t.driver_features(), features::VERSION_1);
}

#[test]
fn status_bits_out_of_order_are_ignored() {
    let mut f = fixture();
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, DRIVER);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), 0);
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, ACK);
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, ACK | DRIVER | DRIVER_OK);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), ACK);
    // Clearing a bit without a reset is not allowed either.
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, ACK | DRIVER);
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, ACK);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), ACK | DRIVER);
    // The driver cannot set DEVICE_NEEDS_RESET.
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_STATUS,
        ACK | DRIVER | NEEDS_RESET,
    );
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), ACK | DRIVER);
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, ACK | DRIVER | FAILED);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), ACK | DRIVER | FAILED);
}

#[test]
fn queue_registers_need_features_ok() {
    let mut f = fixture();
    let mock = MockSplitQueue::new(&f.mem, 16);
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, ACK | DRIVER);
    mock_queue(&mut f.t, &mock);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_QUEUE_READY), 0);
}

#[test]
fn reset_clears_everything() {
    let mut f = fixture();
    let mock = MockSplitQueue::new(&f.mem, 16);
    negotiate(&mut f.t, features::VERSION_1);
    mock_queue(&mut f.t, &mock);
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_STATUS,
        ACK | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    add_chain(&mock, 0, &[(DATA, 4, WRITE)]);
    f.t.device().lock().unwrap().process_queue(0);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 1);

    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), 0);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_QUEUE_READY), 0);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert_eq!(f.t.driver_features(), 0);
    // The device forgot its queue: a new chain is not served.
    add_chain(&mock, 1, &[(DATA, 4, WRITE)]);
    f.t.device().lock().unwrap().process_queue(0);
    assert_eq!(used_idx(&mock), 1);
}

fn assert_broken_queue(size: u32, desc: u64, avail: u64, used: u64) {
    let mut f = fixture();
    negotiate(&mut f.t, features::VERSION_1);
    setup_queue(&mut f.t, size, desc, avail, used);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_QUEUE_READY), 0);
    let status = rd(&mut f.t, reg::VIRTIO_MMIO_STATUS);
    assert_eq!(status & NEEDS_RESET, NEEDS_RESET, "status {status:#x}");
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 2);
    assert_eq!(f.irq.0.load(Ordering::SeqCst), 1);
    // A reset brings the device back.
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), 0);
}

#[test]
fn broken_queues_set_needs_reset() {
    // Size not a power of two, zero, or above the maximum.
    assert_broken_queue(15, 0, 0x1000, 0x2000);
    assert_broken_queue(0, 0, 0x1000, 0x2000);
    assert_broken_queue(512, 0, 0x1000, 0x2000);
    // Misaligned rings.
    assert_broken_queue(16, 8, 0x1000, 0x2000);
    assert_broken_queue(16, 0, 0x1001, 0x2000);
    assert_broken_queue(16, 0, 0x1000, 0x2002);
    // Rings outside guest memory.
    assert_broken_queue(16, MEM_SIZE, 0x1000, 0x2000);
    assert_broken_queue(16, 0, MEM_SIZE - 2, 0x2000);
    assert_broken_queue(16, 0, 0x1000, 1 << 40);
}

#[test]
fn driver_ok_without_ready_queue_asks_for_reset() {
    let mut f = fixture();
    negotiate(&mut f.t, features::VERSION_1);
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_STATUS,
        ACK | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    // rng cannot work without its queue: it refuses to start.
    let status = rd(&mut f.t, reg::VIRTIO_MMIO_STATUS);
    assert_eq!(status, ACK | DRIVER | FEATURES_OK | DRIVER_OK | NEEDS_RESET);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 2);
    // Kicks are ignored, and a reset clears the condition.
    wr(&mut f.t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    wr(&mut f.t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_STATUS), 0);
}

#[test]
fn config_space_is_forwarded() {
    let mut f = fixture();
    let mut b = [0xffu8; 8];
    f.t.read(CONFIG_OFFSET, &mut b);
    assert_eq!(b, [0; 8]);
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_CONFIG_GENERATION), 0);
    f.t.interrupt().signal_config_change();
    assert_eq!(rd(&mut f.t, reg::VIRTIO_MMIO_CONFIG_GENERATION), 1);
}

#[test]
fn works_behind_an_mmio_bus() {
    let f = fixture();
    let base = 0xd000_0000;
    let bus = rvirt_bus::Bus::new("mmio");
    let t: rvirt_bus::SharedDevice = Arc::new(Mutex::new(f.t));
    bus.insert(t, base, MMIO_SIZE).unwrap();
    let mut b = [0u8; 4];
    assert!(bus.read(base, &mut b));
    assert_eq!(u32::from_le_bytes(b), MAGIC_VALUE);
    assert!(bus.read(base + CONFIG_OFFSET, &mut b));
    assert!(bus.write(
        base + u64::from(reg::VIRTIO_MMIO_STATUS),
        &ACK.to_le_bytes()
    ));
    assert!(bus.read(base + u64::from(reg::VIRTIO_MMIO_STATUS), &mut b));
    assert_eq!(u32::from_le_bytes(b), ACK);
}

/// Four requests with the driver's used_event at 10: with EVENT_IDX the
/// device stays quiet and publishes avail_event; without it, it interrupts.
fn event_idx_run(negotiate_event_idx: bool) -> (usize, u16) {
    let mut f = fixture();
    let mock = MockSplitQueue::new(&f.mem, 16);
    let extra = if negotiate_event_idx {
        features::EVENT_IDX
    } else {
        0
    };
    negotiate(&mut f.t, features::VERSION_1 | extra);
    mock_queue(&mut f.t, &mock);
    wr(
        &mut f.t,
        reg::VIRTIO_MMIO_STATUS,
        ACK | DRIVER | FEATURES_OK | DRIVER_OK,
    );
    let used_event = mock.avail_addr().0 + 4 + 2 * 16;
    f.mem.write_obj(10u16, GuestAddress(used_event)).unwrap();
    for i in 0..4 {
        add_chain(&mock, i, &[(DATA, 4, WRITE)]);
    }
    f.t.device().lock().unwrap().process_queue(0);
    assert_eq!(used_idx(&mock), 4);
    let avail_event = mock.used_addr().0 + 4 + 8 * 16;
    let avail_event: u16 = f.mem.read_obj(GuestAddress(avail_event)).unwrap();
    (f.irq.0.load(Ordering::SeqCst), avail_event)
}

#[test]
fn event_idx_suppresses_interrupts_when_negotiated() {
    assert_eq!(event_idx_run(true), (0, 4));
    assert_eq!(event_idx_run(false), (1, 0));
}

#[test]
fn reports_its_notify_regions_and_interrupt_kind() {
    let f = fixture();
    assert_eq!(
        f.t.notify_regions(),
        [crate::NotifyRegion {
            offset: QUEUE_NOTIFY_OFFSET,
            len: 4,
            datamatch: Some(0),
            queue: 0,
        }]
    );
    assert_eq!(
        f.t.interrupt_kind(),
        crate::InterruptKind::Line(rvirt_platform::TriggerMode::Edge)
    );
}
