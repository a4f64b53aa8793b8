//! The ICH9 AHCI controller (QEMU's `ich9-ahci`, q35's 00:1f.2): six SATA
//! ports behind ABAR (BAR 5), the index/data pair in BAR 4, MSI and INTx.
//!
//! A command goes the way AHCI 1.3 describes: the guest builds a command
//! header in the port's command list, a command table with the command
//! FIS, the ATAPI command and the PRDT, and sets the slot's bit in PxCI.
//! The register write only records the bit and wakes the device thread
//! (through `kick`); [`Ahci::process`], on that thread, reads the header,
//! the FIS and the PRDT through vm-memory (every address and length
//! checked, a bad one failing the command with an error status), asks the
//! shared ATA core ([`crate::drive`]) what the command does, and hands
//! reads and writes to the block layer. [`Ahci::reap`] completes them:
//! the PRD byte count, the D2H (and for PIO commands the PIO Setup) FIS in
//! the receive area, PxTFD, PxCI and the interrupt.
//!
//! Not emulated (as QEMU 7.2 does them, a guest could notice): NCQ (CAP.SNCQ
//! is clear, so Linux issues one command at a time), port multipliers,
//! command completion coalescing, enclosure management, hot-plug.

pub mod regs;

use std::os::fd::RawFd;
use std::sync::Arc;

use rvirt_block::{Disk, Op, Request};
use rvirt_pci::config::{command, overlaps, reg, status as pci_status};
use rvirt_pci::intx::IntxPin;
use rvirt_pci::msi::{Msi, MsiCapability};
use rvirt_pci::{BarSpec, ConfigSpace, Ids, PciFunction};
use rvirt_platform::{InterruptLine, MsiVectors};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::drive::{error, status, Action, Drive, Protocol, TaskFile};
use crate::sg::{self, Segment};
use crate::Memory;
use regs::{cap, cmd, fis, ghc, is};

/// Ports of an ICH9 AHCI controller.
pub const PORTS: usize = 6;
/// Command slots per port.
pub const SLOTS: usize = 32;
/// ABAR: the AHCI registers.
pub const ABAR: u8 = 5;
pub const ABAR_SIZE: u64 = 0x1000;
/// The index/data pair (AHCI 1.3 section 2.3): an I/O window on ABAR.
pub const IDP_BAR: u8 = 4;
pub const IDP_SIZE: u64 = 0x20;
/// The most PRDT entries a command may have (PRDTL is 16 bits).
const MAX_PRDT: usize = 65535;

/// QEMU's ich9-ahci identity.
pub const IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x2922,
    revision: 0x02,
    class: 0x010601,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};

/// A drive on a port and the medium behind it.
pub struct Attachment {
    pub drive: Drive,
    /// The medium; `None` for an empty CD-ROM.
    pub disk: Option<Disk<u8>>,
}

/// A command handed to the block layer.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Bytes it moves, for the header's PRD byte count.
    bytes: u32,
    pio: bool,
    /// ST was cleared or the port reset since: the result is dropped.
    cancelled: bool,
}

#[derive(Default)]
struct PortRegs {
    clb: u64,
    fb: u64,
    is: u32,
    ie: u32,
    cmd: u32,
    tfd: u32,
    sig: u32,
    sctl: u32,
    serr: u32,
    sact: u32,
    ci: u32,
}

struct Port {
    regs: PortRegs,
    device: Option<Attachment>,
    in_flight: [Option<InFlight>; SLOTS],
}

/// The outcome of a command, for its completion.
struct Outcome {
    status: u8,
    error: u8,
    bytes: u32,
    pio: bool,
    /// Extra PxIS bits (a host bus or interface error).
    is: u32,
}

impl Outcome {
    fn ok(bytes: u32, pio: bool) -> Self {
        Outcome {
            status: status::READY,
            error: 0,
            bytes,
            pio,
            is: 0,
        }
    }

