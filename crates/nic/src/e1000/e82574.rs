//! What the 82574L (QEMU 7.2's `e1000e`) adds to the core the 82540EM
//! shares: its PCI Express function (8086:10d3 rev 0, subsystem
//! 8086:0000; BAR 0 the 128 KiB of registers, BAR 1 a 128 KiB flash
//! window reading zero, BAR 2 IOADDR/IODATA, BAR 3 the MSI-X table and
//! PBA of 5 vectors; capabilities PM at 0xc8, MSI at 0xd0, PCI Express at
//! 0xe0 and MSI-X at 0xa0 as QEMU places them), its registers (CTRL_EXT's
//! interrupt bits, IAM, EIAC, IVAR, RFCTL, PBACLR, EITR and the rest kept
//! as written), the interrupt logic of MSI-X (IVAR maps RXQ0, TXQ0 and
//! "other" causes to vectors; EIAC clears a cause when its vector fires;
//! IAM masks under IAME and EIAME), MSI and INTx, and the extended receive
//! descriptors (RFCTL.EXTEN).
//!
//! What a guest could notice against QEMU: no AER or serial number
//! extended capabilities; receive checksums are not verified (IP frames
//! carry "ignore checksum", so the guest checks them); no RSS (one queue
//! each way, as Linux's driver uses); packet-split receive descriptors
//! are refused (frames are dropped, counted as missed, and logged once);
//! no interrupt moderation (EITR, ITR and the delay timers are kept).

use std::io;
use std::sync::Arc;

use rvirt_pci::bar::BarSpec;
use rvirt_pci::caps;
use rvirt_pci::config::{reg, ConfigSpace, Ids};
use rvirt_pci::msi::{Msi, MsiCapability};
use rvirt_pci::msix::{Msix, MsixCapability};
use rvirt_platform::{InterruptLine, MsiMessage, MsiVectors};

use super::regs::e82574::{self as r, ctrl_ext, icr as xicr, ivar};
use super::regs::*;
use super::{idx, E1000};

/// The 82574L.
pub const DEVICE_ID: u16 = 0x10d3;
pub const REVISION: u8 = 0;
/// QEMU's default subsystem IDs for it (`subsys_ven`, `subsys`).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x8086;
pub const SUBSYSTEM_ID: u16 = 0;
/// BAR 0: the registers (as the 82540EM's).
pub const MMIO_BAR: u8 = 0;
pub const MMIO_SIZE: u64 = 0x20000;
/// BAR 1: the flash window, which reads zero.
pub const FLASH_BAR: u8 = 1;
pub const FLASH_SIZE: u64 = 0x20000;
/// BAR 2: IOADDR at 0, IODATA at 4.
pub const IO_BAR: u8 = 2;
pub const IO_SIZE: u64 = 0x20;
/// BAR 3: the MSI-X table at 0 and PBA at 0x2000.
pub const MSIX_BAR: u8 = 3;
pub const MSIX_SIZE: u64 = 0x4000;
/// The MSI-X vectors: RXQ0, RXQ1, TXQ0, TXQ1, other.
pub const VECTORS: u16 = 5;

const MSIX_CAP: u16 = 0xa0;
const PM_CAP: u16 = 0xc8;
const MSI_CAP: u16 = 0xd0;
const PCIE_CAP: u16 = 0xe0;
/// PM capabilities: version 1.1, device-specific initialization.
const PMC: u16 = 0x2 | 0x20;
/// QEMU's floor for ITR and EITR (`E1000E_MIN_XITR`).
const MIN_XITR: u32 = 500;

/// Delivers nothing: the vectors of a card not yet on a machine.
struct Unconnected;

