//! Intel's gigabit controllers as QEMU 7.2 presents them: the 82540EM
//! (`e1000`) and, on the same core, the 82574L (`e1000e`, [`e82574`]:
//! its PCI Express function, MSI-X, extended receive descriptors; pick it
//! with [`Model::E82574l`]).
//!
//! The 82540EM (PCI 8086:100e, revision 3, subsystem 1af4:1100): BAR 0 the 128 KiB of
//! registers, BAR 1 the 64 ports of IOADDR/IODATA, the EEPROM
//! ([`eeprom`]) with the MAC, the PHY behind MDIC ([`phy`]), one transmit
//! ring ([`tx`]: legacy, context and data descriptors, checksum offload and
//! TSO) and one receive ring of legacy descriptors, and the interrupt
//! causes on INTx (a level line).
//!
//! Register accesses run on the vCPU that made them and only change
//! registers; a tail write (TDT, RDT) or anything else that lets frames
//! flow signals the kick eventfd ([`E1000::kick_fd`]), and the device
//! event loop then calls [`E1000::process`], which walks the rings. The
//! rings and buffers are read and written through vm-memory: an address
//! outside guest RAM drops the frame (and a descriptor that cannot be read
//! stops the ring), it never reaches the host.
//!
//! What a guest could notice against QEMU: no interrupt moderation (ITR,
//! RDTR, RADV, TADV and TIDV are kept but interrupts are not delayed);
//! autonegotiation completes at once; no VLAN tag insertion or stripping
//! (VLAN-tagged frames pass as they are); IOADDR/IODATA work as on
//! hardware, where QEMU's e1000 reads zero there; no option ROM.

pub mod e82574;
pub mod eeprom;
pub mod phy;
pub mod regs;
pub mod tx;

#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use rvirt_hostnet::{NetBackend, VNET_HDR_LEN};
use rvirt_pci::bar::BarSpec;
use rvirt_pci::config::{command, overlaps, reg, status as pci_status, ConfigSpace, Ids};
use rvirt_pci::intx::IntxPin;
use rvirt_pci::PciFunction;
use rvirt_platform::{InterruptLine, MsiVectors};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::Memory;
use eeprom::Eeprom;
use phy::Phy;
use regs::*;
use tx::{TxPath, DESC_LEN};

/// Intel's vendor ID.
pub const VENDOR_ID: u16 = 0x8086;
/// The 82540EM.
pub const DEVICE_ID: u16 = 0x100e;
/// QEMU's revision for it.
pub const REVISION: u8 = 3;
/// QEMU's subsystem IDs, which its e1000 carries.
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1af4;
pub const SUBSYSTEM_ID: u16 = 0x1100;
/// BAR 0: the registers.
pub const MMIO_BAR: u8 = 0;
pub const MMIO_SIZE: u64 = 0x20000;
/// BAR 1: IOADDR at 0, IODATA at 4.
pub const IO_BAR: u8 = 1;
pub const IO_SIZE: u64 = 0x40;

/// The shortest frame on the wire without its FCS: shorter ones are padded.
const MIN_FRAME: usize = 60;
/// The longest frame without and with Long Packet Enable, as QEMU.
const MAX_FRAME: usize = 1522;
const MAX_FRAME_LPE: usize = 16384;
/// A receive descriptor's size in the ring.
const RX_DESC_LEN: u64 = 16;
/// RX descriptor status bits.
const RXD_DD: u8 = 1 << 0;
const RXD_EOP: u8 = 1 << 1;
/// "Ignore checksum indication": the card checked nothing.
const RXD_IXSM: u8 = 1 << 2;
/// Frames (or descriptors) moved per call at most, so one busy direction
/// cannot starve the rest of the event loop.
const BUDGET: usize = 256;
/// Frames a back-end that pushes back may leave queued; more are dropped.
const MAX_QUEUED: usize = 1024;

/// Kinds of guest error logged once per device at warn level, then at
/// debug.
#[derive(Clone, Copy)]
enum Complaint {
    TxDescriptor = 1,
    TxBuffer = 2,
    RxDescriptor = 4,
    RxBuffer = 8,
    Backend = 16,
}

/// Which card a function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The 82540EM, QEMU's `e1000`.
    E82540em,
    /// The 82574L, QEMU's `e1000e`.
    E82574l,
}

impl Model {
    /// The name QEMU and the logs give it.
    pub fn name(self) -> &'static str {
        match self {
            Model::E82540em => "e1000",
            Model::E82574l => "e1000e",
        }
    }

    /// The BAR of its registers, and of IOADDR/IODATA.
    fn bars(self) -> (u8, u8) {
        match self {
            Model::E82540em => (MMIO_BAR, IO_BAR),
            Model::E82574l => (e82574::MMIO_BAR, e82574::IO_BAR),
        }
    }
}