    fn failed(error: u8) -> Self {
        Outcome {
            status: status::READY | status::ERR,
            error,
            bytes: 0,
            pio: false,
            is: is::TFES,
        }
    }

    fn host_error(bits: u32) -> Self {
        Outcome {
            is: bits | is::TFES,
            ..Self::failed(error::ABRT)
        }
    }
}

/// Told when the guest opens or closes a CD-ROM's tray (START STOP UNIT):
/// the port and whether the tray is open now.
pub type TrayMoved = Arc<dyn Fn(usize, bool) + Send + Sync>;

/// How a boot wires the controller.
pub struct Wiring {
    pub memory: Memory,
    pub msi: Arc<dyn MsiVectors>,
    pub intx: Arc<IntxPin>,
    /// Written when PxCI gets a new bit; the device thread then calls
    /// [`Ahci::process`]. Without one the command runs in the register
    /// write (tests).
    pub kick: Option<EventFd>,
}

/// The controller.
///
/// Invariant: host buffers handed to a disk point into `memory`; every
/// disk is quiesced before `memory` is replaced or dropped (a new boot's
/// [`Ahci::attach`], and `Drop`, which drops the ports first).
pub struct Ahci {
    // First, so dropping the controller waits for in-flight I/O before
    // the memory goes.
    ports: Vec<Port>,
    cfg: ConfigSpace,
    msi_cap: MsiCapability,
    msi: Option<Msi>,
    intx: Arc<IntxPin>,
    memory: Option<Memory>,
    kick: Option<EventFd>,
    tray_moved: Option<TrayMoved>,
    ghc: u32,
    /// The index register of the index/data pair.
    idp_index: u32,
}

/// The configuration space as QEMU's ich9-ahci lays it out: the SATA
/// capability at 0xa8 (naming the index/data pair in BAR 4), MSI at 0x80
/// heading the list, AHCI mode in the address map register.
fn config() -> (ConfigSpace, MsiCapability) {
    let mut cfg = ConfigSpace::endpoint(&IDS, false);
    cfg.add_bar(usize::from(IDP_BAR), BarSpec::io(IDP_SIZE));
    cfg.add_bar(usize::from(ABAR), BarSpec::mem32(ABAR_SIZE));
    cfg.set_interrupt_pin(1);
    cfg.set_u8(reg::CACHE_LINE_SIZE, 0x08);
    const SATA_CAP_ID: u8 = 0x12;
    let sata = cfg.add_capability_at(0xa8, SATA_CAP_ID, 8);
    cfg.set_u16(sata + 2, 0x10);
    // The value QEMU 7.2 writes: BARLOC 8 (BAR 4), BAROFST 4.
    cfg.set_u32(sata + 4, 0x48);
    cfg.set_u8(ADDRESS_MAP, 1 << 6);
    let msi_cap = MsiCapability::add_at(&mut cfg, 0x80, 1, false);
    (cfg, msi_cap)
}

/// ICH9's address map register: bit 6 selects AHCI mode.
const ADDRESS_MAP: u16 = 0x90;

impl Ahci {
    /// A controller with `devices[p]` on port `p` (at most [`PORTS`]).
    pub fn new(devices: Vec<Option<Attachment>>) -> Self {
        let (cfg, msi_cap) = config();
        let mut ports: Vec<Port> = devices
            .into_iter()
            .chain(std::iter::repeat_with(|| None))
            .take(PORTS)
            .map(|device| Port {
                regs: PortRegs::default(),
                device,
                in_flight: [None; SLOTS],
            })
            .collect();
        for p in &mut ports {
            reset_port(p);
        }
        Ahci {
            ports,
            cfg,
            msi_cap,
            msi: None,
            intx: IntxPin::unconnected(),
            memory: None,
            kick: None,
            tray_moved: None,
            ghc: ghc::AE,
            idp_index: 0,
        }
    }

