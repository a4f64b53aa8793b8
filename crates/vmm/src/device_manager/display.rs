//! The display device (`-device bochs-display` or `VGA`): its VRAM, made
//! once and kept over reboots as hardware keeps it, mapped into each
//! boot's VM as a KVM memory slot with dirty logging that follows BAR 0
//! wherever the guest (or SeaBIOS) puts it; the screen the VNC server
//! reads. The std VGA's legacy ports and 0xA0000 window sit on the buses
//! at their fixed places, its BIOS behind the ROM BAR.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rvirt_bus::{Bus, SharedDevice};
use rvirt_display::bochs::{self, BochsDisplay};
use rvirt_display::screen::{DisplayState, Screen};
use rvirt_display::stdvga::DISPI_PORT_COUNT;
use rvirt_display::stdvga::{DispiPorts, StdVga, VgaPorts, VgaWindow, DISPI_PORT};
use rvirt_display::vga::{WINDOW_BASE, WINDOW_SIZE};
use rvirt_machine::{DeviceMemory, Machine, MemorySlot, SystemAllocator};
use rvirt_pci::config::{command, reg};
use rvirt_pci::function::lock;
use rvirt_pci::rom::OptionRom;
use rvirt_pci::{BarMapping, FunctionId, SharedFunction};
use rvirt_vmm_config::{DisplayConfig, DisplayModel, PciAddr};

use crate::VmmError;

/// The VRAM as `rvirt_display` sees it: the memory, this boot's slot over
/// it, and whether the device itself wrote it (an access that exited,
/// which no dirty log saw).
pub(crate) struct Vram {
    memory: Arc<DeviceMemory>,
    slot: Mutex<Option<Arc<MemorySlot>>>,
    unlogged: AtomicBool,
}

impl rvirt_display::Vram for Vram {
    fn len(&self) -> usize {
        self.memory.len()
    }

    fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        self.memory.read(offset, out)
    }

    fn write(&self, offset: usize, data: &[u8]) -> usize {
        self.unlogged.store(true, Ordering::Relaxed);
        self.memory.write(offset, data)
    }

    fn dirty(&self) -> Option<Vec<u64>> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let logged = match slot {
            Some(s) => s.dirty().unwrap_or_else(|error| {
                tracing::warn!(%error, "display: cannot read the VRAM's dirty log");
                None
            }),
            None => Some(Vec::new()),
        };
        if self.unlogged.swap(false, Ordering::Relaxed) {
            return None;
        }
        logged
    }
}

/// The display device as placed: where firmware would put its BARs.
pub(crate) struct DisplayPlan {
    pub(crate) addr: PciAddr,
    pub(crate) id: Option<String>,
    vram_bar: u64,
    mmio_bar: u64,
    vram: Arc<Vram>,
    state: Arc<DisplayState>,
    model: DisplayModel,
    /// The std VGA's BIOS, read once.
    rom: Option<OptionRom>,
}

impl DisplayPlan {
    /// Makes the VRAM and places the BARs in the 32-bit window.
    pub(crate) fn new(cfg: &DisplayConfig, alloc: &mut SystemAllocator) -> Result<Self, VmmError> {
        let memory = DeviceMemory::new(cfg.vgamem as usize).map_err(|e| VmmError::Setup {
            what: "the display's video memory",
            source: std::io::Error::other(e),
        })?;
        let place = |e| VmmError::Placement(e);
        let vram_bar = alloc
            .allocate_mmio32(cfg.vgamem, cfg.vgamem)
            .map_err(place)?
            .base;
        let mmio_bar = alloc
            .allocate_mmio32(bochs::MMIO_SIZE, bochs::MMIO_SIZE)
            .map_err(place)?
            .base;
        let vram = Arc::new(Vram {
            memory,
            slot: Mutex::new(None),
            unlogged: AtomicBool::new(false),
        });
        let (state, rom) = match cfg.model {
            DisplayModel::Bochs => (DisplayState::new(vram.clone()), None),
            DisplayModel::Vga => {
                let rom = match &cfg.romfile {
                    Some(p) => Some(OptionRom::load(p).map_err(VmmError::Rom)?),
                    None => None,
                };
                (DisplayState::with_vga(vram.clone()), rom)
            }
        };
        Ok(DisplayPlan {
            addr: cfg.addr,
            id: cfg.id.clone(),
            vram_bar,
            mmio_bar,
            vram,
            state,
            model: cfg.model,
            rom,
        })
    }