/// Where the 82574's MSI-X and MSI vectors are delivered.
type MsiOut = (Arc<dyn MsiVectors>, Arc<dyn MsiVectors>);

/// One e1000 or e1000e function.
pub struct E1000 {
    model: Model,
    cfg: ConfigSpace,
    /// The 82574's MSI-X and MSI; `None` on the 82540EM.
    ext: Option<e82574::Vectors>,
    /// Where they deliver, kept for each boot's fresh function.
    msi_out: Option<MsiOut>,
    mac: [u8; 6],
    regs: Box<[u32]>,
    eeprom: Eeprom,
    phy: Phy,
    tx: TxPath,
    backend: Box<dyn NetBackend>,
    mem: Option<Memory>,
    intx: Arc<IntxPin>,
    kick: EventFd,
    ioaddr: u32,
    /// The link as the guest sees it: set up (QMP `set_link`) and the
    /// back-end connected.
    link_up: bool,
    /// QMP `set_link`'s setting.
    admin_up: bool,
    /// Frames the back-end pushed back, sent before any other.
    queued: std::collections::VecDeque<Vec<u8>>,
    /// One receive buffer: the vnet header and the longest frame.
    rx_buf: Vec<u8>,
    complained: u32,
}

fn idx(offset: u32) -> usize {
    (offset >> 2) as usize
}

/// The receive buffer size RCTL selects.
fn rx_buf_size(rctl: u32) -> usize {
    match rctl & (rctl::BSEX | rctl::BSIZE_MASK) {
        v if v == rctl::BSEX | (1 << 16) => 16384,
        v if v == rctl::BSEX | (2 << 16) => 8192,
        v if v == rctl::BSEX | (3 << 16) => 4096,
        v if v == 1 << 16 => 1024,
        v if v == 2 << 16 => 512,
        v if v == 3 << 16 => 256,
        _ => 2048,
    }
}

/// Whether a register offset is one the card keeps (reads back as
/// written); the rest read zero and ignore writes.
fn plain(offset: u32) -> bool {
    matches!(
        offset,
        CTRL | STATUS
            | CTRL_EXT
            | MDIC
            | FCAL
            | FCAH
            | FCT
            | VET
            | ITR
            | ICS
            | IMS
            | RCTL
            | FCTTV
            | TXCW
            | RXCW
            | TCTL
            | TIPG
            | LEDCTL
            | PBA
            | FCRTL
            | FCRTH
            | RDBAL
            | RDBAH
            | RDLEN
            | RDH
            | RDT
            | RDTR
            | RADV
            | RSRPD
            | TDBAL
            | TDBAH
            | TDLEN
            | TDH
            | TDT
            | TIDV
            | TXDCTL
            | TADV
            | RXCSUM
            | WUC
            | WUFC
            | WUS
            | MANC
            | SWSM
    ) || (MTA..MTA_END).contains(&offset)
        || (RA..RA_END).contains(&offset)
        || (VFTA..VFTA_END).contains(&offset)
}

impl E1000 {
    /// An 82540EM with MAC address `mac` on `backend`; it joins a machine
    /// with [`E1000::attach`].
    pub fn new(backend: Box<dyn NetBackend>, mac: [u8; 6]) -> io::Result<Self> {
        Self::with_model(Model::E82540em, backend, mac)
    }

    /// A card of `model` with MAC address `mac` on `backend`.
    pub fn with_model(
        model: Model,
        backend: Box<dyn NetBackend>,
        mac: [u8; 6],
    ) -> io::Result<Self> {
        let (cfg, ext) = Self::config_space(model, None);
        let mut e = E1000 {
            model,
            cfg,
            ext,
            msi_out: None,
            mac,
            regs: vec![0u32; 0x8000].into_boxed_slice(),
            eeprom: Eeprom::new(DEVICE_ID, mac),
            phy: Phy::new(true),
            tx: TxPath::default(),
            backend,
            mem: None,
            intx: IntxPin::unconnected(),
            kick: EventFd::new(EFD_NONBLOCK)?,
            ioaddr: 0,
            link_up: true,
            admin_up: true,
            queued: Default::default(),
            rx_buf: vec![0; VNET_HDR_LEN + MAX_FRAME_LPE],
            complained: 0,
        };
        e.reset();
        Ok(e)
    }

