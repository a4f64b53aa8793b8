use proptest::prelude::*;

use super::*;
use crate::bar::BarSpec;

const IDS: Ids = Ids {
    vendor: 0x1af4,
    device: 0x1042,
    revision: 1,
    class: 0x018000,
    subsystem_vendor: 0x1af4,
    subsystem: 2,
};

fn endpoint() -> ConfigSpace {
    let mut c = ConfigSpace::endpoint(&IDS, false);
    c.add_bar(0, BarSpec::io(32));
    c.add_bar(1, BarSpec::mem32(0x1000));
    c.add_bar(4, BarSpec::mem64(0x4000, true));
    c
}

fn write32(c: &mut ConfigSpace, o: u16, v: u32) {
    c.write(o, &v.to_le_bytes());
}

#[test]
fn identity_and_read_only_bits() {
    let mut c = endpoint();
    assert_eq!(c.read_u32(0), 0x1042_1af4);
    assert_eq!(c.read_u32(8), 0x0180_0001);
    write32(&mut c, 0, 0xffff_ffff);
    write32(&mut c, 8, 0);
    assert_eq!(c.read_u32(0), 0x1042_1af4, "IDs are read-only");
    assert_eq!(c.read_u32(8), 0x0180_0001);
    assert_eq!(c.read_u32(0x2c), 0x0002_1af4);
    // COMMAND: only the defined bits stick; STATUS's error bits clear on 1.
    c.write(4, &[0xff, 0xff]);
    assert_eq!(c.read_u16(4), 0x0507);
    c.set_u16(6, 0xf910);
    c.write(6, &[0x00, 0x09]);
    assert_eq!(
        c.read_u16(6),
        0xf010,
        "two error bits cleared, CAP_LIST kept"
    );
    // Past the space: reads all ones, writes vanish.
    let mut b = [0; 4];
    c.read(0x100, &mut b);
    assert_eq!(b, [0xff; 4]);
    c.write(0xfe, &[1, 2, 3, 4]);
}

#[test]
fn bars_size_like_hardware() {
    let mut c = endpoint();
    assert_eq!(c.read_u32(0x10), 1, "I/O BAR");
    assert_eq!(c.read_u32(0x20), 0xc, "64-bit prefetchable");
    for r in 0..6u16 {
        write32(&mut c, 0x10 + 4 * r, u32::MAX);
    }
    assert_eq!(c.read_u32(0x10), 0xffff_ffe1);
    assert_eq!(c.read_u32(0x14), 0xffff_f000);
    assert_eq!(c.read_u32(0x18), 0, "absent BARs read zero");
    assert_eq!(c.read_u32(0x20), 0xffff_c00c);
    assert_eq!(c.read_u32(0x24), 0xffff_ffff);
    assert_eq!(c.read_u32(0x30), 0, "no expansion ROM");
}

#[test]
fn the_expansion_rom_sizes_and_decodes_only_when_enabled() {
    let mut c = endpoint();
    c.add_rom(64 << 10);
    assert_eq!(c.rom_size(), Some(64 << 10));
    write32(&mut c, 0x30, u32::MAX);
    assert_eq!(c.read_u32(0x30), 0xffff_0001, "size mask and enable");
    write32(&mut c, 0x30, 0xfebc_0000);
    c.write(4, &[0x2, 0]);
    assert_eq!(c.decoded_bars()[ROM_BAR], None, "not enabled");
    write32(&mut c, 0x30, 0xfebc_0001);
    let m = c.decoded_bars()[ROM_BAR].unwrap();
    assert_eq!((m.base, m.size), (0xfebc_0000, 64 << 10));
    assert_eq!(m.space, AddressSpace::Memory);
    // Unaligned address bits are not writable; memory decode off hides it.
    write32(&mut c, 0x30, 0xfebc_8801);
    assert_eq!(c.read_u32(0x30), 0xfebc_0001);
    c.write(4, &[0x1, 0]);
    assert_eq!(c.decoded_bars()[ROM_BAR], None);
    // Enabled at 0: nowhere.
    c.write(4, &[0x2, 0]);
    write32(&mut c, 0x30, 1);
    assert_eq!(c.decoded_bars()[ROM_BAR], None);
}

#[test]
fn decode_follows_command_and_limits() {
    let mut c = endpoint();
    write32(&mut c, 0x10, 0xc000);
    write32(&mut c, 0x14, 0xfe00_0000);
    write32(&mut c, 0x20, 0x0);
    write32(&mut c, 0x24, 0x8);
    assert_eq!(c.decoded_bars(), [None; BAR_SLOTS], "decode off");
    c.write(4, &[0x3, 0]);
    let d = c.decoded_bars();
    assert_eq!(d[0].unwrap().base, 0xc000);
    assert_eq!(d[1].unwrap().base, 0xfe00_0000);
    assert_eq!(d[4].unwrap().base, 0x8_0000_0000);
    // An I/O BAR past 64 Ki ports, or a BAR at 0, decodes nowhere.
    write32(&mut c, 0x10, 0xffff_ffe0);
    write32(&mut c, 0x14, 0);
    let d = c.decoded_bars();
    assert!(d[0].is_none() && d[1].is_none());
    c.write(4, &[0x2, 0]);
    assert!(c.decoded_bars()[0].is_none());
}