    /// Puts the controller in a new boot: as at power-on, on this boot's
    /// memory and interrupts.
    pub fn attach(&mut self, wiring: Wiring) {
        self.quiesce();
        let (cfg, msi_cap) = config();
        self.cfg = cfg;
        self.msi_cap = msi_cap;
        self.msi = Some(Msi::new(msi_cap, wiring.msi));
        self.intx = wiring.intx;
        self.memory = Some(wiring.memory);
        self.kick = wiring.kick;
        self.reset_hba();
    }

    /// Waits for every request in flight and forgets them.
    fn quiesce(&mut self) {
        for p in &mut self.ports {
            if let Some(d) = p.device.as_mut().and_then(|a| a.disk.as_mut()) {
                d.quiesce();
            }
            p.in_flight = [None; SLOTS];
        }
    }

    /// Who hears of the guest's tray moves (the monitor's
    /// DEVICE_TRAY_MOVED); kept across boots.
    pub fn on_tray_moved(&mut self, f: TrayMoved) {
        self.tray_moved = Some(f);
    }

    /// The attachment on `port`, for the monitor (media changes).
    pub fn device(&mut self, port: usize) -> Option<&mut Attachment> {
        self.ports.get_mut(port)?.device.as_mut()
    }

    /// Replaces `port`'s medium (its tray open), waiting for the old
    /// one's requests first.
    pub fn set_medium(&mut self, port: usize, disk: Option<Disk<u8>>) {
        let Some(p) = self.ports.get_mut(port) else {
            return;
        };
        let Some(a) = p.device.as_mut() else {
            return;
        };
        if let Some(old) = a.disk.as_mut() {
            old.quiesce();
        }
        for f in p.in_flight.iter_mut() {
            *f = None;
        }
        let size = disk.as_ref().and_then(|d| d.len().ok());
        a.disk = disk;
        if let Some(cd) = a.drive.cdrom_state() {
            cd.set_medium(size);
        }
    }

    /// The disks' completion descriptors, for the device thread.
    pub fn host_fds(&self) -> Vec<RawFd> {
        self.ports
            .iter()
            .filter_map(|p| p.device.as_ref()?.disk.as_ref()?.host_fd())
            .collect()
    }

    fn reset_hba(&mut self) {
        self.quiesce();
        self.ghc = ghc::AE;
        self.idp_index = 0;
        for p in &mut self.ports {
            p.regs = PortRegs::default();
            if let Some(a) = p.device.as_mut() {
                a.drive.reset();
            }
            reset_port(p);
        }
        self.update_irq();
    }

    fn cap(&self) -> u32 {
        cap::S64A
            | cap::SAM
            | cap::ISS_GEN1
            | cap::SSS
            | ((SLOTS as u32 - 1) << 8)
            | (PORTS as u32 - 1)
    }

