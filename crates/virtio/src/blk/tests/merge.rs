//! Request merging in the asynchronous engines: reads or writes adjacent on
//! disk and popped in one pass go as one transfer, and each request still
//! gets its own data, status byte and used length, the same as the sync
//! engine gives it.

use proptest::prelude::*;

use super::*;

/// Request `i`'s data buffer: page-aligned (zero-copy even with O_DIRECT)
/// unless `odd`, which sends it through O_DIRECT's bounce buffer.
fn data_addr(i: usize, odd: bool) -> u64 {
    0x40_0000 + i as u64 * 0x2_0000 + u64::from(odd)
}

/// Chains per pass: 3 descriptors each in a 16-entry table, and the mock's
/// used ring is only clear of its avail ring for the first 8 entries.
const MAX_REQS: usize = 5;

#[derive(Debug, Clone, Copy)]
struct Req {
    kind: u32,
    sector: u64,
    /// Data bytes (none for a flush).
    len: u32,
    odd: bool,
}

fn rd(sector: u64, sectors: u32) -> Req {
    Req {
        kind: kind::IN,
        sector,
        len: sectors * 512,
        odd: false,
    }
}

fn wr(sector: u64, sectors: u32) -> Req {
    Req {
        kind: kind::OUT,
        ..rd(sector, sectors)
    }
}

fn flush() -> Req {
    Req {
        kind: kind::FLUSH,
        ..rd(0, 0)
    }
}

/// The bytes request `i` writes.
fn fill(i: usize, len: u32) -> Vec<u8> {
    (0..len)
        .map(|j| (j as u8).wrapping_mul(13) ^ ((i as u8 + 1) * 0x21))
        .collect()
}

/// What a pass gave.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Per request: status byte and used length.
    results: Vec<(u8, u32)>,
    /// Per request: its data buffer afterwards.
    data: Vec<Vec<u8>>,
    /// Requests the engine issued within merged runs.
    merged: usize,
}

/// Posts `reqs` to a fresh device on `img` (engine and O_DIRECT from the
/// thread locals) so that one pass pops them all, and runs them. `shrink`:
/// the file's length in sectors from after the device read its capacity.
fn run_pass(img: &Image, reqs: &[Req], shrink: Option<u64>) -> Outcome {
    assert!(reqs.len() <= MAX_REQS);
    let mem = memory();
    let mock = MockSplitQueue::new(&mem, 16);
    let mut blk = img.block(BlockOptions::default());
    activate(&mut blk, &mem, &[&mock], 0);
    if let Some(sectors) = shrink {
        img.file.as_file().set_len(sectors * 512).unwrap();
    }
    for (i, r) in reqs.iter().enumerate() {
        let hdr = HDR + 16 * i as u64;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&r.kind.to_le_bytes());
        h[8..16].copy_from_slice(&r.sector.to_le_bytes());
        mem.write_slice(&h, GuestAddress(hdr)).unwrap();
        let status = STATUS + i as u64;
        mem.write_obj(0xeeu8, GuestAddress(status)).unwrap();
        let addr = data_addr(i, r.odd);
        // Reads must overwrite this.
        mem.write_slice(&fill(i, r.len), GuestAddress(addr))
            .unwrap();
        let mut descs = vec![(hdr, 16, 0)];
        if r.len > 0 {
            let dir = if r.kind == kind::IN { WRITE } else { 0 };
            descs.push((addr, r.len, dir));
        }
        descs.push((status, 1, WRITE));
        add_chain(&mock, 3 * i as u16, &descs);
    }
    blk.process_queue(0);
    settle(&mut blk);
    assert_eq!(usize::from(used_idx(&mock)), reqs.len());
    let mut results = vec![(0xff, u32::MAX); reqs.len()];
    for u in 0..reqs.len() {
        let (id, len) = used(&mock, u as u16);
        let i = id as usize / 3;
        let status = mem.read_obj(GuestAddress(STATUS + i as u64)).unwrap();
        assert_eq!(results[i], (0xff, u32::MAX), "request {i} used twice");
        results[i] = (status, len);
    }
    let data = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = vec![0u8; r.len as usize];
            mem.read_slice(&mut v, GuestAddress(data_addr(i, r.odd)))
                .unwrap();
            v
        })
        .collect();
    Outcome {
        results,
        data,
        merged: blk.disk.merged(),
    }
}