    fn config_space(model: Model, out: Option<&MsiOut>) -> (ConfigSpace, Option<e82574::Vectors>) {
        if model == Model::E82574l {
            let (cfg, v) = e82574::config_space(out.map(|o| o.0.clone()), out.map(|o| o.1.clone()));
            return (cfg, Some(v));
        }
        let ids = Ids {
            vendor: VENDOR_ID,
            device: DEVICE_ID,
            revision: REVISION,
            class: 0x020000,
            subsystem_vendor: SUBSYSTEM_VENDOR_ID,
            subsystem: SUBSYSTEM_ID,
        };
        let mut cfg = ConfigSpace::endpoint(&ids, false);
        cfg.set_interrupt_pin(1);
        cfg.set_u8(reg::CACHE_LINE_SIZE, 0x10);
        cfg.add_bar(usize::from(MMIO_BAR), BarSpec::mem32(MMIO_SIZE));
        cfg.add_bar(usize::from(IO_BAR), BarSpec::io(IO_SIZE));
        (cfg, None)
    }

    /// Which card this is.
    pub fn model(&self) -> Model {
        self.model
    }

    /// Where the 82574's MSI-X vectors (five) and MSI vector (one) are
    /// delivered from the next [`E1000::attach`] on; the 82540EM has
    /// neither and ignores them.
    pub fn set_msi_vectors(&mut self, msix: Arc<dyn MsiVectors>, msi: Arc<dyn MsiVectors>) {
        self.msi_out = Some((msix, msi));
    }

    /// Puts the card, as at power-on, on a (new) machine: its RAM and its
    /// INTx pin.
    pub fn attach(&mut self, mem: Memory, intx: Arc<IntxPin>) {
        let (cfg, ext) = Self::config_space(self.model, self.msi_out.as_ref());
        self.cfg = cfg;
        self.ext = ext;
        self.mem = Some(mem);
        self.intx = intx;
        self.reset();
    }

    /// The MAC's registers at reset, with the address in RAL0/RAH0 and the
    /// link as the back-end has it.
    fn reset(&mut self) {
        if self.model == Model::E82574l {
            e82574::reset_regs(self);
            self.eeprom =
                Eeprom::with_template(&eeprom::TEMPLATE_82574, e82574::DEVICE_ID, self.mac);
            self.reset_common(Phy::new_82574(true));
            return;
        }
        self.regs.fill(0);
        self.regs[idx(PBA)] = 0x0010_0030;
        self.regs[idx(LEDCTL)] = 0x602;
        self.regs[idx(CTRL)] = ctrl::SWDPIN2 | ctrl::SWDPIN0 | ctrl::SPD_1000 | ctrl::SLU;
        self.regs[idx(STATUS)] = 0x8000_0000
            | status::GIO_MASTER_ENABLE
            | status::ASDV_1000
            | status::MTXCKOK
            | status::SPEED_1000
            | status::FD;
        // MANC: EN_MNG2HOST, RCV_TCO_EN, ARP_EN, 0298_EN, RMCP_EN.
        self.regs[idx(MANC)] = 0x0020_0000 | 0x0002_0000 | 0x0000_2000 | 0x0000_0200 | 0x0000_0100;
        self.eeprom = Eeprom::new(DEVICE_ID, self.mac);
        self.reset_common(Phy::new(true));
    }

    /// The MAC address in RAL0/RAH0, valid.
    fn set_mac_filter(&mut self) {
        let m = self.mac;
        self.regs[idx(RA)] = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
        self.regs[idx(RA) + 1] = u32::from(u16::from_le_bytes([m[4], m[5]])) | RAH_AV;
    }

