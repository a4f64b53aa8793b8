use std::sync::atomic::{AtomicBool, AtomicU64};

use super::*;

#[derive(Default)]
struct Recorder {
    writes: Vec<(u64, Vec<u8>)>,
}

impl BusDevice for Recorder {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(offset as u8);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes.push((offset, data.to_vec()));
    }
}

/// Answers every read with its tag.
struct Tagged(u8);

impl BusDevice for Tagged {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(self.0);
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}

fn d() -> SharedDevice {
    Arc::new(Mutex::new(Recorder::default()))
}

#[test]
fn dispatches_by_offset_and_counts_misses() {
    let dev = Arc::new(Mutex::new(Recorder::default()));
    let bus = Bus::new("pio");
    bus.insert(dev.clone(), 0x3f8, 8).unwrap();
    let mut b = [0u8; 1];
    assert!(bus.read(0x3fa, &mut b));
    assert_eq!(b, [2]);
    assert!(bus.write(0x3ff, &[7]));
    assert_eq!(dev.lock().unwrap().writes, vec![(7, vec![7])]);
    assert!(!bus.read(0x400, &mut b));
    assert_eq!(b, [0xff]);
    // An access straddling the end of the range is not the device's.
    let mut w = [0u8; 2];
    assert!(!bus.read(0x3ff, &mut w));
    assert_eq!(bus.unhandled(), 2);
}

#[test]
fn refuses_overlaps_and_bad_ranges() {
    let bus = Bus::new("mmio");
    bus.insert(d(), 0x1000, 0x100).unwrap();
    assert!(matches!(
        bus.insert(d(), 0x10ff, 1),
        Err(BusError::Overlap { .. })
    ));
    assert!(matches!(
        bus.insert(d(), 0xf01, 0x100),
        Err(BusError::Overlap { .. })
    ));
    assert!(matches!(
        bus.insert(d(), 0x2000, 0),
        Err(BusError::InvalidRange { .. })
    ));
    assert!(matches!(
        bus.insert(d(), u64::MAX, 2),
        Err(BusError::InvalidRange { .. })
    ));
    bus.insert(d(), 0x1100, 0x100).unwrap();
    bus.insert(d(), 0xf00, 0x100).unwrap();
}

#[test]
fn remove_frees_the_range() {
    let bus = Bus::new("mmio");
    bus.insert(Arc::new(Mutex::new(Tagged(1))), 0x1000, 0x100)
        .unwrap();
    assert_eq!(bus.remove(0x1080).err(), Some(BusError::NotFound(0x1080)));
    bus.remove(0x1000).unwrap();
    let mut b = [0u8; 1];
    assert!(!bus.read(0x1000, &mut b));
    assert_eq!(bus.remove(0x1000).err(), Some(BusError::NotFound(0x1000)));
    // The range is free for another device.
    bus.insert(Arc::new(Mutex::new(Tagged(2))), 0x1000, 0x100)
        .unwrap();
    assert!(bus.read(0x1000, &mut b));
    assert_eq!(b, [2]);
}

#[test]
fn relocate_moves_a_device_or_changes_nothing() {
    let bus = Bus::new("mmio");
    bus.insert(Arc::new(Mutex::new(Tagged(1))), 0x1000, 0x100)
        .unwrap();
    bus.insert(Arc::new(Mutex::new(Tagged(2))), 0x3000, 0x100)
        .unwrap();
    bus.relocate(0x1000, 0x2000, 0x100).unwrap();
    let mut b = [0u8; 1];
    assert!(!bus.read(0x1000, &mut b), "gone from the old place");
    assert!(bus.read(0x20ff, &mut b));
    assert_eq!(b, [1]);
    // Onto another device: refused, and the device stays where it was.
    assert!(matches!(
        bus.relocate(0x2000, 0x2f80, 0x100),
        Err(BusError::Overlap { other: 0x3000, .. })
    ));
    assert!(matches!(
        bus.relocate(0x2000, u64::MAX - 1, 0x100),
        Err(BusError::InvalidRange { .. })
    ));
    assert_eq!(bus.ranges(), [(0x2000, 0x100), (0x3000, 0x100)]);
    // Onto a range overlapping only its own old place: allowed.
    bus.relocate(0x2000, 0x2080, 0x100).unwrap();
    assert_eq!(bus.ranges(), [(0x2080, 0x100), (0x3000, 0x100)]);
    assert_eq!(
        bus.relocate(0x5000, 0x6000, 1),
        Err(BusError::NotFound(0x5000))
    );
}

/// Readers on several threads never see a torn map while a writer moves a
/// device back and forth: every read is answered either by the device (at
/// whichever place it is) or by nobody, and the fixed device always answers.
#[test]
fn lookups_run_concurrently_with_moves() {
    let bus = Arc::new(Bus::new("mmio"));
    bus.insert(Arc::new(Mutex::new(Tagged(7))), 0x10_000, 0x1000)
        .unwrap();
    bus.insert(Arc::new(Mutex::new(Tagged(9))), 0x1000, 0x1000)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Loops the readers have run: the mover keeps moving until they have
    // run a while, however late a loaded host schedules them.
    let loops = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let bus = bus.clone();
            let stop = stop.clone();
            let loops = loops.clone();
            std::thread::spawn(move || {
                let mut hits = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut b = [0u8; 4];
                    assert!(bus.read(0x10_010, &mut b), "the fixed device vanished");
                    assert_eq!(b, [7; 4]);
                    for addr in [0x1000, 0x2000] {
                        if bus.read(addr + 4, &mut b) {
                            assert_eq!(b, [9; 4]);
                            hits += 1;
                        } else {
                            assert_eq!(b, [0xff; 4]);
                        }
                    }
                    loops.fetch_add(1, Ordering::Relaxed);
                }
                hits
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut i = 0u64;
    // An even number of moves, so the device ends where it started.
    while i < 2000 || !i.is_multiple_of(2) || loops.load(Ordering::Relaxed) < 3000 {
        assert!(
            std::time::Instant::now() < deadline || !i.is_multiple_of(2),
            "the readers ran {} loops in 20 s",
            loops.load(Ordering::Relaxed)
        );
        let (from, to) = if i.is_multiple_of(2) {
            (0x1000, 0x2000)
        } else {
            (0x2000, 0x1000)
        };
        bus.relocate(from, to, 0x1000).unwrap();
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let hits: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(hits > 0);
    assert_eq!(bus.ranges(), [(0x1000, 0x1000), (0x10_000, 0x1000)]);
}