/// Every asynchronous engine, with and without O_DIRECT.
fn each_async_engine(mut f: impl FnMut(&str)) {
    for aio in [AioMode::Threads, AioMode::IoUring] {
        for direct in [false, true] {
            ENGINE.with(|e| e.set(aio));
            DIRECT.with(|d| d.set(direct));
            f(&format!("{aio:?} direct={direct}"));
        }
    }
    DIRECT.with(|d| d.set(false));
}

#[test]
fn adjacent_reads_are_merged_and_each_gets_its_own_data() {
    each_async_engine(|what| {
        let img = Image::new(SECTORS * 512);
        // Out of order on purpose: 0..8, 8..16, 16..20, 20..28 once sorted.
        let reqs = [rd(8, 8), rd(0, 8), rd(20, 8), rd(16, 4)];
        let out = run_pass(&img, &reqs, None);
        assert_eq!(out.merged, 4, "{what}");
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(out.results[i], (OK, r.len + 1), "{what} request {i}");
            assert!(
                out.data[i] == img.read(r.sector * 512, r.len as usize),
                "{what} request {i}"
            );
        }
    });
}

#[test]
fn adjacent_writes_are_merged_and_land_in_the_file() {
    each_async_engine(|what| {
        let img = Image::new(SECTORS * 512);
        let before = img.read(0, (SECTORS * 512) as usize);
        let reqs = [wr(12, 8), wr(21, 7), wr(4, 8), wr(20, 1)];
        let out = run_pass(&img, &reqs, None);
        assert_eq!(out.merged, 4, "{what}");
        let mut want = before;
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(out.results[i], (OK, 1), "{what} request {i}");
            let at = (r.sector * 512) as usize;
            want[at..at + r.len as usize].copy_from_slice(&fill(i, r.len));
        }
        assert!(img.read(0, want.len()) == want, "{what}");
    });
}

#[test]
fn non_adjacent_and_mixed_direction_requests_are_not_merged() {
    each_async_engine(|what| {
        let img = Image::new(SECTORS * 512);
        // A write between two reads, a gap, two writes with a gap.
        let reqs = [rd(0, 8), wr(8, 8), rd(17, 8), wr(32, 8), wr(41, 8)];
        let out = run_pass(&img, &reqs, None);
        assert_eq!(out.merged, 0, "{what}");
        for (i, r) in reqs.iter().enumerate() {
            let used = if r.kind == kind::IN { r.len + 1 } else { 1 };
            assert_eq!(out.results[i], (OK, used), "{what} request {i}");
        }
        assert!(out.data[0] == img.read(0, 4096), "{what}");
        assert!(out.data[2] == img.read(17 * 512, 4096), "{what}");
        assert!(img.read(8 * 512, 4096) == fill(1, 4096), "{what}");
        assert!(img.read(41 * 512, 4096) == fill(4, 4096), "{what}");
    });
}

#[test]
fn a_flush_is_never_merged_across() {
    each_async_engine(|what| {
        let img = Image::new(SECTORS * 512);
        let out = run_pass(&img, &[wr(0, 8), flush(), wr(8, 8)], None);
        assert_eq!(out.merged, 0, "{what}");
        assert_eq!(out.results, [(OK, 1); 3], "{what}");

        // Runs on either side of the flush still merge.
        let reqs = [wr(0, 8), wr(8, 8), flush(), wr(24, 8), wr(16, 8)];
        let out = run_pass(&img, &reqs, None);
        assert_eq!(out.merged, 4, "{what}");
        assert_eq!(out.results, [(OK, 1); 5], "{what}");
        for (i, r) in reqs.iter().enumerate() {
            let at = r.sector * 512;
            assert!(img.read(at, r.len as usize) == fill(i, r.len), "{what}");
        }
    });
}

