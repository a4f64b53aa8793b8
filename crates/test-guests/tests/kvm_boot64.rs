//! Boots the 64-bit-entry guests (`elf64`, `bzimage`) on a bare KVM vCPU
//! set up as the Linux 64-bit boot protocol says (long mode, identity map
//! of the first GiB, `__BOOT_CS` 0x10 / `__BOOT_DS` 0x18, RSI = boot_params).
//! QEMU cannot load a plain ELF64 and enters a bzImage through its real-mode
//! setup, so this is the reference for these two entry paths. There are no
//! ACPI tables here: the guests end with `POWEROFF FAILED` and `hlt`.

use std::fs::File;
use std::time::Duration;

use kvm_bindings::{kvm_segment, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuExit};
use linux_loader::loader::elf::Elf;
use linux_loader::loader::{BzImage, KernelLoader};
use rvirt_test_guests::{fnv1a32, output, Format, Guest};
use rvirt_testkit::within;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const MEM_SIZE: u64 = 64 << 20;
const GDT: u64 = 0x500;
const BOOT_PARAMS: u64 = 0x7000;
const PML4: u64 = 0x9000;
const PDPT: u64 = 0xa000;
const PD: u64 = 0xb000;
const CMDLINE: u64 = 0x2_0000;
const INITRD: u64 = 0x80_0000;
const E820: [(u64, u64, u32); 2] = [(0, 0x9_fc00, 1), (0x10_0000, MEM_SIZE - 0x10_0000, 1)];

/// Loads `guest`, fills in boot_params, runs the vCPU until `hlt`, returns COM1's output.
fn boot(kvm: &Kvm, guest: Guest, cmdline: &str, initrd: &[u8]) -> String {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap();
    let himem = Some(GuestAddress(0x10_0000));
    let mut file = File::open(guest.path()).unwrap();
    let mut bp = vec![0u8; 4096];
    let entry = if guest.format() == Format::BzImage {
        let loaded = BzImage::load(&mem, None, &mut file, himem).unwrap();
        // As a VMM does: the image's setup header goes into boot_params as is.
        let image = std::fs::read(guest.path()).unwrap();
        bp[0x1f1..0x268].copy_from_slice(&image[0x1f1..0x268]);
        loaded.kernel_load.0 + 0x200
    } else {
        let loaded = Elf::load(&mem, None, &mut file, himem).unwrap();
        bp[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        bp[0x202..0x206].copy_from_slice(b"HdrS");
        loaded.kernel_load.0
    };
    bp[0x210] = 0xff; // type_of_loader: undefined
    bp[0x228..0x22c].copy_from_slice(&(CMDLINE as u32).to_le_bytes());
    bp[0x218..0x21c].copy_from_slice(&(INITRD as u32).to_le_bytes());
    bp[0x21c..0x220].copy_from_slice(&(initrd.len() as u32).to_le_bytes());
    bp[0x1e8] = E820.len() as u8;
    for (i, (addr, size, kind)) in E820.iter().enumerate() {
        let e = 0x2d0 + 20 * i;
        bp[e..e + 8].copy_from_slice(&addr.to_le_bytes());
        bp[e + 8..e + 16].copy_from_slice(&size.to_le_bytes());
        bp[e + 16..e + 20].copy_from_slice(&kind.to_le_bytes());
    }
    mem.write_slice(&bp, GuestAddress(BOOT_PARAMS)).unwrap();
    mem.write_slice(cmdline.as_bytes(), GuestAddress(CMDLINE))
        .unwrap();
    mem.write_slice(initrd, GuestAddress(INITRD)).unwrap();

    // Identity map of the first GiB with 2 MiB pages, and the boot GDT.
    mem.write_obj(PDPT | 3, GuestAddress(PML4)).unwrap();
    mem.write_obj(PD | 3, GuestAddress(PDPT)).unwrap();
    for i in 0..512u64 {
        mem.write_obj((i << 21) | 0x83, GuestAddress(PD + i * 8))
            .unwrap();
    }
    for (i, d) in [0u64, 0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff]
        .iter()
        .enumerate()
    {
        mem.write_obj(*d, GuestAddress(GDT + i as u64 * 8)).unwrap();
    }

    let vm = kvm.create_vm().unwrap();
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE,
        userspace_addr: mem.get_host_address(GuestAddress(0)).unwrap() as u64,
        flags: 0,
    };
    // SAFETY: the region is `mem`'s single mapping of MEM_SIZE bytes, which
    // outlives the VM (both are dropped at the end of this function, VM first).
    unsafe { vm.set_user_memory_region(region) }.unwrap();
    let mut vcpu = vm.create_vcpu(0).unwrap();
    vcpu.set_cpuid2(&kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).unwrap())
        .unwrap();
    let mut sregs = vcpu.get_sregs().unwrap();
    let code = kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: 0x10,
        type_: 0xb,
        present: 1,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    };
    let data = kvm_segment {
        selector: 0x18,
        type_: 0x3,
        l: 0,
        db: 1,
        ..code
    };
    sregs.cs = code;
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.gdt.base = GDT;
    sregs.gdt.limit = 31;
    sregs.cr3 = PML4;
    sregs.cr4 |= 0x20; // PAE
    sregs.cr0 |= 0x8000_0001; // PG | PE
    sregs.efer |= 0x500; // LME | LMA
    vcpu.set_sregs(&sregs).unwrap();
    let mut regs = vcpu.get_regs().unwrap();
    regs.rip = entry;
    regs.rsi = BOOT_PARAMS;
    regs.rflags = 2;
    vcpu.set_regs(&regs).unwrap();

    let mut com1 = Vec::new();
    let mut dlab = false; // while LCR bit 7 is set, 0x3f8 is the divisor latch
    for _ in 0..1_000_000 {
        match vcpu.run().unwrap() {
            VcpuExit::IoOut(0x3fb, data) => dlab = data[0] & 0x80 != 0,
            VcpuExit::IoOut(0x3f8, data) if !dlab => com1.extend_from_slice(data),
            VcpuExit::IoOut(..) => {}
            // LSR: transmitter empty; everything else reads as nothing there.
            VcpuExit::IoIn(port, data) => data.fill(if port == 0x3fd { 0x60 } else { 0xff }),
            VcpuExit::MmioRead(_, data) => data.fill(0xff),
            VcpuExit::MmioWrite(..) => {}
            VcpuExit::Hlt => return String::from_utf8_lossy(&com1).into_owned(),
            other => panic!(
                "{}: unexpected exit {other:?}; output so far:\n{}",
                guest.name(),
                String::from_utf8_lossy(&com1)
            ),
        }
    }
    panic!(
        "{}: did not halt; output:\n{}",
        guest.name(),
        String::from_utf8_lossy(&com1)
    );
}