#[test]
fn a_64_bit_bar_moves_only_once_both_halves_are_written() {
    let mut c = endpoint();
    c.set_bar_address(4, 0x1_0000_0000);
    c.write(4, &[0x2, 0]);
    let at = |c: &ConfigSpace| c.decoded_bars()[4].map(|m| m.base);
    assert_eq!(at(&c), Some(0x1_0000_0000));
    // Low half first: still at the old place, never at 0x1_e000_0000.
    write32(&mut c, 0x20, 0xe000_0000);
    assert_eq!(at(&c), Some(0x1_0000_0000));
    write32(&mut c, 0x24, 0x2);
    assert_eq!(at(&c), Some(0x2_e000_0000));
    // High half first works the same.
    write32(&mut c, 0x24, 0x3);
    assert_eq!(at(&c), Some(0x2_e000_0000));
    write32(&mut c, 0x20, 0x1000_0000);
    assert_eq!(at(&c), Some(0x3_1000_0000));
    // Sizing with decode on (which drivers should not do): each half
    // written with all ones and restored never moves it.
    for r in [0x20u16, 0x24] {
        let old = c.read_u32(r);
        write32(&mut c, r, u32::MAX);
        assert_eq!(at(&c), Some(0x3_1000_0000));
        write32(&mut c, r, old);
        assert_eq!(at(&c), Some(0x3_1000_0000));
    }
    // A half-written BAR takes its registers' value when decode toggles.
    write32(&mut c, 0x20, 0x2000_0000);
    c.write(4, &[0, 0]);
    c.write(4, &[0x2, 0]);
    assert_eq!(at(&c), Some(0x3_2000_0000));
}

#[test]
fn bridges_forward_what_their_windows_say() {
    let ids = crate::bridge::ROOT_PORT_IDS;
    let mut b = ConfigSpace::bridge(&ids, true);
    assert_eq!(b.read_u8(0x0e), 1);
    assert_eq!(b.bridge_windows(), BridgeWindows::default());
    b.write(0x18, &[0, 1, 1, 0]);
    assert_eq!(b.bus_numbers(), (1, 1));
    b.write(0x1c, &[0x10, 0x10]);
    b.write(0x20, &0xc000u16.to_le_bytes());
    b.write(0x22, &0xc010u16.to_le_bytes());
    b.write(0x24, &0x0001u16.to_le_bytes());
    b.write(0x26, &0x0011u16.to_le_bytes());
    write32(&mut b, 0x28, 0x10);
    write32(&mut b, 0x2c, 0x10);
    assert_eq!(b.bridge_windows(), BridgeWindows::default(), "decode off");
    b.write(4, &[0x3, 0]);
    let w = b.bridge_windows();
    assert_eq!(w.io, Some((0x1000, 0x1fff)));
    assert_eq!(w.memory, Some((0xc000_0000, 0xc01f_ffff)));
    assert_eq!(w.prefetchable, Some((0x10_0000_0000, 0x10_001f_ffff)));
    assert_eq!(b.read_u16(0x24) & 0xf, 1, "64-bit prefetchable window");
}

#[test]
fn capabilities_chain_newest_first() {
    let mut c = ConfigSpace::endpoint(&IDS, false);
    let a = c.add_capability(0x09, 16);
    let b = c.add_capability(0x11, 12);
    assert_eq!((a, b), (0x40, 0x50));
    assert_eq!(c.read_u8(0x34), 0x50);
    assert_eq!(c.read_u16(0x50), 0x4011);
    assert_eq!(c.read_u16(0x40), 0x0009, "end of list");
    assert_ne!(c.read_u16(6) & status::CAP_LIST, 0);
}

proptest! {
    /// Whatever the guest writes, the identity, the BARs' flag bits and
    /// the capability list stay as the device declared them, and a
    /// decoded BAR is always inside its limits.
    #[test]
    fn random_writes_keep_read_only_state(writes in proptest::collection::vec((0u16..0x140, proptest::collection::vec(any::<u8>(), 1..5)), 0..200)) {
        let mut c = endpoint();
        c.add_capability(0x09, 16);
        let before: Vec<u32> = [0u16, 8, 0x2c, 0x34].iter().map(|&o| c.read_u32(o)).collect();
        for (o, data) in &writes {
            c.write(*o, data);
        }
        let after: Vec<u32> = [0u16, 8, 0x2c, 0x34].iter().map(|&o| c.read_u32(o)).collect();
        prop_assert_eq!(before, after);
        prop_assert_eq!(c.read_u32(0x10) & 3, 1);
        prop_assert_eq!(c.read_u32(0x20) & 0xf, 0xc);
        prop_assert_eq!(c.read_u16(0x40), 0x0009);
        for m in c.decoded_bars().iter().flatten() {
            prop_assert!(m.base != 0 && m.base.checked_add(m.size).is_some());
            prop_assert!(m.base % m.size == 0);
        }
    }
}

#[test]
fn capabilities_at_fixed_offsets_head_the_list_and_push_later_ones_past() {
    let mut c = ConfigSpace::endpoint(&IDS, false);
    assert_eq!(c.add_capability_at(0xa8, 0x12, 8), 0xa8);
    assert_eq!(c.add_capability_at(0x80, 0x05, 14), 0x80);
    // The list: 0x80 -> 0xa8 -> end, as QEMU's ich9-ahci.
    assert_eq!(c.read_u8(reg::CAPABILITY_LIST), 0x80);
    assert_eq!(c.read_u16(0x80), 0xa805);
    assert_eq!(c.read_u16(0xa8), 0x0012);
    assert_ne!(c.read_u16(reg::STATUS) & status::CAP_LIST, 0);
    assert_eq!(c.add_capability(0x09, 4), 0xb0);
}
