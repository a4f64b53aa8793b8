use std::sync::atomic::Ordering;

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::test_util::*;

struct Setup<'a> {
    balloon: Balloon,
    inflate: MockSplitQueue<'a, Memory>,
    deflate: MockSplitQueue<'a, Memory>,
    stats: MockSplitQueue<'a, Memory>,
    irq: Arc<RecordingInterrupt>,
}

fn setup(mem: &Memory, features: u64) -> Setup<'_> {
    let inflate = MockSplitQueue::create(mem, GuestAddress(0), 16);
    let deflate = MockSplitQueue::create(mem, GuestAddress(0x1_0000), 16);
    let stats = MockSplitQueue::create(mem, GuestAddress(0x2_0000), 16);
    let mut balloon = Balloon::new(BalloonOptions::default());
    let irq = activate(&mut balloon, mem, &[&inflate, &deflate, &stats], features);
    Setup {
        balloon,
        inflate,
        deflate,
        stats,
        irq,
    }
}

/// Writes `pfns` as a little-endian u32 array at `at`.
fn write_pfns(mem: &Memory, at: u64, pfns: &[u32]) -> u32 {
    for (i, p) in pfns.iter().enumerate() {
        mem.write_obj(p.to_le(), GuestAddress(at + 4 * i as u64))
            .unwrap();
    }
    4 * pfns.len() as u32
}

const PAGE_A: u64 = 0x80_0000;
const PAGE_B: u64 = 0x80_1000;

#[test]
fn inflate_frees_pages_and_they_read_as_zero() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    mem.write_slice(&[0xab; 4096], GuestAddress(PAGE_A))
        .unwrap();
    mem.write_slice(&[0xcd; 4096], GuestAddress(PAGE_B))
        .unwrap();
    // Only page A goes into the balloon.
    let len = write_pfns(&mem, DATA, &[(PAGE_A >> 12) as u32]);
    add_chain(&s.inflate, 0, &[(DATA, len, 0)]);
    s.balloon.process_queue(INFLATE_QUEUE);
    assert_eq!(used(&s.inflate, 0), (0, 0));
    assert_eq!(s.balloon.inflated_pages(), 1);
    let mut page = vec![0u8; 4096];
    mem.read_slice(&mut page, GuestAddress(PAGE_A)).unwrap();
    assert!(
        page.iter().all(|&b| b == 0),
        "inflated page still holds data"
    );
    mem.read_slice(&mut page, GuestAddress(PAGE_B)).unwrap();
    assert!(
        page.iter().all(|&b| b == 0xcd),
        "neighbour page was touched"
    );
    assert_eq!(*s.irq.used.lock().unwrap(), vec![INFLATE_QUEUE]);
}

#[test]
fn pfns_outside_guest_ram_are_ignored() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    let len = write_pfns(
        &mem,
        DATA,
        &[(MEM_SIZE >> 12) as u32, u32::MAX, (PAGE_A >> 12) as u32],
    );
    add_chain(&s.inflate, 0, &[(DATA, len, 0)]);
    s.balloon.process_queue(INFLATE_QUEUE);
    assert_eq!(used_idx(&s.inflate), 1);
    assert_eq!(s.balloon.inflated_pages(), 1);
}

#[test]
fn deflate_only_accounts() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    let len = write_pfns(&mem, DATA, &[(PAGE_A >> 12) as u32, (PAGE_B >> 12) as u32]);
    add_chain(&s.inflate, 0, &[(DATA, len, 0)]);
    s.balloon.process_queue(INFLATE_QUEUE);
    assert_eq!(s.balloon.inflated_pages(), 2);
    let len = write_pfns(&mem, DATA + 0x100, &[(PAGE_A >> 12) as u32]);
    add_chain(&s.deflate, 0, &[(DATA + 0x100, len, 0)]);
    s.balloon.process_queue(DEFLATE_QUEUE);
    assert_eq!(used(&s.deflate, 0), (0, 0));
    assert_eq!(s.balloon.inflated_pages(), 1);
    // The guest can use the page again.
    mem.write_obj(7u8, GuestAddress(PAGE_A)).unwrap();
}