#[test]
fn guests_with_a_64_bit_entry_report_what_the_protocol_hands_them() {
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("no /dev/kvm: not run");
        return;
    }
    let initrd: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    for guest in [Guest::Elf64, Guest::BzImage] {
        let cmdline = format!("console=ttyS0 guest={}  end", guest.name());
        // A guest that spins without an exit would keep KVM_RUN from
        // returning: the boot runs on a thread of its own, under a limit.
        let out = {
            let (cmdline, initrd) = (cmdline.clone(), initrd.clone());
            within(
                &format!("{} to halt", guest.name()),
                Duration::from_secs(60),
                move || boot(&Kvm::new().unwrap(), guest, &cmdline, &initrd),
            )
        };
        let num = |key| {
            output::number_of(&out, key)
                .unwrap_or_else(|| panic!("{}: no {key} in:\n{out}", guest.name()))
        };
        assert_eq!(num("LONG_MODE"), 1, "{out}");
        assert_eq!(num("PAGING"), 1, "{out}");
        assert_eq!(
            (num("BOOT_CS"), num("BOOT_DS"), num("BOOT_SS")),
            (0x10, 0x18, 0x18),
            "{out}"
        );
        assert_eq!(num("BOOT_IF"), 0, "{out}");
        assert_eq!(num("BOOT_CR3"), PML4, "{out}");
        assert_eq!(num("BOOT_PARAMS"), BOOT_PARAMS, "{out}");
        assert_eq!(num("BOOT_FLAG"), 0xaa55, "{out}");
        assert_eq!(num("HDR_MAGIC"), 0x5372_6448, "{out}");
        assert_eq!(num("TYPE_OF_LOADER"), 0xff, "{out}");
        let e820: Vec<Vec<u64>> = E820
            .iter()
            .map(|&(a, s, t)| vec![a, s, u64::from(t)])
            .collect();
        assert_eq!(output::rows(&out, "E820"), e820, "{out}");
        assert_eq!(num("RAM_BYTES"), MEM_SIZE - 0x10_0000 + 0x9_fc00, "{out}");
        assert_eq!(
            output::value(&out, "CMDLINE"),
            Some(cmdline.as_str()),
            "{out}"
        );
        assert_eq!(num("RAMDISK_IMAGE"), INITRD, "{out}");
        assert_eq!(num("RAMDISK_SIZE"), initrd.len() as u64, "{out}");
        assert_eq!(num("RAMDISK_FNV1A32"), u64::from(fnv1a32(&initrd)), "{out}");
        if guest == Guest::BzImage {
            assert_eq!(output::value(&out, "HDR_CHECK"), Some("ok"), "{out}");
            assert_eq!(num("HDR_VERSION"), 0x020c, "{out}");
        }
        assert!(output::done(&out), "{out}");
        assert!(
            out.trim_end()
                .ends_with("POWEROFF FAILED no FADT or \\_S5_ (fadt=0x0 s5=-1)"),
            "{out}"
        );
    }
}
