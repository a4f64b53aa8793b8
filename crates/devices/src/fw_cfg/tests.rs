//! fw_cfg against QEMU's `docs/specs/fw_cfg.txt`.

use std::collections::BTreeMap;

use super::loader::{self, Command, LoaderError, Zone};
use super::*;

const RAM: u64 = 0x10_0000;

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)]).unwrap()
}

fn device() -> FwCfg {
    let mut b = FwCfgBuilder::new();
    b.legacy(keys::NB_CPUS, 2u16.to_le_bytes().to_vec());
    b.file("etc/zeta", b"last".to_vec()).unwrap();
    b.file("bootorder", b"/disk@0\n".to_vec()).unwrap();
    b.file("etc/alpha", (0..=255u8).collect()).unwrap();
    b.build(memory())
}

fn select(d: &mut FwCfg, key: u16) {
    d.write(OFF_SELECTOR, &key.to_le_bytes());
}

fn read_port(d: &mut FwCfg, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let mut b = [0u8];
            d.read(OFF_DATA, &mut b);
            b[0]
        })
        .collect()
}

/// Writes a descriptor at `at` and starts it the way SeaBIOS does (the
/// low half of the address, big-endian, at 0x518); returns the control
/// word written back.
fn dma(d: &mut FwCfg, at: u64, control: u32, length: u32, address: u64) -> u32 {
    let mut desc = Vec::new();
    desc.extend_from_slice(&control.to_be_bytes());
    desc.extend_from_slice(&length.to_be_bytes());
    desc.extend_from_slice(&address.to_be_bytes());
    d.memory.write_slice(&desc, GuestAddress(at)).unwrap();
    d.write(OFF_DMA_HIGH, &((at >> 32) as u32).to_be_bytes());
    d.write(OFF_DMA_LOW, &(at as u32).to_be_bytes());
    let mut c = [0u8; 4];
    d.memory.read_slice(&mut c, GuestAddress(at)).unwrap();
    u32::from_be_bytes(c)
}

fn guest(d: &FwCfg, at: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    d.memory.read_slice(&mut v, GuestAddress(at)).unwrap();
    v
}

#[test]
fn signature_and_id_through_the_ports() {
    let mut d = device();
    select(&mut d, keys::SIGNATURE);
    assert_eq!(read_port(&mut d, 4), b"QEMU");
    // Past the end: zeros.
    assert_eq!(read_port(&mut d, 2), [0, 0]);
    select(&mut d, keys::ID);
    let id = u32::from_le_bytes(read_port(&mut d, 4).try_into().unwrap());
    assert_eq!(id, ID_TRADITIONAL | ID_DMA);
    // The selector port reads data too (QEMU's combined region).
    select(&mut d, keys::SIGNATURE);
    let mut b = [0u8];
    d.read(OFF_SELECTOR, &mut b);
    assert_eq!(b[0], b'Q');
}

#[test]
fn dma_register_reads_its_signature() {
    let mut d = device();
    let mut hi = [0u8; 4];
    let mut lo = [0u8; 4];
    d.read(OFF_DMA_HIGH, &mut hi);
    d.read(OFF_DMA_LOW, &mut lo);
    assert_eq!(&hi, b"QEMU");
    assert_eq!(&lo, b" CFG");
}

#[test]
fn file_directory_is_sorted_by_name_with_keys_in_order() {
    let mut d = device();
    select(&mut d, keys::FILE_DIR);
    let count = u32::from_be_bytes(read_port(&mut d, 4).try_into().unwrap());
    assert_eq!(count, 3);
    let mut seen = Vec::new();
    for _ in 0..count {
        let e = read_port(&mut d, 64);
        let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
        let key = u16::from_be_bytes([e[4], e[5]]);
        let name: Vec<u8> = e[8..].iter().copied().take_while(|&b| b != 0).collect();
        seen.push((String::from_utf8(name).unwrap(), key, size));
    }
    assert_eq!(
        seen,
        [
            ("bootorder".to_string(), 0x20, 8),
            ("etc/alpha".to_string(), 0x21, 256),
            ("etc/zeta".to_string(), 0x22, 4),
        ]
    );
    select(&mut d, 0x22);
    assert_eq!(read_port(&mut d, 4), b"last");
}

#[test]
fn dma_select_read_and_skip() {
    let mut d = device();
    let key = 0x21u32; // etc/alpha
    let c = dma(
        &mut d,
        0x1000,
        (key << 16) | dma::SELECT | dma::READ,
        16,
        0x2000,
    );
    assert_eq!(c, 0);
    assert_eq!(guest(&d, 0x2000, 16), (0..16).collect::<Vec<u8>>());
    // A skip moves the offset; the next read continues from there.
    assert_eq!(dma(&mut d, 0x1000, dma::SKIP, 100, 0), 0);
    assert_eq!(dma(&mut d, 0x1000, dma::READ, 4, 0x3000), 0);
    assert_eq!(guest(&d, 0x3000, 4), [116, 117, 118, 119]);
    // The port interface shares the cursor.
    assert_eq!(read_port(&mut d, 1), [120]);
}