    /// GHC.IS: the ports with an enabled interrupt pending.
    fn irq_status(&self) -> u32 {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.regs.is & p.regs.ie != 0)
            .fold(0, |acc, (i, _)| acc | 1 << i)
    }

    /// Drives the interrupt from GHC.IE and the ports' status: an MSI when
    /// something is pending (as QEMU sends one on every check that finds
    /// it), else the INTx level.
    fn update_irq(&mut self) {
        let level = self.ghc & ghc::IE != 0 && self.irq_status() != 0;
        let msi = self.msi.as_ref().filter(|m| m.enabled());
        match msi {
            Some(m) => {
                if level {
                    if let Err(error) = m.trigger(0) {
                        tracing::debug!(%error, "AHCI MSI not delivered");
                    }
                }
            }
            None => {
                let r = if level {
                    self.intx.raise()
                } else {
                    self.intx.lower()
                };
                if let Err(error) = r {
                    tracing::warn!(%error, "cannot drive the AHCI interrupt");
                }
            }
        }
    }

    /// A register read in ABAR.
    pub fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            regs::CAP => self.cap(),
            regs::GHC => self.ghc,
            regs::IS => self.irq_status(),
            regs::PI => (1 << PORTS) - 1,
            regs::VS => 0x0001_0000,
            o if o >= regs::PORT_BASE => {
                let (n, r) = port_of(o);
                let Some(p) = self.ports.get(n) else {
                    return 0;
                };
                let x = &p.regs;
                match r {
                    regs::port::CLB => x.clb as u32,
                    regs::port::CLBU => (x.clb >> 32) as u32,
                    regs::port::FB => x.fb as u32,
                    regs::port::FBU => (x.fb >> 32) as u32,
                    regs::port::IS => x.is,
                    regs::port::IE => x.ie,
                    regs::port::CMD => x.cmd,
                    regs::port::TFD => x.tfd,
                    regs::port::SIG => x.sig,
                    // Link up at Gen 1, interface active.
                    regs::port::SSTS if p.device.is_some() => 0x123,
                    regs::port::SCTL => x.sctl,
                    regs::port::SERR => x.serr,
                    regs::port::SACT => x.sact,
                    regs::port::CI => x.ci,
                    _ => 0,
                }
            }
            _ => 0,
        }
    }

    /// A register write in ABAR.
    pub fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            regs::GHC => {
                if v & ghc::HR != 0 {
                    self.reset_hba();
                } else {
                    self.ghc = ghc::AE | (v & ghc::IE);
                    self.update_irq();
                }
            }
            // Derived from the ports' status: clearing a port's PxIS
            // clears its bit here.
            regs::IS => self.update_irq(),
            o if o >= regs::PORT_BASE => {
                let (n, r) = port_of(o);
                if n < PORTS {
                    self.write_port(n, r, v);
                }
            }
            _ => {}
        }
    }

    fn write_port(&mut self, n: usize, r: u64, v: u32) {
        let p = &mut self.ports[n];
        let x = &mut p.regs;
        match r {
            regs::port::CLB => x.clb = (x.clb & !0xffff_ffff) | u64::from(v & !0x3ff),
            regs::port::CLBU => x.clb = (x.clb & 0xffff_ffff) | u64::from(v) << 32,
            regs::port::FB => x.fb = (x.fb & !0xffff_ffff) | u64::from(v & !0xff),
            regs::port::FBU => x.fb = (x.fb & 0xffff_ffff) | u64::from(v) << 32,
            regs::port::IS => {
                x.is &= !v;
                self.update_irq();
            }
            regs::port::IE => {
                x.ie = v & is::VALID;
                self.update_irq();
            }
            regs::port::CMD => {
                let was = x.cmd;
                x.cmd = (x.cmd & !cmd::WRITABLE) | (v & cmd::WRITABLE);
                if v & cmd::CLO != 0 {
                    x.tfd &= !u32::from(status::BSY | status::DRQ);
                }
                if x.cmd & cmd::FRE != 0 {
                    x.cmd |= cmd::FR;
                    if was & cmd::FRE == 0 && p.device.is_some() {
                        // The first FIS after FIS receive comes on: the
                        // drive's signature (as QEMU's ahci_init_d2h).
                        let x = &p.regs;
                        let (tfd, sig, fb) = (x.tfd, x.sig, x.fb);
                        write_signature_fis(self.memory.as_ref(), fb, tfd, sig);
                    }
                } else {
                    x.cmd &= !cmd::FR;
                }
                let x = &mut self.ports[n].regs;
                if x.cmd & cmd::ST != 0 {
                    x.cmd |= cmd::CR;
                } else {
                    x.cmd &= !cmd::CR;
                    if was & cmd::ST != 0 {
                        // Stopping the list empties it; commands still in
                        // the block layer finish unseen.
                        x.ci = 0;
                        x.sact = 0;
                        for f in self.ports[n].in_flight.iter_mut().flatten() {
                            f.cancelled = true;
                        }
                    }
                }
                // A start with commands already issued runs them.
                if self.ports[n].regs.ci != 0 {
                    self.issue();
                }
            }
            regs::port::SCTL => {
                let reset = x.sctl & 0xf == 1 && v & 0xf == 0;
                x.sctl = v;
                if reset {
                    // COMRESET done: the drive comes back with its
                    // signature.
                    for f in p.in_flight.iter_mut().flatten() {
                        f.cancelled = true;
                    }
                    if let Some(a) = p.device.as_mut() {
                        a.drive.reset();
                    }
                    let keep = (x.clb, x.fb, x.ie, x.cmd & cmd::WRITABLE, x.sctl);
                    reset_port(p);
                    let x = &mut p.regs;
                    (x.clb, x.fb, x.ie, x.sctl) = (keep.0, keep.1, keep.2, keep.4);
                    x.cmd = keep.3 & !cmd::ST;
                    if x.cmd & cmd::FRE != 0 {
                        x.cmd |= cmd::FR;
                        let (tfd, sig, fb) = (x.tfd, x.sig, x.fb);
                        write_signature_fis(self.memory.as_ref(), fb, tfd, sig);
                        self.ports[n].regs.is |= is::DHRS;
                    }
                    self.update_irq();
                }
            }
            regs::port::SERR => x.serr &= !v,
            regs::port::SACT if x.cmd & cmd::ST != 0 => x.sact |= v,
            regs::port::CI if x.cmd & cmd::ST != 0 => {
                x.ci |= v;
                self.issue();
            }
            _ => {}
        }
    }

    /// New commands are issued: wake the device thread, or run them here
    /// when there is none.
    fn issue(&mut self) {
        match &self.kick {
            Some(k) => {
                if let Err(error) = k.write(1) {
                    tracing::warn!(%error, "cannot wake the AHCI thread");
                }
            }
            None => self.process(),
        }
    }

    /// Starts every issued command not started yet (the device thread,
    /// after a kick).
    pub fn process(&mut self) {
        for n in 0..PORTS {
            loop {
                let p = &self.ports[n];
                if p.regs.cmd & cmd::ST == 0 {
                    break;
                }
                let busy = p
                    .in_flight
                    .iter()
                    .enumerate()
                    .fold(0u32, |acc, (i, f)| acc | (u32::from(f.is_some()) << i));
                let todo = p.regs.ci & !busy;
                if todo == 0 {
                    break;
                }
                let slot = todo.trailing_zeros() as usize;
                self.start(n, slot);
            }
        }
        self.update_irq();
    }

    /// Completes what the block layer finished (the device thread, when a
    /// disk's descriptor is readable).
    pub fn reap(&mut self) {
        for n in 0..PORTS {
            let mut done = Vec::new();
            if let Some(d) = self.ports[n].device.as_mut().and_then(|a| a.disk.as_mut()) {
                d.reap(&mut done);
            }
            for d in done {
                self.finish(n, d.tag, d.result.is_ok());
            }
        }
        self.update_irq();
    }

    fn finish(&mut self, n: usize, slot: u8, ok: bool) {
        let Some(f) = self.ports[n].in_flight[usize::from(slot)].take() else {
            return;
        };
        if f.cancelled {
            return;
        }
        let outcome = if ok {
            Outcome::ok(f.bytes, f.pio)
        } else {
            Outcome::failed(error::ABRT)
        };
        self.complete(n, usize::from(slot), outcome);
    }

    /// Reads the command in `slot` of port `n` and starts it.
    fn start(&mut self, n: usize, slot: usize) {
        let Some(mem) = self.memory.clone() else {
            self.ports[n].regs.ci &= !(1 << slot);
            return;
        };
        match self.command(&mem, n, slot) {
            Ok(Some(outcome)) => self.complete(n, slot, outcome),
            Ok(None) => {}
            Err(outcome) => self.complete(n, slot, outcome),
        }
    }

    /// Ok(None): handed to the block layer; Ok(Some) or Err: finished now.
    fn command(&mut self, mem: &Memory, n: usize, slot: usize) -> Result<Option<Outcome>, Outcome> {
        let hba_error = |_| Outcome::host_error(is::HBFS);
        let header_at = GuestAddress(self.ports[n].regs.clb + slot as u64 * 32);
        let mut header = [0u8; 16];
        mem.read_slice(&mut header, header_at).map_err(hba_error)?;
        let dw0 = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let prdtl = (dw0 >> 16) as usize;
        let table = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default()) & !0x7f;
        let mut cfis = [0u8; 20];
        mem.read_slice(&mut cfis, GuestAddress(table))
            .map_err(hba_error)?;
        if cfis[0] != fis::REG_H2D {
            tracing::debug!(
                port = n,
                slot,
                fis = cfis[0],
                "AHCI command FIS of a bad type"
            );
            return Err(Outcome::host_error(is::IFS));
        }
        let port = &mut self.ports[n];
        let Some(device) = port.device.as_mut() else {
            return Err(Outcome::failed(error::ABRT));
        };
        if cfis[1] & 0x80 == 0 {
            // A control FIS: SRST set, then cleared, resets the drive.
            let x = &mut port.regs;
            if cfis[15] & 0x04 == 0 {
                device.drive.reset();
                x.tfd = 0x0100 | u32::from(status::READY);
                x.sig = device.drive.signature();
                write_signature_fis(Some(mem), x.fb, x.tfd, x.sig);
                x.is |= is::DHRS;
            }
            x.ci &= !(1 << slot);
            return Ok(None);
        }
        let tf = TaskFile {
            command: cfis[2],
            features: u16::from(cfis[3]) | u16::from(cfis[11]) << 8,
            lba: u64::from(cfis[4])
                | u64::from(cfis[5]) << 8
                | u64::from(cfis[6]) << 16
                | u64::from(cfis[8]) << 24
                | u64::from(cfis[9]) << 32
                | u64::from(cfis[10]) << 40,
            device: cfis[7],
            count: u16::from(cfis[12]) | u16::from(cfis[13]) << 8,
        };
        let mut action = device.drive.command(&tf);
        if let Action::Packet { dma } = action {
            let mut cdb = [0u8; 12];
            mem.read_slice(&mut cdb, GuestAddress(table + fis::ACMD_OFFSET))
                .map_err(hba_error)?;
            action = device.drive.packet(&cdb, dma);
            let moved = device.drive.cdrom_state().and_then(|c| c.take_moved());
            if let (Some(m), Some(f)) = (moved, &self.tray_moved) {
                f(n, m == crate::atapi::Tray::Opened);
            }
        }
        let segs = prdt(mem, table, prdtl).map_err(hba_error)?;
        let (op, len, pio) = match action {
            Action::Done => return Ok(Some(Outcome::ok(0, false))),
            Action::Error(e) => return Ok(Some(Outcome::failed(e))),
            Action::Packet { .. } => return Ok(Some(Outcome::failed(error::ABRT))),
            Action::DataIn(data, protocol) => {
                let n =
                    sg::copy_in(mem, &segs, &data).map_err(|_| Outcome::host_error(is::HBFS))?;
                return Ok(Some(Outcome::ok(n as u32, protocol == Protocol::Pio)));
            }
            Action::Flush => (Op::Flush, 0, false),
            Action::Read {
                offset,
                len,
                protocol,
            } => {
                let bufs = sg::io_bufs(mem, &segs, len).map_err(|e| {
                    tracing::debug!(port = n, slot, error = %e, "AHCI read refused");
                    Outcome::failed(error::ABRT)
                })?;
                (Op::Read { offset, bufs }, len, protocol == Protocol::Pio)
            }
            Action::Write {
                offset,
                len,
                protocol,
            } => {
                let bufs = sg::io_bufs(mem, &segs, len).map_err(|e| {
                    tracing::debug!(port = n, slot, error = %e, "AHCI write refused");
                    Outcome::failed(error::ABRT)
                })?;
                (Op::Write { offset, bufs }, len, protocol == Protocol::Pio)
            }
        };
        let Some(disk) = device.disk.as_mut() else {
            return Err(Outcome::failed(error::ABRT));
        };
        port.in_flight[slot] = Some(InFlight {
            bytes: len as u32,
            pio,
            cancelled: false,
        });
        let done = disk.submit(Request {
            tag: slot as u8,
            op,
        });
        disk.commit();
        if let Some(d) = done {
            self.finish(n, d.tag, d.result.is_ok());
        }
        Ok(None)
    }

    /// Finishes the command in `slot`: its byte count, the FISes, the task
    /// file, PxCI and PxIS.
    fn complete(&mut self, n: usize, slot: usize, o: Outcome) {
        let mem = self.memory.clone();
        let x = &mut self.ports[n].regs;
        if let Some(mem) = mem.as_ref() {
            let at = GuestAddress(x.clb + slot as u64 * 32 + 4);
            let _ = mem.write_obj(o.bytes, at);
            if x.cmd & cmd::FRE != 0 {
                if o.pio && o.status & status::ERR == 0 {
                    let mut ps = [0u8; 20];
                    ps[0] = fis::PIO_SETUP;
                    ps[1] = 0x60; // device to host, interrupt
                    ps[2] = o.status | status::DRQ;
                    ps[3] = o.error;
                    ps[15] = o.status;
                    ps[16..18].copy_from_slice(&(o.bytes.min(0xffff) as u16).to_le_bytes());
                    let _ = mem.write_slice(&ps, GuestAddress(x.fb + fis::PSFIS_OFFSET));
                    x.is |= is::PSS;
                }
                let mut d2h = [0u8; 20];
                d2h[0] = fis::REG_D2H;
                d2h[1] = 0x40; // interrupt
                d2h[2] = o.status;
                d2h[3] = o.error;
                let _ = mem.write_slice(&d2h, GuestAddress(x.fb + fis::RFIS_OFFSET));
                x.is |= is::DHRS;
            }
        }
        x.tfd = u32::from(o.error) << 8 | u32::from(o.status);
        x.is |= o.is;
        x.ci &= !(1 << slot);
        x.sact &= !(1 << slot);
        self.update_irq();
    }

    fn read_abar(&self, offset: u64, data: &mut [u8]) {
        // Registers are dwords; narrower reads take their bytes.
        let base = offset & !3;
        let v = self.read_reg(base).to_le_bytes();
        let from = (offset - base) as usize;
        for (i, b) in data.iter_mut().enumerate() {
            *b = v.get(from + i).copied().unwrap_or(0);
        }
    }

    fn write_abar(&mut self, offset: u64, data: &[u8]) {
        match data.len() {
            4 if offset.is_multiple_of(4) => {
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.write_reg(offset, v);
            }
            8 if offset.is_multiple_of(8) => {
                self.write_abar(offset, &data[..4]);
                self.write_abar(offset + 4, &data[4..]);
            }
            len => tracing::debug!(offset, len, "AHCI register write not a dword: ignored"),
        }
    }
}

