//! Initial vCPU state for each boot protocol: segments, control registers,
//! page tables, FPU, MSRs and the local APIC's LINT pins.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::layout::*;

/// Errors setting up a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    #[error("failed to write boot structures to guest memory")]
    Memory(#[source] vm_memory::GuestMemoryError),
    #[error("failed to set vCPU {what}")]
    Kvm {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("failed to build the MSR list")]
    Msrs,
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> RegsError {
    move |source| RegsError::Kvm { what, source }
}

/// The CPU mode the boot entry point expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// 32-bit protected mode, paging off (PVH): EBX = hvm_start_info.
    Protected32,
    /// 64-bit long mode with identity paging (Linux 64-bit boot protocol):
    /// RSI = boot_params.
    Long64,
}

// GDT access/flags words (bits 40..55 of a descriptor).
const CODE64: u16 = 0xa09b; // G, L, P, S, execute/read, accessed
const CODE32: u16 = 0xc09b; // G, D/B, P, S, execute/read, accessed
const DATA: u16 = 0xc093; // G, D/B, P, S, read/write, accessed
const TSS: u16 = 0x808b; // G, P, 32-bit busy TSS

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Encodes a GDT descriptor.
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (base, limit, flags) = (u64::from(base), u64::from(limit), u64::from(flags));
    ((base & 0xff00_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
        | ((limit & 0xf_0000) << 32)
        | ((flags & 0xf0ff) << 40)
}

/// Decodes a GDT descriptor into the segment KVM loads.
fn segment(entry: u64, index: u16) -> kvm_segment {
    let bit = |n: u32| ((entry >> n) & 1) as u8;
    let g = bit(55);
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: bit(47),
        dpl: ((entry >> 45) & 3) as u8,
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g,
        avl: bit(52),
        unusable: 0,
        padding: 0,
    }
}

/// The GDT for an entry mode: null, code, data, TSS.
pub fn gdt(mode: EntryMode) -> [u64; 4] {
    let code = match mode {
        EntryMode::Protected32 => CODE32,
        EntryMode::Long64 => CODE64,
    };
    [
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(DATA, 0, 0xfffff),
        gdt_entry(TSS, 0, 0xfffff),
    ]
}

/// Writes the identity page tables for the first 1 GiB (2 MiB pages), enough
/// for a kernel, its zero page and its command line.
pub fn write_page_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    let w = |addr: u64, v: u64| {
        mem.write_obj(v, GuestAddress(addr))
            .map_err(RegsError::Memory)
    };
    w(PML4_START, PDPTE_START | 0x03)?;
    w(PDPTE_START, PDE_START | 0x03)?;
    for i in 0..512u64 {
        // Present, writable, 2 MiB page.
        w(PDE_START + i * 8, (i << 21) | 0x83)?;
    }
    Ok(())
}

/// The special registers for `mode`, given the vCPU's current ones.
pub fn boot_sregs(mut sregs: kvm_sregs, mode: EntryMode) -> kvm_sregs {
    let table = gdt(mode);
    let code = segment(table[1], 1);
    let data = segment(table[2], 2);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(table[3], 3);
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&table) - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    match mode {
        EntryMode::Protected32 => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        EntryMode::Long64 => {
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.cr3 = PML4_START;
            sregs.cr4 = CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
    }
    sregs
}

/// The general registers at the entry point.
pub fn boot_regs(mode: EntryMode, entry: u64) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry,
        ..Default::default()
    };
    match mode {
        EntryMode::Protected32 => regs.rbx = PVH_START_INFO,
        EntryMode::Long64 => {
            regs.rsp = BOOT_STACK;
            regs.rbp = BOOT_STACK;
            regs.rsi = ZERO_PAGE;
        }
    }
    regs
}

/// Writes the GDT and IDT and loads the boot state into the boot vCPU.
pub fn setup_boot_vcpu(
    vcpu: &VcpuFd,
    mem: &GuestMemoryMmap,
    mode: EntryMode,
    entry: u64,
) -> Result<(), RegsError> {
    for (i, e) in gdt(mode).iter().enumerate() {
        mem.write_obj(*e, GuestAddress(GDT_START + 8 * i as u64))
            .map_err(RegsError::Memory)?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))
        .map_err(RegsError::Memory)?;
    if mode == EntryMode::Long64 {
        write_page_tables(mem)?;
    }
    let sregs = vcpu.get_sregs().map_err(kvm("special registers"))?;
    vcpu.set_sregs(&boot_sregs(sregs, mode))
        .map_err(kvm("special registers"))?;
    vcpu.set_regs(&boot_regs(mode, entry))
        .map_err(kvm("registers"))?;
    Ok(())
}

// MSRs Linux expects in a defined state at boot.
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRs enabled, write-back default memory type.
const MTRR_DEF_ENABLE_WB: u64 = (1 << 11) | 6;