#[test]
fn malformed_chains_are_returned() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    // A PFN array outside RAM, and one in a writable buffer.
    add_chain(&s.inflate, 0, &[(MEM_SIZE - 2, 8, 0)]);
    add_chain(&s.inflate, 1, &[(DATA, 8, WRITE)]);
    s.balloon.process_queue(INFLATE_QUEUE);
    assert_eq!(used_idx(&s.inflate), 2);
    assert_eq!(s.balloon.inflated_pages(), 0);
}

#[test]
fn a_huge_pfn_array_is_capped() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    // 1 MiB of PFN 0x800 (all the same page): 262144 entries.
    add_chain(&s.inflate, 0, &[(DATA, 1 << 20, 0)]);
    mem.write_slice(&vec![0; 1 << 20], GuestAddress(DATA))
        .unwrap();
    s.balloon.process_queue(INFLATE_QUEUE);
    assert_eq!(s.balloon.inflated_pages(), MAX_PFNS_PER_CHAIN as u64);
}

#[test]
fn target_raises_config_interrupt_and_actual_is_writable() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    s.balloon.set_target_pages(0x1234);
    assert_eq!(s.irq.config.load(Ordering::SeqCst), 1);
    let mut cfg = [0u8; CONFIG_SIZE];
    s.balloon.read_config(0, &mut cfg);
    assert_eq!(&cfg[..4], &0x1234u32.to_le_bytes());
    // The driver reports progress in `actual`; writes to num_pages are ignored.
    s.balloon.write_config(0, &[9, 9, 9, 9, 0x34, 0x12, 0, 0]);
    assert_eq!(s.balloon.actual_pages(), 0x1234);
    assert_eq!(s.balloon.target_pages(), 0x1234);
    // A partial write of actual's second byte.
    s.balloon.write_config(5, &[0x99]);
    assert_eq!(s.balloon.actual_pages(), 0x9934);
    // Reads past the end are zero, not a panic.
    let mut tail = [0xffu8; 8];
    s.balloon.read_config(5, &mut tail);
    assert_eq!(tail, [0x99, 0, 0, 0, 0, 0, 0, 0]);
    s.balloon.read_config(u64::MAX, &mut tail);
    s.balloon.write_config(u64::MAX, &[1, 2]);
}

fn write_stats(mem: &Memory, at: u64, stats: &[(u16, u64)]) -> u32 {
    for (i, &(tag, val)) in stats.iter().enumerate() {
        let raw = RawStat {
            tag: tag.to_le(),
            val: val.to_le(),
        };
        mem.write_obj(raw, GuestAddress(at + 10 * i as u64))
            .unwrap();
    }
    10 * stats.len() as u32
}

#[test]
fn stats_buffer_is_held_and_returned_on_request() {
    let mem = memory();
    let mut s = setup(&mem, F_STATS_VQ);
    let len = write_stats(&mem, DATA, &[(stat::MEMFREE, 1000), (stat::MEMTOT, 4000)]);
    add_chain(&s.stats, 0, &[(DATA, len, 0)]);
    s.balloon.process_queue(STATS_QUEUE);
    assert_eq!(
        s.balloon.stats(),
        &[(stat::MEMFREE, 1000), (stat::MEMTOT, 4000)]
    );
    assert_eq!(s.balloon.stats_updates(), 1);
    // Held, not returned.
    assert_eq!(used_idx(&s.stats), 0);
    assert!(s.balloon.request_stats());
    assert_eq!(used(&s.stats, 0), (0, 0));
    assert_eq!(*s.irq.used.lock().unwrap(), vec![STATS_QUEUE]);
    // Nothing held any more.
    assert!(!s.balloon.request_stats());
    // The driver refills and posts it again.
    let len = write_stats(&mem, DATA, &[(stat::MEMFREE, 500)]);
    add_chain(&s.stats, 1, &[(DATA, len, 0)]);
    s.balloon.process_queue(STATS_QUEUE);
    assert_eq!(s.balloon.stats(), &[(stat::MEMFREE, 500)]);
    assert_eq!(s.balloon.stats_updates(), 2);
}