#[test]
fn dma_read_past_the_end_fills_zeros() {
    let mut d = device();
    d.memory
        .write_slice(&[0xaa; 16], GuestAddress(0x4000))
        .unwrap();
    let c = dma(
        &mut d,
        0x1000,
        (0x22 << 16) | dma::SELECT | dma::READ,
        16,
        0x4000,
    );
    assert_eq!(c, 0);
    let mut want = b"last".to_vec();
    want.resize(16, 0);
    assert_eq!(guest(&d, 0x4000, 16), want);
}

#[test]
fn dma_of_an_unknown_key_reads_zeros() {
    let mut d = device();
    d.memory
        .write_slice(&[0xaa; 8], GuestAddress(0x4000))
        .unwrap();
    let c = dma(
        &mut d,
        0x1000,
        (0x3fff << 16) | dma::SELECT | dma::READ,
        8,
        0x4000,
    );
    assert_eq!(c, 0);
    assert_eq!(guest(&d, 0x4000, 8), [0; 8]);
    select(&mut d, 0x1234);
    assert_eq!(read_port(&mut d, 3), [0, 0, 0]);
}

#[test]
fn writes_set_the_error_bit_and_change_nothing() {
    let mut d = device();
    d.memory.write_slice(b"XXXX", GuestAddress(0x4000)).unwrap();
    let c = dma(
        &mut d,
        0x1000,
        (0x22 << 16) | dma::SELECT | dma::WRITE,
        4,
        0x4000,
    );
    assert_eq!(c, dma::ERROR);
    select(&mut d, 0x22);
    assert_eq!(read_port(&mut d, 4), b"last");
    // A write through the data port is ignored.
    select(&mut d, 0x22);
    d.write(OFF_DATA, b"Y");
    assert_eq!(read_port(&mut d, 4), b"last");
    // The legacy write bit in a selector selects the item, read-only.
    select(&mut d, 0x4000 | 0x22);
    assert_eq!(read_port(&mut d, 4), b"last");
    assert_eq!(d.dma_errors(), 1);
}

#[test]
fn buffers_outside_ram_set_the_error_bit() {
    let mut d = device();
    let c = dma(
        &mut d,
        0x1000,
        (0x21 << 16) | dma::SELECT | dma::READ,
        16,
        RAM - 8,
    );
    assert_eq!(c, dma::ERROR);
    // An address that wraps around.
    let c = dma(
        &mut d,
        0x1000,
        (0x21 << 16) | dma::SELECT | dma::READ,
        16,
        u64::MAX - 4,
    );
    assert_eq!(c, dma::ERROR);
    // A huge length past the end runs into the end of RAM and stops there.
    let c = dma(
        &mut d,
        0x1000,
        (0x22 << 16) | dma::SELECT | dma::READ,
        u32::MAX,
        0x8000,
    );
    assert_eq!(c, dma::ERROR);
}

#[test]
fn zero_length_and_no_operation_complete_at_once() {
    let mut d = device();
    assert_eq!(dma(&mut d, 0x1000, dma::READ, 0, 0), 0);
    assert_eq!(dma(&mut d, 0x1000, 0, 100, 0), 0);
    // A huge skip moves past the end without touching memory.
    assert_eq!(
        dma(
            &mut d,
            0x1000,
            (0x21 << 16) | dma::SELECT | dma::SKIP,
            u32::MAX,
            0
        ),
        0
    );
}

#[test]
fn descriptors_outside_ram_are_dropped() {
    let mut d = device();
    // Nothing to write the status to: nothing happens, nothing panics.
    d.write(OFF_DMA_HIGH, &0xffff_ffffu32.to_be_bytes());
    d.write(OFF_DMA_LOW, &0xffff_fff8u32.to_be_bytes());
    d.write(OFF_DMA_HIGH, &[0xff; 8]);
    d.write(OFF_DMA_LOW, &((RAM - 8) as u32).to_be_bytes());
    assert_eq!(d.dma_errors(), 3);
    // Odd sizes and offsets are ignored.
    d.write(3, &[1, 2, 3]);
    d.write(OFF_DMA_LOW, &[1, 2]);
    let mut b = [0u8; 2];
    d.read(2, &mut b);
    assert_eq!(b, [0, 0]);
}

#[test]
fn names_must_fit_the_directory() {
    let mut b = FwCfgBuilder::new();
    assert!(b.file(&"x".repeat(55), vec![]).is_ok());
    assert_eq!(
        b.file(&"x".repeat(56), vec![]).unwrap_err(),
        FwCfgError::BadName("x".repeat(56))
    );
    assert!(b.file("", vec![]).is_err());
    assert!(b.file("opt/a", vec![]).is_ok());
    assert_eq!(
        b.file("opt/a", vec![]).unwrap_err(),
        FwCfgError::Duplicate("opt/a".into())
    );
    assert_eq!(b.file_key("opt/a"), Some(0x20), "opt/a sorts before xxx…");
    assert_eq!(b.file_key(&"x".repeat(55)), Some(0x21));
}