    /// What both cards' resets share: the MAC filter, no packet under
    /// way, `phy` with the link as the back-end has it.
    fn reset_common(&mut self, phy: Phy) {
        self.set_mac_filter();
        self.tx.clear();
        self.queued.clear();
        self.ioaddr = 0;
        let up = self.admin_up && self.backend.connected();
        self.phy = phy;
        self.phy.set_link(up);
        self.link_up = up;
        if up {
            self.regs[idx(STATUS)] |= status::LU;
        }
        self.update_irq();
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The eventfd the card signals when the rings need the event loop.
    pub fn kick_fd(&self) -> RawFd {
        self.kick.as_raw_fd()
    }

    fn kick(&self) {
        if let Err(error) = self.kick.write(1) {
            tracing::warn!(%error, "e1000: cannot signal the event loop");
        }
    }

    fn complain(&mut self, kind: Complaint, what: &str) {
        let card = self.model.name();
        if self.complained & kind as u32 == 0 {
            self.complained |= kind as u32;
            tracing::warn!("{card}: {what} (further ones logged at debug level)");
        } else {
            tracing::debug!("{card}: {what}");
        }
    }

    fn reg(&self, offset: u32) -> u32 {
        self.regs[idx(offset)]
    }

    fn set_reg(&mut self, offset: u32, v: u32) {
        self.regs[idx(offset)] = v;
    }

    /// Raises the causes in `bits` (ICS semantics) and updates the line.
    fn set_ics(&mut self, bits: u32) {
        let v = self.reg(ICR) | bits;
        self.set_reg(ICR, v);
        self.set_reg(ICS, v);
        self.update_irq();
    }

    fn update_irq(&mut self) {
        if self.model == Model::E82574l {
            e82574::update_interrupts(self);
            return;
        }
        let level = self.reg(IMS) & self.reg(ICR) != 0;
        if let Err(error) = self.intx.set_level(level) {
            tracing::warn!(%error, "e1000: cannot drive INTx");
        }
    }

    fn set_link(&mut self, up: bool) {
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        self.phy.set_link(up);
        let s = self.reg(STATUS);
        self.set_reg(STATUS, if up { s | status::LU } else { s & !status::LU });
        self.set_ics(icr::LSC);
    }

    /// A register read of BAR 0 at `offset` (dword-aligned).
    pub fn read_reg(&mut self, offset: u32) -> u32 {
        let offset = offset & !3 & (MMIO_SIZE as u32 - 1);
        if self.model == Model::E82574l {
            if let Some(v) = e82574::read(self, offset) {
                return v;
            }
        }
        match offset {
            ICR => {
                let v = self.reg(ICR);
                self.set_reg(ICR, 0);
                self.set_reg(ICS, 0);
                self.update_irq();
                v
            }
            EECD => self.eeprom.read_eecd(),
            EERD => self.eeprom.eerd(self.reg(EERD)),
            o if (STATS_START..STATS_END).contains(&o) => {
                let v = self.reg(o);
                self.set_reg(o, 0);
                v
            }
            o if plain(o) => self.reg(o),
            o => {
                tracing::trace!(offset = o, "e1000: read of an unemulated register");
                0
            }
        }
    }

    /// A register write of BAR 0 at `offset` (dword-aligned).
    pub fn write_reg(&mut self, offset: u32, val: u32) {
        let offset = offset & !3 & (MMIO_SIZE as u32 - 1);
        if self.model == Model::E82574l && e82574::write(self, offset, val) {
            return;
        }
        match offset {
            // Self-clearing reset bits; QEMU leaves the registers as they
            // are, and so does rvirt (the driver reprograms them).
            CTRL => self.set_reg(CTRL, val & !(ctrl::RST | ctrl::PHY_RST)),
            STATUS => {}
            EECD => {
                self.eeprom.write_eecd(val);
                self.set_reg(EECD, val);
            }
            EERD => self.set_reg(EERD, val),
            MDIC => {
                let (v, restarted) = self.phy.mdic(val);
                self.set_reg(MDIC, v);
                if val & phy::mdic::INT_EN != 0 {
                    self.set_ics(icr::MDAC);
                }
                if restarted {
                    self.set_ics(icr::LSC);
                }
            }
            ICR => {
                let v = self.reg(ICR) & !val;
                self.set_reg(ICR, v);
                self.set_reg(ICS, v);
                self.update_irq();
            }
            ICS => self.set_ics(val),
            IMS => {
                let v = self.reg(IMS) | val;
                self.set_reg(IMS, v);
                self.update_irq();
            }
            IMC => {
                let v = self.reg(IMS) & !val;
                self.set_reg(IMS, v);
                self.update_irq();
            }
            RCTL => {
                self.set_reg(RCTL, val);
                self.kick();
            }
            TCTL => {
                self.set_reg(TCTL, val);
                if val & tctl::EN == 0 {
                    self.tx.clear();
                }
                self.kick();
            }
            TDT | RDT => {
                self.set_reg(offset, val & 0xffff);
                self.kick();
            }
            TDH | RDH => self.set_reg(offset, val & 0xffff),
            // Rings are 128-byte multiples up to 1 MiB.
            TDLEN | RDLEN => self.set_reg(offset, val & 0xf_ff80),
            TDBAL | RDBAL => self.set_reg(offset, val & !0xf),
            o if (STATS_START..STATS_END).contains(&o) => {}
            o if plain(o) => self.set_reg(o, val),
            o => tracing::trace!(offset = o, "e1000: write of an unemulated register"),
        }
    }

    fn ring_base(&self, low: u32, high: u32) -> u64 {
        (u64::from(self.reg(high)) << 32) | u64::from(self.reg(low))
    }

    /// Descriptors in a ring of `len` bytes.
    fn ring_size(len: u32) -> u32 {
        len / DESC_LEN as u32
    }

    /// Whether the receive ring has room for `total` bytes.
    fn has_rx_bufs(&self, total: usize) -> bool {
        let (head, tail) = (self.reg(RDH), self.reg(RDT));
        let size = Self::ring_size(self.reg(RDLEN));
        if size == 0 || head >= size || tail >= size {
            return false;
        }
        let bufs = match head.cmp(&tail) {
            std::cmp::Ordering::Less => tail - head,
            std::cmp::Ordering::Greater => size + tail - head,
            std::cmp::Ordering::Equal => return false,
        };
        total <= bufs as usize * self.rx_buf_size()
    }

    /// The receive buffer size the guest chose.
    fn rx_buf_size(&self) -> usize {
        match self.model {
            Model::E82574l => {
                e82574::rx_buf_size(self).unwrap_or_else(|| rx_buf_size(self.reg(RCTL)))
            }
            Model::E82540em => rx_buf_size(self.reg(RCTL)),
        }
    }

    /// Whether a frame could be taken from the back-end now.
    pub fn rx_ready(&self) -> bool {
        self.mem.is_some()
            && self.bus_master()
            && self.link_up
            && self.reg(RCTL) & rctl::EN != 0
            && self.has_rx_bufs(1)
    }

    /// The descriptor the event loop polls for incoming frames right now:
    /// the back-end's while the ring has room, its reconnection timer
    /// while it is down, else none (the frames wait in the host).
    pub fn poll_fd(&self) -> Option<RawFd> {
        if !self.backend.connected() {
            return self.backend.reconnect_fd();
        }
        self.rx_ready().then(|| self.backend.raw_fd()).flatten()
    }

    /// The descriptor to poll for writability while the back-end pushes
    /// back.
    pub fn poll_out_fd(&self) -> Option<RawFd> {
        if self.queued.is_empty() && !self.backend.has_pending() {
            return None;
        }
        self.backend.writable_fd()
    }

    /// The event loop's work: reads the kick, follows the back-end's link,
    /// sends what the transmit ring holds and receives what the back-end
    /// has, within a budget (level-triggered polling brings the loop back
    /// for the rest).
    pub fn process(&mut self) {
        let _ = self.kick.read();
        if !self.backend.connected() {
            match self.backend.reconnect() {
                Ok(true) => {}
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "e1000: the back-end is still down"),
            }
        }
        self.set_link(self.admin_up && self.backend.connected());
        if self.backend.has_pending() {
            if let Err(error) = self.backend.flush() {
                self.backend_failed(&error);
            }
        }
        self.flush_queued();
        if self.queued.is_empty() {
            self.process_tx();
        }
        self.process_rx();
    }