    /// What the VNC server shows.
    pub(crate) fn screen(&self) -> Arc<Screen> {
        Arc::new(Screen::new(self.state.clone()))
    }

    /// This boot's function (registers at reset) and VRAM slot (mapped
    /// where BAR 0 decodes, once the segment places it). `program`: set
    /// the BARs and decoding as firmware would (a direct kernel boot).
    pub(crate) fn attach(&self, machine: &Machine, program: bool) -> (SharedFunction, VramSlot) {
        let slot = Arc::new(machine.memory_slot(self.vram.memory.clone()));
        *self.vram.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot.clone());
        let f: SharedFunction = match self.model {
            DisplayModel::Bochs => Arc::new(Mutex::new(BochsDisplay::new(
                self.state.clone(),
                bochs::Placement::Conventional,
            ))),
            DisplayModel::Vga => Arc::new(Mutex::new(StdVga::new(
                self.state.clone(),
                self.rom.clone(),
            ))),
        };
        if program {
            let mut g = lock(&f);
            let cfg = g.config_mut();
            cfg.set_bar_address(usize::from(bochs::VRAM_BAR), self.vram_bar);
            cfg.set_bar_address(usize::from(bochs::MMIO_BAR), self.mmio_bar);
            cfg.set_u16(reg::COMMAND, command::MEMORY);
        }
        (f, VramSlot { id: None, slot })
    }
}

impl DisplayPlan {
    /// The std VGA's legacy decoders on this boot's buses: ports
    /// 0x3b0-0x3df, DISPI at 0x1ce/0x1cf, the 0xA0000 window (which the
    /// machine leaves without RAM). Nothing for bochs-display.
    pub(crate) fn attach_legacy(&self, pio: &Bus, mmio: &Bus) -> Result<(), VmmError> {
        if self.model != DisplayModel::Vga {
            return Ok(());
        }
        let bus = |e| VmmError::Setup {
            what: "the VGA's legacy ports and window",
            source: std::io::Error::other(e),
        };
        let ports: SharedDevice = Arc::new(Mutex::new(VgaPorts(self.state.clone())));
        pio.insert(ports, u64::from(VgaPorts::BASE), u64::from(VgaPorts::LEN))
            .map_err(bus)?;
        let dispi: SharedDevice = Arc::new(Mutex::new(DispiPorts::new(self.state.clone())));
        pio.insert(dispi, u64::from(DISPI_PORT), u64::from(DISPI_PORT_COUNT))
            .map_err(bus)?;
        let window: SharedDevice = Arc::new(Mutex::new(VgaWindow(self.state.clone())));
        mmio.insert(window, WINDOW_BASE, WINDOW_SIZE).map_err(bus)?;
        Ok(())
    }
}

/// This boot's VRAM slot, moved with BAR 0 (the segment's observer).
pub(crate) struct VramSlot {
    pub(crate) id: Option<FunctionId>,
    slot: Arc<MemorySlot>,
}

impl VramSlot {
    /// BAR `bar` of `function` decodes at `mapping` now.
    pub(crate) fn bar_moved(&self, function: FunctionId, bar: u8, mapping: Option<BarMapping>) {
        if self.id != Some(function) || bar != bochs::VRAM_BAR {
            return;
        }
        if let Err(error) = self.slot.place(mapping.map(|m| m.base)) {
            // The BAR still reaches the VRAM through the bus (slower, and
            // every write repaints the screen).
            tracing::warn!(%error, "display: cannot map the VRAM at its BAR");
        }
    }
}