/// FPU, MSRs and LAPIC LINT pins for every vCPU (boot CPU and APs).
pub fn setup_common(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm("FPU"))?;

    let entries: Vec<kvm_msr_entry> = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_DEF_ENABLE_WB),
    ]
    .iter()
    .map(|&(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect();
    let msrs = Msrs::from_entries(&entries).map_err(|_| RegsError::Msrs)?;
    let set = vcpu.set_msrs(&msrs).map_err(kvm("MSRs"))?;
    if set != entries.len() {
        // KVM stops at the first MSR it refuses; the rest keep their reset
        // values, which Linux tolerates. Say which one.
        tracing::warn!(
            "KVM refused MSR {:#x}; later boot MSRs keep their reset values",
            entries[set].index
        );
    }

    // LINT0 delivers the PIC's ExtINT, LINT1 NMI, as firmware sets them up.
    let mut lapic = vcpu.get_lapic().map_err(kvm("local APIC"))?;
    set_lvt(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
    set_lvt(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(kvm("local APIC"))?;
    Ok(())
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// The LVT register at `offset` of a local APIC's register page.
fn lvt(regs: &[std::os::raw::c_char; 1024], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    for (i, x) in b.iter_mut().enumerate() {
        *x = regs[offset + i] as u8;
    }
    u32::from_le_bytes(b)
}

/// Whether an NMI on the LINT1 pin reaches the CPU: LINT1 unmasked, in
/// NMI delivery mode. QEMU injects an external NMI (`inject-nmi`, the
/// watchdog's inject-nmi action) only then (hw/i386/kvm/apic.c).
pub(crate) fn lint1_takes_nmi(lapic: &kvm_bindings::kvm_lapic_state) -> bool {
    const MASKED: u32 = 1 << 16;
    let v = lvt(&lapic.regs, APIC_LVT1);
    v & MASKED == 0 && (v >> 8) & 7 == APIC_MODE_NMI
}

fn set_lvt(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let v = (lvt(regs, offset) & !0x700) | (mode << 8);
    for (i, x) in v.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *x as std::os::raw::c_char;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint1_takes_an_nmi_only_unmasked_in_nmi_mode() {
        let mut lapic = kvm_bindings::kvm_lapic_state::default();
        let mut put = |v: u32| {
            for (i, b) in v.to_le_bytes().iter().enumerate() {
                lapic.regs[APIC_LVT1 + i] = *b as std::os::raw::c_char;
            }
            lint1_takes_nmi(&lapic)
        };
        // Reset (masked), as firmware and Linux set it, masked again,
        // ExtINT, fixed.
        assert!(!put(0x0001_0000));
        assert!(put(0x0000_0400));
        assert!(!put(0x0001_0400));
        assert!(!put(0x0000_0700));
        assert!(!put(0x0000_0000));
    }

    #[test]
    fn gdt_entries_match_the_architecture() {
        // Flat 64-bit code: the descriptor Linux's own GDT uses.
        assert_eq!(gdt_entry(CODE64, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(CODE32, 0, 0xfffff), 0x00cf_9b00_0000_ffff);
        assert_eq!(gdt_entry(DATA, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        let s = segment(gdt_entry(CODE64, 0, 0xfffff), 1);
        assert_eq!(
            (s.selector, s.type_, s.l, s.db, s.g, s.present, s.s),
            (8, 0xb, 1, 0, 1, 1, 1)
        );
        assert_eq!(s.limit, 0xffff_ffff);
        let d = segment(gdt_entry(DATA, 0, 0xfffff), 2);
        assert_eq!((d.selector, d.type_, d.db, d.l), (0x10, 3, 1, 0));
    }

    #[test]
    fn pvh_state_follows_the_pvh_spec() {
        let s = boot_sregs(kvm_sregs::default(), EntryMode::Protected32);
        assert_eq!(
            s.cr0 & (CR0_PE | CR0_PG),
            CR0_PE,
            "protected mode, paging off"
        );
        assert_eq!(
            (s.cs.db, s.cs.l, s.cs.base, s.cs.limit),
            (1, 0, 0, 0xffff_ffff)
        );
        assert_eq!(s.efer, 0);
        let r = boot_regs(EntryMode::Protected32, 0x100_0000);
        assert_eq!((r.rip, r.rbx, r.rflags), (0x100_0000, PVH_START_INFO, 2));
    }

    #[test]
    fn long_mode_state_follows_the_boot_protocol() {
        let s = boot_sregs(kvm_sregs::default(), EntryMode::Long64);
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(
            (s.cr3, s.cr4 & CR4_PAE, s.efer),
            (PML4_START, CR4_PAE, EFER_LME | EFER_LMA)
        );
        assert_eq!((s.cs.l, s.cs.db, s.ds.selector), (1, 0, 0x10));
        let r = boot_regs(EntryMode::Long64, 0x20_0000);
        assert_eq!((r.rsi, r.rsp), (ZERO_PAGE, BOOT_STACK));
    }

    #[test]
    fn page_tables_identity_map_the_first_gigabyte() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_page_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        let pdpte: u64 = mem.read_obj(GuestAddress(PDPTE_START)).unwrap();
        let last: u64 = mem.read_obj(GuestAddress(PDE_START + 511 * 8)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        assert_eq!(pdpte, PDE_START | 3);
        assert_eq!(last, (511 << 21) | 0x83);
    }
}