    fn backend_failed(&mut self, error: &io::Error) {
        self.complain(Complaint::Backend, &format!("the back-end failed: {error}"));
        self.backend.disconnect();
        self.queued.clear();
        self.set_link(self.admin_up && self.backend.connected());
    }

    /// QMP `set_link`: the link as the guest sees it (STATUS.LU, the PHY's
    /// link bit, LSC on a change); while down nothing is sent or received,
    /// as on QEMU.
    pub fn set_link_up(&mut self, up: bool) {
        self.admin_up = up;
        self.set_link(up && self.backend.connected());
        // Receiving may resume: the event loop asks for descriptors again.
        self.kick();
    }

    /// Sends one frame (the vnet header in front, zero: the card did its
    /// own offloads). Returns false when the back-end pushed back.
    fn send_frame(&mut self, frame: Vec<u8>) -> bool {
        if !self.link_up {
            return true;
        }
        match self.backend.send(&frame) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if self.backend.writable_fd().is_some() && self.queued.len() < MAX_QUEUED {
                    self.queued.push_back(frame);
                    false
                } else {
                    true
                }
            }
            Err(e) => {
                self.backend_failed(&e);
                true
            }
        }
    }

    fn flush_queued(&mut self) {
        while let Some(frame) = self.queued.pop_front() {
            match self.backend.send(&frame) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.queued.push_front(frame);
                    return;
                }
                Err(e) => {
                    self.backend_failed(&e);
                    return;
                }
            }
        }
    }

    /// Whether the card may touch guest memory (COMMAND's Bus Master).
    fn bus_master(&self) -> bool {
        self.cfg.read_u16(reg::COMMAND) & command::MASTER != 0
    }

    fn process_tx(&mut self) {
        if self.reg(TCTL) & tctl::EN == 0 || !self.bus_master() {
            return;
        }
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let size = Self::ring_size(self.reg(TDLEN));
        let start = self.reg(TDH);
        if size == 0 || start >= size {
            return;
        }
        let base = self.ring_base(TDBAL, TDBAH);
        let mut cause = icr::TXQE;
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut done = 0usize;
        while self.reg(TDH) != self.reg(TDT) && done < BUDGET {
            let head = self.reg(TDH);
            let at = base.wrapping_add(u64::from(head) * DESC_LEN as u64);
            let mut d = [0u8; DESC_LEN];
            if mem.read_slice(&mut d, GuestAddress(at)).is_err() {
                self.complain(
                    Complaint::TxDescriptor,
                    &format!("transmit descriptor at {at:#x} is outside guest memory"),
                );
                break;
            }
            let mut bad_buffer = false;
            let sent = self.tx.process(
                &d,
                &mut |addr, buf| {
                    let ok = mem.read_slice(buf, GuestAddress(addr)).is_ok();
                    bad_buffer |= !ok;
                    ok
                },
                &mut |frame| {
                    let mut f = Vec::with_capacity(VNET_HDR_LEN + frame.len());
                    f.resize(VNET_HDR_LEN, 0);
                    f.extend_from_slice(frame);
                    frames.push(f);
                },
            );
            if bad_buffer {
                self.complain(
                    Complaint::TxBuffer,
                    "a transmit buffer is outside guest memory: frame dropped",
                );
            }
            self.count_tx(sent);
            let every = self.model == Model::E82574l && e82574::tx_every_writeback(self);
            if tx::wants_writeback(&d) || every {
                // The status byte is the descriptor's 13th.
                let _ = mem.write_slice(&[d[12] | tx::STAT_DD], GuestAddress(at + 12));
                cause |= match self.model {
                    Model::E82574l => e82574::tx_cause(self),
                    Model::E82540em => icr::TXDW,
                };
            }
            let next = if head + 1 >= size { 0 } else { head + 1 };
            self.set_reg(TDH, next);
            done += 1;
            for f in frames.drain(..) {
                if !self.send_frame(f) {
                    // The rest waits in the queue behind it.
                }
            }
            if next == start {
                // Around the whole ring (a tail past the end): stop.
                break;
            }
            if !self.queued.is_empty() {
                break;
            }
        }
        if done > 0 {
            self.set_ics(cause);
        }
        if self.reg(TDH) != self.reg(TDT) && self.queued.is_empty() && done == BUDGET {
            // More to do: come back after the rest of the loop's work.
            self.kick();
        }
    }

    fn count_tx(&mut self, sent: tx::Sent) {
        if sent.frames == 0 {
            return;
        }
        let add = |r: &mut [u32], lo: u32, bytes: u64| {
            let v = (u64::from(r[idx(lo + 4)]) << 32 | u64::from(r[idx(lo)])).wrapping_add(bytes);
            r[idx(lo)] = v as u32;
            r[idx(lo + 4)] = (v >> 32) as u32;
        };
        let r = &mut self.regs;
        r[idx(TPT)] = r[idx(TPT)].saturating_add(sent.frames);
        r[idx(GPTC)] = r[idx(GPTC)].saturating_add(sent.frames);
        add(r, TOTL, sent.bytes);
        add(r, GOTCL, sent.bytes);
    }

    fn process_rx(&mut self) {
        for _ in 0..BUDGET {
            if !self.rx_ready() {
                return;
            }
            let mut buf = std::mem::take(&mut self.rx_buf);
            let got = self.backend.recv(&mut buf);
            match got {
                Ok(n) if n > VNET_HDR_LEN => self.receive(&buf[VNET_HDR_LEN..n]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.rx_buf = buf;
                    return;
                }
                Err(e) => {
                    self.rx_buf = buf;
                    self.backend_failed(&e);
                    return;
                }
            }
            self.rx_buf = buf;
        }
    }

    /// Whether the receive filter takes `frame`.
    fn accepts(&self, frame: &[u8]) -> bool {
        let rctl = self.reg(RCTL);
        let dst = &frame[..6];
        if dst == [0xff; 6] {
            return rctl & rctl::BAM != 0 || rctl & rctl::MPE != 0;
        }
        if dst[0] & 1 != 0 {
            if rctl & rctl::MPE != 0 {
                return true;
            }
            // The multicast table, hashed on 12 bits of the address that
            // RCTL.MO picks.
            let shift = [4u32, 3, 2, 0][((rctl >> rctl::MO_SHIFT) & 3) as usize];
            let f = ((u32::from(dst[5]) << 8 | u32::from(dst[4])) >> shift) & 0xfff;
            return self.reg(MTA + (f >> 5) * 4) & (1 << (f & 0x1f)) != 0;
        }
        if rctl & rctl::UPE != 0 {
            return true;
        }
        (0..16).any(|i| {
            let lo = self.reg(RA + i * 8);
            let hi = self.reg(RA + i * 8 + 4);
            hi & RAH_AV != 0
                && lo.to_le_bytes() == dst[..4]
                && (hi as u16).to_le_bytes() == dst[4..6]
        })
    }

    /// Puts one frame from the back-end into the receive ring.
    fn receive(&mut self, frame: &[u8]) {
        let Some(mem) = self.mem.clone() else {
            return;
        };
        let mut padded = [0u8; MIN_FRAME];
        let frame = if frame.len() < MIN_FRAME {
            padded[..frame.len()].copy_from_slice(frame);
            &padded[..]
        } else {
            frame
        };
        let rctl = self.reg(RCTL);
        let max = if rctl & rctl::LPE != 0 {
            MAX_FRAME_LPE
        } else {
            MAX_FRAME
        };
        if frame.len() > max || !self.accepts(frame) {
            return;
        }
        let e1000e = self.model == Model::E82574l;
        if e1000e && e82574::packet_split(self) {
            self.complain(
                Complaint::RxDescriptor,
                "packet-split receive descriptors are not supported: frame dropped",
            );
            let r = &mut self.regs;
            r[idx(MPC)] = r[idx(MPC)].saturating_add(1);
            return;
        }
        let extended = e1000e && e82574::extended_rx(self);
        let info = e1000e.then(|| e82574::rx_info(self, frame, extended));
        let size = frame.len();
        let total = size + if rctl & rctl::SECRC != 0 { 0 } else { 4 };
        if !self.has_rx_bufs(total) {
            self.overrun();
            return;
        }
        let buf_size = self.rx_buf_size();
        let ring = Self::ring_size(self.reg(RDLEN));
        let base = self.ring_base(RDBAL, RDBAH);
        let start = self.reg(RDH);
        let mut offset = 0usize;
        while offset < total {
            let head = self.reg(RDH);
            let at = base.wrapping_add(u64::from(head) * RX_DESC_LEN);
            let mut d = [0u8; RX_DESC_LEN as usize];
            if mem.read_slice(&mut d, GuestAddress(at)).is_err() {
                self.complain(
                    Complaint::RxDescriptor,
                    &format!("receive descriptor at {at:#x} is outside guest memory"),
                );
                self.overrun();
                return;
            }
            let addr = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
            let len = (total - offset).min(buf_size);
            let mut status = match info {
                // The 82574 writes the whole status (QEMU's e1000e).
                Some(_) => 0,
                None => d[12] & !(RXD_DD | RXD_EOP),
            };
            let mut written = 0u16;
            let mut eop = false;
            if addr != 0 {
                if offset < size {
                    let n = (size - offset).min(len);
                    if mem
                        .write_slice(&frame[offset..offset + n], GuestAddress(addr))
                        .is_err()
                    {
                        self.complain(
                            Complaint::RxBuffer,
                            &format!("receive buffer at {addr:#x} is outside guest memory"),
                        );
                    }
                }
                offset += len;
                written = len as u16;
                eop = offset >= total;
                d[8..10].copy_from_slice(&(len as u16).to_le_bytes());
                if eop {
                    status |= RXD_EOP | info.as_ref().map_or(RXD_IXSM, |i| i.status as u8);
                }
            }
            // The descriptor first, then its Done bit, as the hardware
            // (and QEMU) write them.
            let done_at = if extended {
                // The extended write-back: IP ID, status and errors,
                // length; the buffer address is overwritten.
                let i = info.as_ref().filter(|_| eop);
                let st = u32::from(status) | i.map_or(0, |i| i.status & !0xff);
                d = [0; RX_DESC_LEN as usize];
                d[4..6].copy_from_slice(&i.and_then(|i| i.ip_id).unwrap_or(0).to_le_bytes());
                d[8..12].copy_from_slice(&st.to_le_bytes());
                d[12..14].copy_from_slice(&written.to_le_bytes());
                8
            } else {
                if info.is_some() {
                    // Length, no checksum, status, no errors or VLAN.
                    d[8..10].copy_from_slice(&written.to_le_bytes());
                    d[10..12].fill(0);
                    d[13..16].fill(0);
                }
                d[12] = status;
                12
            };
            let _ = mem.write_slice(&d, GuestAddress(at));
            let _ = mem.write_slice(&[status | RXD_DD], GuestAddress(at + done_at));
            let next = if head + 1 >= ring { 0 } else { head + 1 };
            self.set_reg(RDH, next);
            if next == start && offset < total {
                self.overrun();
                return;
            }
        }
        self.count_rx(frame, size);
        let (head, mut tail) = (self.reg(RDH), self.reg(RDT));
        if tail < head {
            tail += ring;
        }
        let shift = ((rctl >> rctl::RDMTS_SHIFT) & 3) + 1;
        let low = u64::from(tail - head) * RX_DESC_LEN <= u64::from(self.reg(RDLEN) >> shift);
        let cause = match self.model {
            Model::E82574l => e82574::rx_cause(self, low),
            Model::E82540em => icr::RXT0 | if low { icr::RXDMT0 } else { 0 },
        };
        self.set_ics(cause);
    }

    /// No room for a frame: it is lost (Receiver Overrun).
    fn overrun(&mut self) {
        let r = &mut self.regs;
        r[idx(RNBC)] = r[idx(RNBC)].saturating_add(1);
        r[idx(MPC)] = r[idx(MPC)].saturating_add(1);
        self.set_ics(icr::RXO);
    }

    fn count_rx(&mut self, frame: &[u8], size: usize) {
        let add = |r: &mut [u32], lo: u32, bytes: u64| {
            let v = (u64::from(r[idx(lo + 4)]) << 32 | u64::from(r[idx(lo)])).wrapping_add(bytes);
            r[idx(lo)] = v as u32;
            r[idx(lo + 4)] = (v >> 32) as u32;
        };
        let bytes = size as u64 + 4;
        let r = &mut self.regs;
        r[idx(TPR)] = r[idx(TPR)].saturating_add(1);
        r[idx(GPRC)] = r[idx(GPRC)].saturating_add(1);
        if frame[..6] == [0xff; 6] {
            r[idx(BPRC)] = r[idx(BPRC)].saturating_add(1);
        } else if frame[0] & 1 != 0 {
            r[idx(MPRC)] = r[idx(MPRC)].saturating_add(1);
        }
        add(r, TORL, bytes);
        add(r, GORCL, bytes);
    }

    fn access(&mut self, bar: u8, offset: u64, data: &mut [u8], write: bool) {
        let (mmio_bar, io_bar) = self.model.bars();
        let e1000e = self.model == Model::E82574l;
        if e1000e && bar == e82574::MSIX_BAR {
            if let Some(x) = &self.ext {
                if write {
                    x.write(offset, data);
                } else {
                    x.read(offset, data);
                }
            }
            return;
        }
        let reg_at = |this: &mut Self, offset: u64| -> Option<u32> {
            match bar {
                b if b == mmio_bar => Some(offset as u32),
                // The 82574 reaches the registers only (QEMU: the flash
                // and the rest past them read zero).
                b if b == io_bar && offset >> 2 == 1 && !(e1000e && this.ioaddr >= 0x1ffff) => {
                    Some(this.ioaddr)
                }
                _ => None,
            }
        };
        if bar == io_bar && offset < 4 {
            // IOADDR.
            let mut b = self.ioaddr.to_le_bytes();
            let o = offset as usize;
            let n = data.len().min(4 - o);
            if write {
                b[o..o + n].copy_from_slice(&data[..n]);
                self.ioaddr = u32::from_le_bytes(b);
            } else {
                data[..n].copy_from_slice(&b[o..o + n]);
            }
            return;
        }
        let Some(base) = reg_at(self, offset & !3) else {
            if !write {
                data.fill(0);
            }
            return;
        };
        for (chunk, part) in data.chunks_mut(4).enumerate() {
            let shift = (offset & 3) as usize;
            let at = base.wrapping_add(chunk as u32 * 4);
            if shift + part.len() > 4 {
                // Unaligned across registers: nothing a driver does.
                if !write {
                    part.fill(0);
                }
                continue;
            }
            if write {
                let mut b = self.regs[idx(at & !3 & (MMIO_SIZE as u32 - 1))].to_le_bytes();
                b[shift..shift + part.len()].copy_from_slice(part);
                self.write_reg(at, u32::from_le_bytes(b));
            } else {
                let v = self.read_reg(at).to_le_bytes();
                part.copy_from_slice(&v[shift..shift + part.len()]);
            }
        }
    }
}

impl PciFunction for E1000 {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        // STATUS's Interrupt Status follows the pin.
        let s = self.cfg.read_u16(reg::STATUS) & !pci_status::INTERRUPT;
        let s = s | if self.intx.level() {
            pci_status::INTERRUPT
        } else {
            0
        };
        self.cfg.set_u16(reg::STATUS, s);
        self.cfg.read(offset, data);
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
        if overlaps(offset, data.len(), reg::COMMAND, 2) {
            let cmd = self.cfg.read_u16(reg::COMMAND);
            self.intx.set_disabled(cmd & command::INTX_DISABLE != 0);
            if cmd & command::MASTER != 0 {
                // Frames may flow now (QEMU's e1000e starts receiving).
                self.kick();
            }
        }
        if let Some(x) = self.ext.as_mut() {
            x.config_written(&self.cfg, offset, data.len());
            // MSI or MSI-X turned on or off: INTx follows.
            self.update_irq();
        }
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        self.access(bar, offset, data, false);
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        let mut d = data.to_vec();
        self.access(bar, offset, &mut d, true);
    }
}
