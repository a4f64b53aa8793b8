//! Random descriptor chains never panic, hang or write outside what they
//! may: the file keeps its size and every head comes back at most once,
//! whichever engine runs the requests, with O_DIRECT or without.

use proptest::prelude::*;

use super::*;

fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(HDR),
        Just(BUF),
        Just(STATUS),
        Just(MEM_SIZE - 1),
        Just(MEM_SIZE),
        Just(u64::MAX - 8),
        0..MEM_SIZE * 2,
    ]
}

fn len() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(16),
        Just(512),
        Just(513),
        Just(u32::MAX),
        0..4096u32
    ]
}

fn flags() -> impl Strategy<Value = u16> {
    // NEXT, WRITE and INDIRECT in any combination, plus junk bits.
    (0u16..8, any::<bool>()).prop_map(|(f, junk)| f | if junk { 0x100 } else { 0 })
}

fn raw_desc() -> impl Strategy<Value = (u64, u32, u16, u16)> {
    (addr(), len(), flags(), 0u16..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_chains_never_panic(
        descs in proptest::collection::vec(raw_desc(), 1..16),
        req_type in prop_oneof![0u32..16, any::<u32>()],
        sector in prop_oneof![0u64..SECTORS + 2, any::<u64>()],
        heads in 1u16..4,
        aio in prop_oneof![Just(AioMode::Sync), Just(AioMode::Threads), Just(AioMode::IoUring)],
        direct in any::<bool>(),
    ) {
        ENGINE.with(|e| e.set(aio));
        DIRECT.with(|d| d.set(direct));
        let r = Run::new();
        header(&r.mem, req_type, sector);
        let mock = MockSplitQueue::new(&r.mem, 16);
        let mut blk = r.disk.block(BlockOptions::default());
        let irq = activate(&mut blk, &r.mem, &[&mock], 0);
        let raw: Vec<_> = descs.iter().map(|&(a, l, f, n)| desc(a, l, f, n)).collect();
        mock.add_desc_chains(&raw, 0).unwrap();
        // Point extra avail entries at arbitrary heads, including ones past
        // the table.
        for h in 1..heads {
            let idx = mock.avail().idx().load();
            mock.avail().ring().ref_at(idx as usize % 16).unwrap().store(h * 7);
            mock.avail().idx().store(idx + 1);
        }
        let avail = mock.avail().idx().load();
        blk.process_queue(0);
        settle(&mut blk);
        prop_assert!(used_idx(&mock) <= avail);
        if !irq.needs_reset.load(Ordering::SeqCst) {
            prop_assert_eq!(used_idx(&mock), avail);
        }
        prop_assert_eq!(
            r.disk.file.as_file().metadata().unwrap().len(),
            SECTORS * 512
        );
    }
}