#[test]
fn e820_entries_are_packed_little_endian() {
    let e = e820_entry(0x10_0000, 0x200, 1);
    assert_eq!(&e[0..8], &0x10_0000u64.to_le_bytes());
    assert_eq!(&e[8..16], &0x200u64.to_le_bytes());
    assert_eq!(&e[16..20], &1u32.to_le_bytes());
}

#[test]
fn loader_commands_link_and_checksum_as_seabios_does() {
    // A "table" whose byte 1 is a checksum over bytes 0..12 and whose
    // bytes 4..8 point at the start of the other file.
    let mut table = vec![0x11, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0];
    let sum = table.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    table[1] = 0u8.wrapping_sub(sum);
    let files = BTreeMap::from([("t".to_string(), table), ("rsdp".to_string(), vec![0u8; 8])]);
    let commands = [
        Command::Allocate {
            file: "t".into(),
            align: 64,
            zone: Zone::High,
        },
        Command::Allocate {
            file: "rsdp".into(),
            align: 16,
            zone: Zone::FSeg,
        },
        Command::AddPointer {
            dest: "t".into(),
            src: "rsdp".into(),
            offset: 4,
            size: 4,
        },
        Command::AddChecksum {
            file: "t".into(),
            offset: 1,
            start: 0,
            length: 12,
        },
    ];
    let stream = loader::encode(&commands);
    assert_eq!(stream.len(), 4 * loader::ENTRY_LEN);
    let placed = loader::execute(&stream, &files, |zone, _, align| {
        Some(match zone {
            Zone::High => 0x7ff_0000,
            Zone::FSeg => 0xf_5000 + align,
        })
    })
    .unwrap();
    let t = &placed["t"];
    assert_eq!(t.address, 0x7ff_0000);
    let ptr = u32::from_le_bytes(t.bytes[4..8].try_into().unwrap());
    assert_eq!(ptr, 0xf_5010 + 0x10);
    assert_eq!(t.bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
}

#[test]
fn loader_refuses_what_seabios_refuses() {
    let files = BTreeMap::from([("t".to_string(), vec![0u8; 8])]);
    let alloc = |_, _, _| Some(0x1000);
    let run = |c: &[Command]| loader::execute(&loader::encode(c), &files, alloc);
    let a = Command::Allocate {
        file: "t".into(),
        align: 16,
        zone: Zone::High,
    };
    let p = |offset, size| Command::AddPointer {
        dest: "t".into(),
        src: "t".into(),
        offset,
        size,
    };
    assert_eq!(run(&[p(0, 4)]), Err(LoaderError::NoFile(0)));
    assert_eq!(run(&[a.clone(), p(6, 4)]), Err(LoaderError::Bounds(1)));
    assert_eq!(run(&[a.clone(), p(0, 3)]), Err(LoaderError::Bad(1)));
    assert_eq!(
        run(&[a.clone(), p(u32::MAX, 8)]),
        Err(LoaderError::Bounds(1))
    );
    let c = Command::AddChecksum {
        file: "t".into(),
        offset: 0,
        start: 4,
        length: u32::MAX,
    };
    assert_eq!(run(&[a.clone(), c]), Err(LoaderError::Bounds(1)));
    assert_eq!(
        loader::execute(&[0u8; 100], &files, alloc),
        Err(LoaderError::Truncated)
    );
    // Unknown commands are skipped.
    assert!(loader::execute(&[0x7fu8; 128], &files, alloc).is_ok());
}

/// Files remade on firmware's first selection of one of them (QEMU's
/// `acpi_build_update`): once, only on a listed file, by port or DMA, and
/// never at another size than the directory announced.
#[test]
fn refreshed_files_are_remade_once_on_first_select() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut d = device();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    d.refresh_on_first_select(
        &["etc/zeta", "bootorder"],
        Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            vec![
                ("etc/zeta".into(), b"LAST".to_vec()),
                ("bootorder".into(), b"/other-size\n".to_vec()),
                ("etc/nonesuch".into(), b"x".to_vec()),
            ]
        }),
    );
    // The directory and an unlisted file do not trigger it.
    select(&mut d, keys::FILE_DIR);
    select(&mut d, keys::FILE_FIRST + 1);
    assert_eq!(read_port(&mut d, 2), [0, 1]);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // bootorder by DMA: remade, but its new size is refused.
    let status = dma(
        &mut d,
        0x1000,
        (u32::from(keys::FILE_FIRST) << 16) | dma::SELECT | dma::READ,
        8,
        0x2000,
    );
    assert_eq!(status, 0);
    assert_eq!(guest(&d, 0x2000, 8), b"/disk@0\n");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    select(&mut d, keys::FILE_FIRST + 2);
    assert_eq!(read_port(&mut d, 4), b"LAST");
    select(&mut d, keys::FILE_FIRST + 2);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "remade once");
}