impl MsiVectors for Unconnected {
    fn count(&self) -> u16 {
        VECTORS
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> io::Result<()> {
        Ok(())
    }
}

/// The 82574's message-signalled interrupts and the state of their
/// delivery.
pub(super) struct Vectors {
    msix_cap: MsixCapability,
    pub(super) msix: Msix,
    msi_cap: MsiCapability,
    msi: Msi,
    /// Causes already signalled by a message and not yet cleared (QEMU's
    /// `msi_causes_pending`): a message goes out for new causes only, so
    /// a cause left set does not storm the guest.
    causes_pending: u32,
}

/// The function's configuration space and its vectors, delivered through
/// `msix` and `msi` (unconnected until the VMM wires them).
pub(super) fn config_space(
    msix: Option<Arc<dyn MsiVectors>>,
    msi: Option<Arc<dyn MsiVectors>>,
) -> (ConfigSpace, Vectors) {
    let ids = Ids {
        vendor: super::VENDOR_ID,
        device: DEVICE_ID,
        revision: REVISION,
        class: 0x020000,
        subsystem_vendor: SUBSYSTEM_VENDOR_ID,
        subsystem: SUBSYSTEM_ID,
    };
    let mut cfg = ConfigSpace::endpoint(&ids, true);
    cfg.set_interrupt_pin(1);
    cfg.set_u8(reg::CACHE_LINE_SIZE, 0x10);
    cfg.add_bar(usize::from(MMIO_BAR), BarSpec::mem32(MMIO_SIZE));
    cfg.add_bar(usize::from(FLASH_BAR), BarSpec::mem32(FLASH_SIZE));
    cfg.add_bar(usize::from(IO_BAR), BarSpec::io(IO_SIZE));
    cfg.add_bar(usize::from(MSIX_BAR), BarSpec::mem32(MSIX_SIZE));
    // In QEMU's order, each new one heading the list: PM, MSI, PCI
    // Express, MSI-X.
    let msix_cap = MsixCapability::add_at(
        &mut cfg,
        MSIX_CAP,
        VECTORS,
        (MSIX_BAR, 0),
        (MSIX_BAR, 0x2000),
    );
    caps::add_pcie_v1_endpoint_at(&mut cfg, PCIE_CAP);
    let msi_cap = MsiCapability::add_at(&mut cfg, MSI_CAP, 1, false);
    caps::add_pm_at(&mut cfg, PM_CAP, PMC);
    let unconnected = || Arc::new(Unconnected) as Arc<dyn MsiVectors>;
    let vectors = Vectors {
        msix_cap,
        msix: Msix::new(VECTORS, msix.unwrap_or_else(unconnected)),
        msi_cap,
        msi: Msi::new(msi_cap, msi.unwrap_or_else(unconnected)),
        causes_pending: 0,
    };
    (cfg, vectors)
}

impl Vectors {
    /// A configuration write reached `offset`: follow MSI-X's and MSI's
    /// control registers.
    pub(super) fn config_written(&mut self, cfg: &ConfigSpace, offset: u16, len: usize) {
        if self.msix_cap.control_written(offset, len) {
            let (enabled, masked) = self.msix_cap.control(cfg);
            self.msix.set_control(enabled, masked);
        }
        if self.msi_cap.written(offset, len) {
            self.msi.config_written(cfg);
        }
    }

    /// A read of BAR 3.
    pub(super) fn read(&self, offset: u64, data: &mut [u8]) {
        if let Some(o) = self.msix_cap.in_table(MSIX_BAR, offset) {
            self.msix.read_table(o, data);
        } else if let Some(o) = self.msix_cap.in_pba(MSIX_BAR, offset) {
            self.msix.read_pba(o, data);
        } else {
            data.fill(0);
        }
    }