impl Drop for Ahci {
    fn drop(&mut self) {
        self.quiesce();
    }
}

/// Port number and register offset of an ABAR offset past the HBA's.
fn port_of(offset: u64) -> (usize, u64) {
    let rel = offset - regs::PORT_BASE;
    ((rel / regs::PORT_LEN) as usize, rel % regs::PORT_LEN)
}

/// A port as after COMRESET: the drive's signature and ready status.
fn reset_port(p: &mut Port) {
    let x = &mut p.regs;
    x.is = 0;
    x.ci = 0;
    x.sact = 0;
    x.serr = 0;
    x.cmd = cmd::SUD | cmd::POD;
    match &p.device {
        Some(a) => {
            x.sig = a.drive.signature();
            // Ready, with the diagnostic code 1 in the error register.
            x.tfd = 0x0100 | u32::from(status::READY);
        }
        None => {
            x.sig = 0xffff_ffff;
            x.tfd = 0x7f;
        }
    }
    for f in p.in_flight.iter_mut().flatten() {
        f.cancelled = true;
    }
}

/// The D2H FIS a drive sends after a reset: status, and the signature in
/// the count and LBA registers.
fn write_signature_fis(mem: Option<&Memory>, fb: u64, tfd: u32, sig: u32) {
    let Some(mem) = mem else {
        return;
    };
    let s = sig.to_le_bytes();
    let mut d2h = [0u8; 20];
    d2h[0] = fis::REG_D2H;
    d2h[2] = tfd as u8;
    d2h[3] = (tfd >> 8) as u8;
    d2h[4] = s[1];
    d2h[5] = s[2];
    d2h[6] = s[3];
    d2h[12] = s[0];
    let _ = mem.write_slice(&d2h, GuestAddress(fb + fis::RFIS_OFFSET));
}