#[test]
fn stats_ignored_without_the_feature() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    let len = write_stats(&mem, DATA, &[(stat::MEMFREE, 1)]);
    add_chain(&s.stats, 0, &[(DATA, len, 0)]);
    s.balloon.process_queue(STATS_QUEUE);
    assert!(s.balloon.stats().is_empty());
    assert!(!s.balloon.request_stats());
}

#[test]
fn a_second_stats_buffer_returns_the_first() {
    let mem = memory();
    let mut s = setup(&mem, F_STATS_VQ);
    let len = write_stats(&mem, DATA, &[(stat::MEMFREE, 1)]);
    add_chain(&s.stats, 0, &[(DATA, len, 0)]);
    add_chain(&s.stats, 1, &[(DATA, len, 0)]);
    s.balloon.process_queue(STATS_QUEUE);
    assert_eq!(used_idx(&s.stats), 1);
    assert_eq!(used(&s.stats, 0), (0, 0));
    assert_eq!(*s.irq.used.lock().unwrap(), vec![STATS_QUEUE]);
}

#[test]
fn features_queues_and_reset() {
    let mem = memory();
    let mut s = setup(&mem, 0);
    assert_eq!(s.balloon.device_type(), 5);
    assert_eq!(s.balloon.device_features(), F_STATS_VQ | F_DEFLATE_ON_OOM);
    assert_eq!(s.balloon.queue_max_sizes().len(), 3);
    s.balloon.write_config(4, &[5, 0, 0, 0]);
    s.balloon.reset();
    assert_eq!(s.balloon.actual_pages(), 0);
    let len = write_pfns(&mem, DATA, &[(PAGE_A >> 12) as u32]);
    add_chain(&s.inflate, 0, &[(DATA, len, 0)]);
    s.balloon.process_queue(INFLATE_QUEUE);
    assert_eq!(used_idx(&s.inflate), 0, "no work after reset");
    let b = Balloon::new(BalloonOptions {
        stats: false,
        deflate_on_oom: false,
    });
    assert_eq!(b.device_features(), 0);
    assert_eq!(b.queue_max_sizes().len(), 2);
}

#[test]
fn broken_stats_ring_asks_for_reset() {
    let mem = memory();
    let mut s = setup(&mem, F_STATS_VQ);
    s.stats.avail().idx().store(100);
    s.balloon.process_queue(STATS_QUEUE);
    assert!(s.irq.needs_reset.load(Ordering::SeqCst));
    let _ = &s.deflate;
}

#[test]
fn stats_refill_is_kicked_under_event_idx() {
    use virtio_queue::QueueT;
    let mem = memory();
    let mocks: Vec<MockSplitQueue<'_, Memory>> = (0..3u64)
        .map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16))
        .collect();
    let interrupt = Arc::new(RecordingInterrupt::default());
    let queues = mocks
        .iter()
        .map(|m| {
            let mut q: Queue = m.create_queue().unwrap();
            q.set_event_idx(true);
            q
        })
        .collect();
    let mut balloon = Balloon::new(BalloonOptions::default());
    balloon
        .activate(ActivateContext {
            mem: mem.clone(),
            queues,
            interrupt,
            acked_features: crate::features::VERSION_1 | crate::features::EVENT_IDX | F_STATS_VQ,
        })
        .unwrap();
    let stats = &mocks[2];
    let len = write_stats(&mem, DATA, &[(stat::MEMFREE, 1)]);
    add_chain(stats, 0, &[(DATA, len, 0)]);
    balloon.process_queue(STATS_QUEUE);
    // avail_event sits after the used ring's 16 elements; the driver kicks
    // for its next buffer only if it was moved to 1.
    let avail_event = GuestAddress(stats.used_addr().0 + 4 + 8 * 16);
    assert_eq!(mem.read_obj::<u16>(avail_event).unwrap(), 1);
}
