//! Creating the KVM VM, its memory and its vCPUs, and loading a guest.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use rvirt_bus::Bus;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::acpi::{self, AcpiConfig};
use crate::boot::{self, BootConfig, BootError, EntryPoint};
use crate::cpuid::{self, CpuSpec, CpuidError};
use crate::firmware::{self, BiosArea, FirmwareConfig, FirmwareError};
use crate::layout::{self, Board, MemoryRange, RamLayout};
use crate::mptable;
use crate::regs::{self, RegsError};
use crate::slot::{DeviceMemory, MemorySlot, FIRST_DEVICE_SLOT};
use crate::topology::Topology;
use crate::vcpu::{VcpuEvents, Vcpus};

/// What the machine is made of.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// RAM in bytes.
    pub mem_size: u64,
    pub topology: Topology,
    /// vCPUs that exist from boot (`-smp N`): the first N of the topology.
    /// The rest of the topology (up to `maxcpus`) is room for vCPU hotplug,
    /// which is not there yet: those vCPUs are never created.
    pub boot_cpus: u32,
    pub cpu: CpuSpec,
    /// Whether the guest gets ACPI tables (the MP table is always there).
    pub acpi: bool,
    /// Boot through this firmware instead of loading a kernel.
    pub firmware: Option<FirmwareConfig>,
    /// How RAM sits around the 32-bit hole.
    pub board: Board,
}

/// What firmware is handed instead of tables in memory: the ACPI tables for
/// its table loader (none without ACPI) and the memory map.
#[derive(Debug, Clone)]
pub struct FirmwareTables {
    pub acpi: Option<acpi::LinkedTables>,
    /// What the tables were built from (APIC IDs filled in), to build them
    /// again once firmware has programmed the devices whose description
    /// reads their live state (QEMU rebuilds them when firmware first reads
    /// them).
    pub platform: Arc<AcpiConfig>,
    pub memory_map: Vec<MemoryRange>,
    /// RAM ranges (start, size): below 4 GiB from 0, and at 4 GiB.
    pub ram_ranges: Vec<(u64, u64)>,
    /// CPUID leaf 1 EAX and EDX as the vCPUs see them (SMBIOS type 4).
    pub cpuid_1: (u32, u32),
}