/// The `prdtl` entries of the PRDT of the command table at `table`.
fn prdt(
    mem: &Memory,
    table: u64,
    prdtl: usize,
) -> Result<Vec<Segment>, vm_memory::GuestMemoryError> {
    let mut segs = Vec::with_capacity(prdtl.min(256));
    let mut raw = [0u8; 16];
    for i in 0..prdtl.min(MAX_PRDT) {
        let at = table + fis::PRDT_OFFSET + 16 * i as u64;
        mem.read_slice(&mut raw, GuestAddress(at))?;
        let dba = u64::from_le_bytes(raw[0..8].try_into().unwrap_or_default()) & !1;
        let dbc = (u32::from_le_bytes(raw[12..16].try_into().unwrap_or_default()) & 0x3f_ffff) + 1;
        segs.push(Segment {
            addr: GuestAddress(dba),
            len: dbc,
        });
    }
    Ok(segs)
}

impl PciFunction for Ahci {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        self.cfg.read(offset, data);
        if overlaps(offset, data.len(), reg::STATUS, 1) && self.intx.level() {
            data[usize::from(reg::STATUS - offset)] |= pci_status::INTERRUPT as u8;
        }
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        let len = data.len();
        if overlaps(offset, len, reg::COMMAND, 2) {
            let c = self.cfg.read_u16(reg::COMMAND);
            self.intx.set_disabled(c & command::INTX_DISABLE != 0);
        }
        if self.msi_cap.written(offset, len) {
            if let Some(m) = &self.msi {
                m.config_written(&self.cfg);
                if m.enabled() {
                    // Interrupts are messages from now on.
                    let _ = self.intx.lower();
                }
            }
            self.update_irq();
        }
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            ABAR => self.read_abar(offset, data),
            IDP_BAR => {
                let v = match offset & !3 {
                    0 => self.idp_index,
                    4 => self.read_reg(u64::from(self.idp_index)),
                    _ => 0,
                }
                .to_le_bytes();
                let from = (offset & 3) as usize;
                for (i, b) in data.iter_mut().enumerate() {
                    *b = v.get(from + i).copied().unwrap_or(0);
                }
            }
            _ => data.fill(0xff),
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        match (bar, offset) {
            (ABAR, _) => self.write_abar(offset, data),
            (IDP_BAR, 0) if data.len() == 4 => {
                self.idp_index = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) & 0xffc;
            }
            (IDP_BAR, 4) if data.len() == 4 => {
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                self.write_reg(u64::from(self.idp_index), v);
            }
            _ => tracing::debug!(bar, offset, "AHCI BAR write ignored"),
        }
    }
}

#[cfg(test)]
mod tests;