    /// A write of BAR 3 (the PBA is read-only).
    pub(super) fn write(&self, offset: u64, data: &[u8]) {
        if let Some(o) = self.msix_cap.in_table(MSIX_BAR, offset) {
            self.msix.write_table(o, data);
        }
    }
}

/// The registers at reset (QEMU's `e1000e_mac_reg_init`), the MAC in
/// RAL0/RAH0 and the link as the back-end has it written by the caller.
pub(super) fn reset_regs(e: &mut E1000) {
    let regs = &mut e.regs;
    regs.fill(0);
    let mut set = |o: u32, v: u32| regs[idx(o)] = v;
    set(PBA, 0x0014_0014);
    set(
        LEDCTL,
        (1 << 1) | (1 << 8) | (1 << 9) | (1 << 15) | (1 << 17) | (1 << 18),
    );
    set(r::EXTCNF_CTRL, 1 << 3);
    set(r::EEMNGCTL, 1 << 31);
    set(r::RXDCTL, 1 << 16);
    set(TIPG, 0x8 | (0x8 << 10) | (0x6 << 20));
    set(
        CTRL,
        ctrl::FD | ctrl::SWDPIN2 | ctrl::SWDPIN0 | ctrl::SPD_1000 | ctrl::SLU | r::ctrl::ADVD3WUC,
    );
    set(STATUS, status::ASDV_1000);
    // BSIZE0 256 bytes, BSIZE1 and BSIZE2 4 KiB.
    set(r::PSRCTL, 2 | (4 << 8) | (4 << 16));
    set(r::TARC0, 0x3 | (1 << 10));
    set(r::TARC1, 0x3 | (1 << 10));
    set(EECD, r::eecd::AUTO_RD | super::eeprom::eecd::PRES);
    set(EERD, super::eeprom::eerw::DONE);
    // GCR: L0s adjust and the L1 entry latency.
    set(r::GCR, (1 << 9) | (1 << 22) | (1 << 23));
    set(r::POEMB, 0x30d);
    // MANC: DIS_IP_CHK_ARP; FACTPS: LAN0 on.
    set(MANC, 1 << 1);
    set(r::FACTPS, (1 << 2) | 0x2000_0000);
    set(SWSM, 1);
    // RXCSUM: IP and TCP/UDP offload.
    set(RXCSUM, (1 << 8) | (1 << 9));
    set(ITR, MIN_XITR);
    for v in 0..u32::from(VECTORS) {
        set(r::EITR + 4 * v, MIN_XITR);
    }
    if let Some(v) = e.ext.as_mut() {
        v.causes_pending = 0;
    }
}

/// STATUS as read: QEMU's `e1000e_get_status` (GIO master enable unless
/// disabled, full duplex, the speed CTRL forces or 1000).
fn status(e: &E1000) -> u32 {
    let ctl = e.reg(CTRL);
    let mut s = e.reg(STATUS) | status::FD;
    if ctl & r::ctrl::GIO_MASTER_DISABLE == 0 {
        s |= status::GIO_MASTER_ENABLE;
    }
    if ctl & r::ctrl::FRCDPX != 0 && ctl & ctrl::FD == 0 {
        s &= !status::FD;
    }
    let forced = ctl & r::ctrl::FRCSPD != 0 || e.reg(CTRL_EXT) & ctrl_ext::SPD_BYPS != 0;
    s | match (forced, (ctl & r::ctrl::SPD_SEL) >> 8) {
        (true, 0) => 0,
        (true, 1) => 1 << 6,
        _ => status::SPEED_1000,
    }
}

/// Registers the 82574 keeps as written beside the 82540EM's.
fn plain(offset: u32) -> bool {
    matches!(
        offset,
        r::EIAC
            | r::IAM
            | r::IVAR
            | r::EXTCNF_CTRL
            | r::EXTCNF_SIZE
            | r::EEMNGCTL
            | r::PSRCTL
            | r::RXDCTL
            | r::TARC0
            | r::TARC1
            | r::RFCTL
            | r::MRQC
            | r::GCR2
            | r::POEMB
            | r::FACTPS
    ) || (r::EITR..r::EITR_END).contains(&offset)
        || (r::RETA..r::RETA_END).contains(&offset)
        || (r::RSSRK..r::RSSRK_END).contains(&offset)
}

/// A register read the 82574 answers its own way; `None` for the core's.
pub(super) fn read(e: &mut E1000, offset: u32) -> Option<u32> {
    Some(match offset {
        ICR => {
            let v = e.reg(ICR);
            // Clear on read when nothing is enabled or without MSI-X;
            // under MSI-X the vectors' EIAC clears causes instead.
            let msix = e.ext.as_ref().is_some_and(|x| x.msix.enabled());
            if e.reg(IMS) == 0 || !msix {
                e.set_reg(ICR, 0);
            }
            if v & xicr::ASSERTED != 0 && e.reg(CTRL_EXT) & ctrl_ext::IAME != 0 {
                e.set_reg(ICR, 0);
                let ims = e.reg(IMS) & !e.reg(r::IAM);
                e.set_reg(IMS, ims);
            }
            e.update_irq();
            v
        }
        STATUS => status(e),
        EECD => e.reg(EECD),
        EERD => e.reg(EERD),
        SWSM => {
            // Reading takes the semaphore.
            let v = e.reg(SWSM);
            e.set_reg(SWSM, v | 1);
            v
        }
        ITR => e.reg(ITR),
        o if (STATS_END..r::STATS_END).contains(&o) => {
            let v = e.reg(o);
            e.set_reg(o, 0);
            v
        }
        o if plain(o) => e.reg(o),
        _ => return None,
    })
}

/// A register write the 82574 handles its own way; false for the core's.
pub(super) fn write(e: &mut E1000, offset: u32, val: u32) -> bool {
    match offset {
        CTRL => {
            e.set_reg(CTRL, val & !ctrl::RST);
            if val & ctrl::RST != 0 {
                // A software reset puts the permanent MAC back in RAL0.
                e.set_mac_filter();
            }
            if val & ctrl::PHY_RST != 0 {
                let s = e.reg(STATUS) | r::status::PHYRA;
                e.set_reg(STATUS, s);
            }
        }
        STATUS => {
            if val & r::status::PHYRA == 0 {
                let s = e.reg(STATUS) & !r::status::PHYRA;
                e.set_reg(STATUS, s);
            }
        }
        CTRL_EXT => e.set_reg(CTRL_EXT, val & !(ctrl_ext::ASDCHK | ctrl_ext::EE_RST)),
        EECD => {
            let ro = super::eeprom::eecd::PRES | r::eecd::AUTO_RD | r::eecd::SIZE_EX_MASK;
            let v = (e.reg(EECD) & ro) | (val & !ro);
            e.set_reg(EECD, v);
        }
        EERD => {
            let v = e.eeprom.eerw(val);
            e.set_reg(EERD, v);
        }
        ICR => {
            if e.reg(ICR) & xicr::ASSERTED != 0 && e.reg(CTRL_EXT) & ctrl_ext::IAME != 0 {
                let ims = e.reg(IMS) & !e.reg(r::IAM);
                e.set_reg(IMS, ims);
            }
            let mut v = e.reg(ICR) & !val;
            if val & xicr::OTHER != 0 {
                // Clearing "other" clears what it stands for (Windows'
                // driver relies on it, QEMU says).
                v &= !xicr::OTHER_CAUSES;
            }
            e.set_reg(ICR, v);
            e.update_irq();
        }
        IMS => {
            let valid = val & xicr::VALID;
            let ims = e.reg(IMS) | valid;
            e.set_reg(IMS, ims);
            let pba_clr = e.reg(CTRL_EXT) & ctrl_ext::PBA_CLR != 0;
            if valid & xicr::QUEUES != 0 && pba_clr {
                let fields = fields(e.reg(r::IVAR), valid);
                if let Some(x) = e.ext.as_ref().filter(|x| x.msix.enabled()) {
                    for (_, vector) in fields {
                        x.msix.clear_pending(vector);
                    }
                }
            }
            e.update_irq();
        }
        r::PBACLR => {
            let v = val & 0x1f;
            e.set_reg(r::PBACLR, v);
            if let Some(x) = e.ext.as_ref().filter(|x| x.msix.enabled()) {
                for vector in 0..VECTORS {
                    if v & (1 << vector) != 0 {
                        x.msix.clear_pending(vector);
                    }
                }
            }
        }
        ITR => e.set_reg(ITR, val & 0xffff),
        o if (r::EITR..r::EITR_END).contains(&o) => e.set_reg(o, val & 0xffff),
        RDTR | RADV | TADV | TIDV | r::RAID | FCAH | FCT | FCTTV => e.set_reg(offset, val & 0xffff),
        RSRPD => e.set_reg(RSRPD, val & 0xfff),
        FCRTH => e.set_reg(FCRTH, val & 0xfff8),
        FCRTL => e.set_reg(FCRTL, val & 0x8000_fff8),
        VET => e.set_reg(VET, val & 0xffff),
        o if (STATS_END..r::STATS_END).contains(&o) => {}
        o if plain(o) => e.set_reg(o, val),
        _ => return false,
    }
    true
}

/// The (cause, vector) pairs IVAR maps the queue causes in `causes` to,
/// for fields marked valid with a vector the table has.
fn fields(ivar: u32, causes: u32) -> Vec<(u32, u16)> {
    [
        (xicr::RXQ0, ivar::RXQ0_SHIFT),
        (xicr::RXQ1, ivar::RXQ1_SHIFT),
        (xicr::TXQ0, ivar::TXQ0_SHIFT),
        (xicr::TXQ1, ivar::TXQ1_SHIFT),
        (xicr::OTHER, ivar::OTHER_SHIFT),
    ]
    .into_iter()
    .filter(|&(cause, _)| causes & cause != 0)
    .filter_map(|(cause, shift)| {
        let f = (ivar >> shift) & 0xf;
        let vector = (f & ivar::VECTOR) as u16;
        (f & ivar::VALID != 0 && vector < VECTORS).then_some((cause, vector))
    })
    .collect()
}

/// Whether the guest turned MSI-X on.
pub(super) fn msix_enabled(e: &E1000) -> bool {
    e.ext.as_ref().is_some_and(|x| x.msix.enabled())
}

/// The interrupt state after ICR or IMS changed (QEMU's
/// `e1000e_update_interrupt_state`): "other" and "asserted" follow the
/// causes, ICS mirrors ICR, and the pending causes go out on MSI-X (each
/// queue cause to its IVAR vector), MSI or INTx.
pub(super) fn update_interrupts(e: &mut E1000) {
    let Some(mut x) = e.ext.take() else {
        return;
    };
    let msix = x.msix.enabled();
    let mut icr = e.reg(ICR);
    if msix && icr & xicr::OTHER_CAUSES != 0 {
        icr |= xicr::OTHER;
    }
    icr &= !xicr::ASSERTED;
    if icr != 0 {
        icr |= xicr::ASSERTED;
    }
    e.set_reg(ICR, icr);
    e.set_reg(ICS, icr);
    let pending = e.reg(IMS) & icr & !xicr::ASSERTED;
    if pending == 0 {
        x.causes_pending = 0;
    }
    let msi = x.msi.enabled();
    if msix || msi {
        let _ = e.intx.set_level(false);
        x.causes_pending &= pending;
        let mut new = pending & !x.causes_pending;
        if msix && new & xicr::OTHER_CAUSES != 0 && pending & xicr::OTHER != 0 {
            // A new "other" cause signals its vector even while OTHER
            // itself is still set from an earlier one (a driver that
            // clears LSC alone would miss the next link change).
            new |= xicr::OTHER;
        }
        if new != 0 {
            x.causes_pending |= new;
            if msix {
                notify_msix(e, &mut x, new);
            } else if let Err(error) = x.msi.trigger(0) {
                tracing::debug!(%error, "e1000e: cannot send the MSI");
            }
        }
    } else if let Err(error) = e.intx.set_level(pending != 0) {
        tracing::warn!(%error, "e1000e: cannot drive INTx");
    }
    e.ext = Some(x);
}

/// Fires the vectors of the queue causes in `causes` and applies the
/// auto-clear (EIAC) and auto-mask (IAM under EIAME, IMS without IAME)
/// of each.
fn notify_msix(e: &mut E1000, x: &mut Vectors, causes: u32) {
    let ivar = e.reg(r::IVAR);
    for cause in [xicr::RXQ0, xicr::RXQ1, xicr::TXQ0, xicr::TXQ1, xicr::OTHER] {
        if causes & cause == 0 {
            continue;
        }
        match fields(ivar, cause).first() {
            Some(&(_, vector)) => {
                if let Err(error) = x.msix.trigger(vector) {
                    tracing::debug!(%error, vector, "e1000e: cannot send an MSI-X message");
                }
            }
            None => tracing::debug!(cause, ivar, "e1000e: a cause with no valid IVAR vector"),
        }
        if e.reg(CTRL_EXT) & ctrl_ext::EIAME != 0 {
            let iam = e.reg(r::IAM) & !cause;
            e.set_reg(r::IAM, iam);
        }
        let clear = e.reg(r::EIAC) & cause;
        let icr = e.reg(ICR) & !clear;
        e.set_reg(ICR, icr);
        x.causes_pending &= !clear;
        if e.reg(CTRL_EXT) & ctrl_ext::IAME == 0 {
            let ims = e.reg(IMS) & !clear;
            e.set_reg(IMS, ims);
        }
    }
}

/// The cause a written-back transmit descriptor raises.
pub(super) fn tx_cause(e: &E1000) -> u32 {
    if msix_enabled(e) {
        xicr::TXQ0
    } else {
        icr::TXDW
    }
}

/// Whether every transmit descriptor is written back (IVAR's bit 31).
pub(super) fn tx_every_writeback(e: &E1000) -> bool {
    e.reg(r::IVAR) & ivar::TX_INT_EVERY_WB != 0
}

/// The cause a received frame raises (with RXDMT0 when the ring runs low,
/// without MSI-X).
pub(super) fn rx_cause(e: &E1000, low: bool) -> u32 {
    if msix_enabled(e) {
        xicr::RXQ0
    } else {
        icr::RXT0 | if low { icr::RXDMT0 } else { 0 }
    }
}

/// Whether the receive ring holds extended descriptors.
pub(super) fn extended_rx(e: &E1000) -> bool {
    e.reg(r::RFCTL) & r::rfctl::EXTEN != 0
}

/// Whether the guest asked for packet-split descriptors, which rvirt
/// refuses.
pub(super) fn packet_split(e: &E1000) -> bool {
    extended_rx(e) && e.reg(RCTL) & r::rctl::DTYP_MASK != 0
}

/// The receive buffer size: FLXBUF's KiB when set, else RCTL's size.
pub(super) fn rx_buf_size(e: &E1000) -> Option<usize> {
    let flx = (e.reg(RCTL) & r::rctl::FLXBUF_MASK) >> r::rctl::FLXBUF_SHIFT;
    (flx != 0).then(|| flx as usize * 1024)
}

/// What the receive status says about `frame` beyond Done and End of
/// Packet: the packet type (extended descriptors), and for IP frames
/// "ignore checksum" (nothing was verified) and, for IPv4 on extended
/// descriptors, the IP ID.
pub(super) struct RxInfo {
    pub(super) status: u32,
    pub(super) ip_id: Option<u16>,
}

pub(super) fn rx_info(e: &E1000, frame: &[u8], extended: bool) -> RxInfo {
    const IXSM: u32 = 1 << 2;
    const IPIDV: u32 = 1 << 9;
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (ip4, ip6) = (ethertype == 0x0800, ethertype == 0x86dd);
    let mut status = if ip4 || ip6 { IXSM } else { 0 };
    let mut ip_id = None;
    if extended {
        let l4 = match (ip4, ip6) {
            (true, _) => frame.get(23).copied(),
            (_, true) => frame.get(20).copied(),
            _ => None,
        };
        let xdp = matches!(l4, Some(6 | 17));
        let ip6_off = ip6 && e.reg(r::RFCTL) & r::rfctl::IPV6_DIS != 0;
        // Packet types: 0 MAC, 1 IPv4, 2 IPv4 + TCP/UDP, 5 IPv6, 6 IPv6
        // + TCP/UDP.
        let kind: u32 = match (ip4, ip6 && !ip6_off, xdp) {
            (true, _, false) => 1,
            (true, _, true) => 2,
            (_, true, false) => 5,
            (_, true, true) => 6,
            _ => 0,
        };
        status |= kind << 16;
        if ip4 && e.reg(RXCSUM) & (1 << 13) == 0 {
            if let Some(id) = frame.get(18..20) {
                status |= IPIDV;
                ip_id = Some(u16::from_be_bytes([id[0], id[1]]));
            }
        }
    }
    RxInfo { status, ip_id }
}
