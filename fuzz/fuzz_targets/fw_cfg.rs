//! fw_cfg as a guest drives it: a stream of port reads and writes of any
//! size at any offset of its 12 ports, with DMA descriptors (read, skip,
//! select, write, any length and address) taken from guest RAM that the
//! input also fills; then the table-loader interpreter over the rest of the
//! input as a command stream. Nothing may panic or hang; items never
//! change (the signature still reads "QEMU").
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rvirt_bus::BusDevice;
use rvirt_devices::fw_cfg::{self, loader, FwCfgBuilder};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const RAM: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let (ram_bytes, ops) = data.split_at(data.len().min(RAM / 4));
    let memory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    memory.write_slice(ram_bytes, GuestAddress(0)).unwrap();
    let mut b = FwCfgBuilder::new();
    b.file("etc/a", vec![7u8; 300]).unwrap();
    b.file("opt/b", b"hello".to_vec()).unwrap();
    let mut dev = b.build(memory);

    let mut ops = ops.chunks_exact(7);
    for op in ops.by_ref().take(256) {
        let offset = u64::from(op[0] % 14);
        let len = [1, 2, 4, 8][usize::from(op[1] & 3)];
        let value = &op[2..2 + len.min(5)];
        let mut buf = [0u8; 8];
        buf[..value.len()].copy_from_slice(value);
        if op[1] & 0x80 != 0 {
            dev.read(offset, &mut buf[..len]);
        } else {
            // DMA descriptors land inside RAM most of the time: the low
            // half of the address is mostly the input's.
            dev.write(offset, &buf[..len]);
        }
    }
    dev.write(0, &0u16.to_le_bytes());
    let mut sig = [0u8; 4];
    dev.read(1, &mut sig);
    assert_eq!(&sig, b"QEMU");

    let files = BTreeMap::from([
        ("etc/acpi/tables".to_string(), vec![0u8; 512]),
        ("etc/acpi/rsdp".to_string(), vec![0u8; 36]),
    ]);
    let stream = ops.remainder();
    let _ = loader::execute(data, &files, |_, size, align| {
        (size < (1 << 20) && align < (1 << 20)).then_some(0x10_0000)
    });
    let _ = loader::execute(stream, &files, |_, _, _| None);
    let _ = fw_cfg::e820_entry(0, 0, 0);
});