#[test]
fn a_merged_run_past_the_end_of_the_file_fails_only_what_is_past_it() {
    each_async_engine(|what| {
        // The file ends 2 sectors into the second read: the first read
        // completes, the second is short then at the end, the third is past
        // it.
        let reqs = [rd(0, 8), rd(8, 8), rd(16, 8)];
        let img = Image::new(SECTORS * 512);
        let out = run_pass(&img, &reqs, Some(10));
        assert_eq!(out.merged, 3, "{what}");
        assert_eq!(out.results, [(OK, 4097), (IOERR, 1), (IOERR, 1)], "{what}");
        assert!(out.data[0] == img.read(0, 4096), "{what}");

        // Ending exactly between two requests.
        let img = Image::new(SECTORS * 512);
        let out = run_pass(&img, &reqs, Some(16));
        assert_eq!(out.results, [(OK, 4097), (OK, 4097), (IOERR, 1)], "{what}");
        assert!(out.data[1] == img.read(4096, 4096), "{what}");
    });
}

/// Random requests, most starting where the one before ended, in the same
/// direction (so that runs to merge are common).
fn batch() -> impl Strategy<Value = Vec<Req>> {
    proptest::collection::vec((req(), proptest::bool::weighted(0.7)), 1..=MAX_REQS).prop_map(|v| {
        let mut out: Vec<Req> = Vec::new();
        for (mut r, follow) in v {
            if let (true, Some(p)) = (follow, out.last()) {
                r.sector = p.sector + u64::from(p.len) / 512;
                if p.kind != kind::FLUSH && r.kind != kind::FLUSH {
                    r.kind = p.kind;
                }
            }
            out.push(r);
        }
        out
    })
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop_oneof![
            4 => Just(kind::IN),
            4 => Just(kind::OUT),
            1 => Just(kind::FLUSH),
        ],
        // Past the end sometimes: refused when parsed.
        prop_oneof![0..SECTORS + 4, 0..8u64],
        0..=16u32,
        any::<bool>(),
    )
        .prop_map(|(k, sector, sectors, odd)| Req {
            kind: k,
            sector,
            len: if k == kind::FLUSH { 0 } else { sectors * 512 },
            odd,
        })
}

/// Drops requests whose outcome would depend on the order the engine runs
/// them in: any overlap with a write, and (when the file shrinks) writes
/// that would grow it back.
fn deterministic(reqs: Vec<Req>, shrink: Option<u64>) -> Vec<Req> {
    let range = |r: &Req| (r.sector, r.sector + u64::from(r.len) / 512);
    let mut kept: Vec<Req> = Vec::new();
    for r in reqs {
        let (start, end) = range(&r);
        if r.kind == kind::OUT && shrink.is_some_and(|s| end > s) {
            continue;
        }
        let clash = r.kind != kind::FLUSH
            && kept.iter().any(|k| {
                let (ks, ke) = range(k);
                k.kind != kind::FLUSH
                    && (k.kind == kind::OUT || r.kind == kind::OUT)
                    && start < ke
                    && ks < end
            });
        if !clash {
            kept.push(r);
        }
    }
    kept
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn merged_passes_match_the_sync_engine(
        reqs in batch(),
        shrink in proptest::option::weighted(0.25, 0..SECTORS),
        aio in prop_oneof![Just(AioMode::Threads), Just(AioMode::IoUring)],
        direct in any::<bool>(),
    ) {
        let reqs = deterministic(reqs, shrink);
        DIRECT.with(|d| d.set(direct));
        ENGINE.with(|e| e.set(AioMode::Sync));
        let want_img = Image::new(SECTORS * 512);
        let want = run_pass(&want_img, &reqs, shrink);
        ENGINE.with(|e| e.set(aio));
        let img = Image::new(SECTORS * 512);
        let got = run_pass(&img, &reqs, shrink);
        prop_assert_eq!(&got.results, &want.results);
        for (i, r) in reqs.iter().enumerate() {
            if r.kind == kind::IN && want.results[i].0 == OK {
                prop_assert!(got.data[i] == want.data[i], "request {}", i);
            }
        }
        let len = want_img.file.as_file().metadata().unwrap().len();
        prop_assert_eq!(img.file.as_file().metadata().unwrap().len(), len);
        prop_assert!(img.read(0, len as usize) == want_img.read(0, len as usize));
    }
}