/// Errors building or starting a machine. Messages name the resource, so the
/// command line can prefix the option that asked for it.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("/dev/kvm does not exist: is KVM enabled on this host (modprobe kvm)?")]
    NoKvm,
    #[error("permission denied opening /dev/kvm (run as root or join the kvm group)")]
    KvmPermission,
    #[error("failed to open /dev/kvm")]
    KvmOpen(#[source] kvm_ioctls::Error),
    #[error("KVM {what} failed")]
    Kvm {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("{requested} vCPUs requested, but KVM allows at most {max}")]
    TooManyVcpus { requested: u32, max: usize },
    #[error("{size} bytes of guest memory is below the minimum of {min}")]
    TooLittleMemory { size: u64, min: u64 },
    #[error("cannot map {size} bytes of guest memory")]
    Memory {
        size: u64,
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    #[error(transparent)]
    Cpuid(#[from] CpuidError),
    #[error(transparent)]
    Regs(#[from] RegsError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error("the ACPI tables ({0} bytes) do not fit their area")]
    AcpiTooLarge(usize),
    #[error("failed to write {0} to guest memory")]
    Write(&'static str),
    #[error("failed to start vCPU thread")]
    Thread(#[source] std::io::Error),
}

/// The part of [`MachineConfig`] or [`BootConfig`] an error is about, so
/// that whoever built the configuration can name what set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigPart {
    /// KVM itself (the accelerator), or nothing the configuration chose.
    Accelerator,
    Memory,
    Cpus,
    CpuModel,
    Kernel,
    Initrd,
    Cmdline,
    Bios,
}

impl MachineError {
    /// What this error is about.
    pub fn part(&self) -> ConfigPart {
        use BootError as B;
        match self {
            MachineError::Boot(
                B::InitrdOpen { .. }
                | B::InitrdRead { .. }
                | B::InitrdTooLarge { .. }
                | B::Write("the initrd"),
            ) => ConfigPart::Initrd,
            MachineError::Boot(B::CmdlineTooLong { .. } | B::Cmdline(_)) => ConfigPart::Cmdline,
            MachineError::Boot(_) => ConfigPart::Kernel,
            MachineError::TooManyVcpus { .. } => ConfigPart::Cpus,
            MachineError::TooLittleMemory { .. } | MachineError::Memory { .. } => {
                ConfigPart::Memory
            }
            MachineError::Cpuid(_) => ConfigPart::CpuModel,
            MachineError::Firmware(_) => ConfigPart::Bios,
            _ => ConfigPart::Accelerator,
        }
    }
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> MachineError {
    move |source| MachineError::Kvm { what, source }
}

/// A VM with its memory slots, interrupt controllers and PIT, no vCPUs yet.
struct BareVm {
    vm: Arc<VmFd>,
    memory: GuestMemoryMmap,
    ram: RamLayout,
    bios: Option<Arc<BiosArea>>,
}

fn build_vm(kvm: &Kvm, cfg: &MachineConfig) -> Result<BareVm, MachineError> {
    let vm = Arc::new(kvm.create_vm().map_err(kvm_err("CREATE_VM"))?);
    let ram = RamLayout::for_board(cfg.board, cfg.mem_size);
    let memory = create_memory(&ram)?;
    let bios = match &cfg.firmware {
        Some(fw) => Some(Arc::new(BiosArea::map(vm.clone(), &memory, &ram, fw)?)),
        None => None,
    };
    for (slot, region) in memory.iter().enumerate() {
        if bios.is_some() {
            // The BIOS area mapped RAM around the legacy area itself.
            break;
        }
        let start = region.start_addr().0;
        // The VGA window (0xA0000-0xBFFFF) is not RAM, as on QEMU's pc
        // and q35: a display device (or nothing) answers there. The
        // piece above it takes the slot after the regions'. microvm has
        // RAM there, as QEMU's (`Board::vga_window`).
        let mut pieces = vec![(slot as u32, start, 0, region.len())];
        if start == 0 && region.len() > layout::VGA_WINDOW_END && cfg.board.vga_window() {
            pieces = vec![
                (slot as u32, 0, 0, layout::VGA_WINDOW_START),
                (
                    LOW_RAM_ABOVE_VGA_SLOT,
                    layout::VGA_WINDOW_END,
                    layout::VGA_WINDOW_END,
                    region.len() - layout::VGA_WINDOW_END,
                ),
            ];
        }
        for (slot, addr, offset, len) in pieces {
            let r = kvm_userspace_memory_region {
                slot,
                guest_phys_addr: addr,
                memory_size: len,
                userspace_addr: region.as_ptr() as u64 + offset,
                flags: 0,
            };
            // SAFETY: `[offset, offset + len)` lies inside the region, a
            // live mapping owned by `memory`, which outlives the VM fd
            // and every vCPU thread (the field order of `Machine`; `Vcpus`
            // holds a clone).
            unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("SET_USER_MEMORY_REGION"))?;
        }
    }
    // The interrupt controllers come after the memory: registering a
    // memory slot waits for an SRCU grace period that the irqchip and
    // PIT creation just started, which costs whole scheduler ticks
    // (measured: 4-8 ms) if done in the other order.
    vm.set_tss_address(layout::KVM_TSS as usize)
        .map_err(kvm_err("SET_TSS_ADDR"))?;
    vm.set_identity_map_address(layout::KVM_IDENTITY_MAP)
        .map_err(kvm_err("SET_IDENTITY_MAP_ADDR"))?;
    vm.create_irq_chip().map_err(kvm_err("CREATE_IRQCHIP"))?;
    // The dummy speaker lets the in-kernel PIT answer port 0x61, which
    // Linux reads while calibrating its timers.
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(kvm_err("CREATE_PIT2"))?;
    Ok(BareVm {
        vm,
        memory,
        ram,
        bios,
    })
}

/// A KVM VM with its memory and vCPUs, before and after boot.
///
/// Field order matters for drop: vCPUs, then the VM, then the memory they
/// point into.
pub struct Machine {
    vcpus: Vec<VcpuFd>,
    vm: Arc<VmFd>,
    _kvm: Kvm,
    memory: GuestMemoryMmap,
    ram: RamLayout,
    topology: Topology,
    acpi: bool,
    /// The ROM and legacy area, when booting through firmware.
    bios: Option<Arc<BiosArea>>,
    /// vCPUs created (the first ones of the topology).
    boot_cpus: u32,
    /// Run first on every vCPU thread (the VMM's seccomp filter).
    vcpu_thread_start: Option<fn()>,
    /// The next KVM slot number for device memory.
    next_slot: AtomicU32,
    /// CPUID leaf 1 EAX and EDX given to the vCPUs.
    cpuid_1: (u32, u32),
}

impl Machine {
    /// Creates the VM, its interrupt controllers, memory and vCPUs.
    pub fn new(cfg: &MachineConfig) -> Result<Self, MachineError> {
        if cfg.mem_size < layout::MIN_RAM {
            return Err(MachineError::TooLittleMemory {
                size: cfg.mem_size,
                min: layout::MIN_RAM,
            });
        }
        let kvm = Kvm::new().map_err(|e| match e.errno() {
            libc::ENOENT => MachineError::NoKvm,
            libc::EACCES | libc::EPERM => MachineError::KvmPermission,
            _ => MachineError::KvmOpen(e),
        })?;
        let ncpus = cfg.boot_cpus.clamp(1, cfg.topology.cpus());
        let max = kvm.get_max_vcpus();
        if ncpus as usize > max {
            return Err(MachineError::TooManyVcpus {
                requested: ncpus,
                max,
            });
        }
        // Resolve CPUID before creating anything, so a bad -cpu flag leaves
        // nothing behind.
        cpuid::validate(&cfg.cpu)?;
        // KVM_GET_SUPPORTED_CPUID runs the host's CPUID for every leaf, which
        // traps when the host is itself a guest (~0.5 ms of CPU here), while
        // building the VM mostly sleeps in SRCU grace periods (memory
        // slots, irqchip, PIT): one overlaps the other on a helper thread.
        // Its stack is small, as it makes one ioctl; without the thread
        // (spawning failed) the query runs here, after the VM.
        let supported_cpuid = || {
            kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
                .map_err(kvm_err("GET_SUPPORTED_CPUID"))
        };
        let (supported, built) = std::thread::scope(|s| {
            let query = std::thread::Builder::new()
                .name("cpuid".into())
                .stack_size(64 * 1024)
                .spawn_scoped(s, supported_cpuid);
            let built = build_vm(&kvm, cfg);
            let supported = match query {
                Ok(q) => q.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(_) => supported_cpuid(),
            };
            (supported, built)
        });
        let BareVm {
            vm,
            memory,
            ram,
            bios,
        } = built?;
        let supported = supported?;

        let mut vcpus = Vec::with_capacity(ncpus as usize);
        let mut cpuid_1 = (0, 0);
        for cpu in 0..ncpus {
            let fd = vm
                .create_vcpu(u64::from(cfg.topology.apic_id(cpu)))
                .map_err(kvm_err("CREATE_VCPU"))?;
            let cpuid = cpuid::build(&supported, &cfg.cpu, &cfg.topology, cpu)?;
            fd.set_cpuid2(&cpuid).map_err(kvm_err("SET_CPUID2"))?;
            if cpu == 0 {
                if let Some(e) = cpuid.as_slice().iter().find(|e| e.function == 1) {
                    cpuid_1 = (e.eax, e.edx);
                }
            }
            regs::setup_common(&fd)?;
            vcpus.push(fd);
        }
        Ok(Machine {
            vcpus,
            vm,
            _kvm: kvm,
            memory,
            ram,
            topology: cfg.topology,
            acpi: cfg.acpi,
            bios,
            boot_cpus: ncpus,
            vcpu_thread_start: None,
            next_slot: AtomicU32::new(FIRST_DEVICE_SLOT),
            cpuid_1,
        })
    }

    /// The VM fd, for irqfds, ioeventfds and interrupt lines. Devices may
    /// hold a clone to drive interrupt lines; they must be dropped with the
    /// machine.
    pub fn vm_fd(&self) -> &Arc<VmFd> {
        &self.vm
    }

    /// Guest memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// `memory` as a new memory slot of this VM (with KVM's dirty log),
    /// mapped nowhere until [`MemorySlot::place`].
    pub fn memory_slot(&self, memory: Arc<DeviceMemory>) -> MemorySlot {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        MemorySlot::new(self.vm.clone(), slot, memory)
    }

    /// The RAM layout.
    pub fn ram(&self) -> RamLayout {
        self.ram
    }

    /// APIC IDs of the vCPUs in creation order.
    pub fn apic_ids(&self) -> Vec<u32> {
        (0..self.boot_cpus)
            .map(|c| self.topology.apic_id(c))
            .collect()
    }

    /// Writes the firmware tables, loads the guest and points the boot vCPU
    /// at its entry.
    pub fn load(
        &self,
        boot: &BootConfig,
        mut platform: AcpiConfig,
    ) -> Result<EntryPoint, MachineError> {
        platform.apic_ids = self.apic_ids();
        // Without ACPI the boot protocols carry a zero RSDP address and the
        // area stays empty, so a scan finds nothing either.
        let mut rsdp = 0;
        if self.acpi {
            let tables = acpi::build(&platform, layout::ACPI_START);
            if tables.bytes.len() as u64 > layout::ACPI_MAX {
                return Err(MachineError::AcpiTooLarge(tables.bytes.len()));
            }
            self.memory
                .write_slice(&tables.bytes, GuestAddress(layout::ACPI_START))
                .map_err(|_| MachineError::Write("the ACPI tables"))?;
            rsdp = tables.rsdp();
        }
        let mp = mptable::build(&platform.apic_ids, layout::EBDA_START);
        self.memory
            .write_slice(&mp, GuestAddress(layout::EBDA_START))
            .map_err(|_| MachineError::Write("the MP table"))?;
        let entry = boot::load(&self.memory, &self.ram, boot, rsdp)?;
        regs::setup_boot_vcpu(&self.vcpus[0], &self.memory, entry.mode, entry.address)?;
        Ok(entry)
    }

    /// The BIOS area, for the chipset that switches its segments (PAM);
    /// `None` without firmware.
    pub fn bios_area(&self) -> Option<&Arc<BiosArea>> {
        self.bios.as_ref()
    }

    /// What firmware needs to build the guest's tables itself: the ACPI
    /// tables unplaced, and the memory map. The vCPUs stay at the reset
    /// vector, and nothing is written to guest memory: the firmware owns
    /// the legacy area (and builds the MP table itself).
    pub fn firmware_tables(&self, mut platform: AcpiConfig) -> FirmwareTables {
        platform.apic_ids = self.apic_ids();
        FirmwareTables {
            acpi: self.acpi.then(|| acpi::build_linked(&platform)),
            platform: Arc::new(platform),
            memory_map: firmware::memory_map(&self.ram),
            ram_ranges: [(0, self.ram.low), (4 << 30, self.ram.high)]
                .into_iter()
                .filter(|&(_, size)| size > 0)
                .collect(),
            cpuid_1: self.cpuid_1,
        }
    }

    /// Has every vCPU thread [`Machine::start`] creates run `hook` before
    /// it enters the guest (the VMM confines its threads by kind this way).
    pub fn on_vcpu_thread_start(&mut self, hook: fn()) {
        self.vcpu_thread_start = Some(hook);
    }

    /// Starts one thread per vCPU. With `paused`, the threads wait for
    /// [`Vcpus::resume`] before running guest code.
    pub fn start(
        &mut self,
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        events: Arc<dyn VcpuEvents>,
        paused: bool,
    ) -> Result<Vcpus, MachineError> {
        let fds = std::mem::take(&mut self.vcpus);
        Vcpus::start(
            fds,
            self.topology,
            self.memory.clone(),
            pio,
            mmio,
            events,
            paused,
            self.vcpu_thread_start,
        )
        .map_err(MachineError::Thread)
    }
}

/// The slot of direct boot's low RAM above the VGA window (after the
/// RAM regions' own, 0 and 1).
const LOW_RAM_ABOVE_VGA_SLOT: u32 = 2;

fn create_memory(ram: &RamLayout) -> Result<GuestMemoryMmap, MachineError> {
    let regions: Vec<(GuestAddress, usize)> = ram
        .regions()
        .iter()
        .map(|&(addr, size)| (GuestAddress(addr), size as usize))
        .collect();
    // Anonymous, private, MAP_NORESERVE: no page is touched (or counted
    // against the host) until the guest uses it, so a 1 GiB guest costs
    // what a 128 MiB one does at start.
    GuestMemoryMmap::from_ranges(&regions).map_err(|source| MachineError::Memory {
        size: ram.size(),
        source,
    })
}
