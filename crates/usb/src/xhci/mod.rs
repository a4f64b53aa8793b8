//! QEMU 7.2's `qemu-xhci` (hw/usb/hcd-xhci.c, hcd-xhci-pci.c): PCI
//! 1b36:000d revision 1, class 0x0c0330, BAR 0 the 16 KiB of registers at
//! QEMU's offsets (capability 0x0, operational 0x40, ports 0x440, runtime
//! 0x1000, doorbells 0x2000, the MSI-X table 0x3000 and PBA 0x3800), 16
//! MSI-X vectors and INTA, 64 device slots, `p2` USB 2 and `p3` USB 3
//! ports (4 + 4 by default, the USB 3 ones first as QEMU's `qemu-xhci`
//! numbers them).
//!
//! Register accesses run on the vCPU that made them; a doorbell runs the
//! command ring or the endpoint's transfer ring there and then, as QEMU
//! does, bounded: 256 commands or transfers per doorbell, 32 Link TRBs in
//! a row, 256 TRBs per transfer. Whatever the guest points at (rings,
//! contexts, buffers, the event ring) is read and written through
//! vm-memory; outside RAM it is a TRB Error completion (commands,
//! transfers: the endpoint halts) or, for the event ring itself, Host
//! Controller Error in USBSTS, as on QEMU. Never a host crash or a loop.
//!
//! One interrupter delivers every event (the first; QEMU's slots can
//! target others). HCSPARAMS1 still reports QEMU's 16 and their registers
//! read back as written, so a guest sees QEMU's controller; Linux and
//! Windows only use the first. No streams, no isochronous transfers, no
//! MFINDEX wrap events (no device here needs them).

pub mod ring;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use rvirt_pci::bar::BarSpec;
use rvirt_pci::caps::{add_pcie, PortType};
use rvirt_pci::config::{command, overlaps, reg, status as pci_status, ConfigSpace, Ids};
use rvirt_pci::intx::IntxPin;
use rvirt_pci::msix::{Msix, MsixCapability};
use rvirt_pci::PciFunction;
use rvirt_platform::{InterruptLine, MsiVectors};
use vm_memory::{Bytes, GuestAddress};

use crate::device::{In, Reply, Setup, SharedDevice, Speed};
use crate::Memory;
use ring::{trb_type as tt, Ring, RingError, Trb};

pub const VENDOR_ID: u16 = 0x1b36;
pub const DEVICE_ID: u16 = 0x000d;
pub const REVISION: u8 = 1;
pub const CLASS: u32 = 0x0c0330;
/// BAR 0: every register and the MSI-X structures.
pub const BAR: u8 = 0;
pub const BAR_SIZE: u64 = 0x4000;
pub const MSIX_VECTORS: u16 = 16;
pub const MAX_SLOTS: usize = 64;
pub const MAX_INTRS: usize = 16;
/// Ports of each kind at most (QEMU's `XHCI_MAXPORTS_2`/`_3`).
pub const MAX_PORTS: u8 = 15;

const OFF_OPER: u64 = 0x40;
const OFF_PORTS: u64 = 0x440;
const OFF_RUNTIME: u64 = 0x1000;
const LEN_RUNTIME: u64 = (MAX_INTRS as u64 + 1) * 0x20;
const OFF_DOORBELL: u64 = 0x2000;
const LEN_DOORBELL: u64 = (MAX_SLOTS as u64 + 1) * 0x20;
const OFF_MSIX_TABLE: u32 = 0x3000;
const OFF_MSIX_PBA: u32 = 0x3800;

/// Commands or transfer descriptors handled per doorbell (QEMU's
/// `COMMAND_LIMIT`, `TRANSFER_LIMIT`).
const BUDGET: usize = 256;
/// Bytes of an OUT control transfer's data stage kept at most.
const MAX_CONTROL_DATA: usize = 4096;

mod usbcmd {
    pub const RS: u32 = 1 << 0;
    pub const HCRST: u32 = 1 << 1;
    pub const INTE: u32 = 1 << 2;
    pub const CSS: u32 = 1 << 8;
    pub const CRS: u32 = 1 << 9;
}

mod usbsts {
    pub const HCH: u32 = 1 << 0;
    pub const HSE: u32 = 1 << 2;
    pub const EINT: u32 = 1 << 3;
    pub const PCD: u32 = 1 << 4;
    pub const SRE: u32 = 1 << 10;
    pub const HCE: u32 = 1 << 12;
}

mod portsc {
    pub const CCS: u32 = 1 << 0;
    pub const PED: u32 = 1 << 1;
    pub const PR: u32 = 1 << 4;
    pub const PLS_SHIFT: u32 = 5;
    pub const PLS_MASK: u32 = 0xf << PLS_SHIFT;
    pub const PP: u32 = 1 << 9;
    pub const SPEED_FULL: u32 = 1 << 10;
    pub const SPEED_HIGH: u32 = 3 << 10;
    pub const LWS: u32 = 1 << 16;
    pub const CSC: u32 = 1 << 17;
    pub const PEC: u32 = 1 << 18;
    pub const WRC: u32 = 1 << 19;
    pub const OCC: u32 = 1 << 20;
    pub const PRC: u32 = 1 << 21;
    pub const PLC: u32 = 1 << 22;
    pub const CEC: u32 = 1 << 23;
    pub const WCE: u32 = 1 << 25;
    pub const WDE: u32 = 1 << 26;
    pub const WOE: u32 = 1 << 27;
    pub const WPR: u32 = 1 << 31;
    pub const PLS_U0: u32 = 0;
    pub const PLS_U3: u32 = 3;
    pub const PLS_RX_DETECT: u32 = 5;
    pub const PLS_POLLING: u32 = 7;
}

const CRCR_CS: u32 = 1 << 1;
const CRCR_CA: u32 = 1 << 2;
const CRCR_CRR: u32 = 1 << 3;
const IMAN_IP: u32 = 1 << 0;
const IMAN_IE: u32 = 1 << 1;
const ERDP_EHB: u32 = 1 << 3;

/// Completion codes.
pub mod cc {
    pub const SUCCESS: u8 = 1;
    pub const DATA_BUFFER_ERROR: u8 = 2;
    pub const USB_TRANSACTION_ERROR: u8 = 4;
    pub const TRB_ERROR: u8 = 5;
    pub const STALL_ERROR: u8 = 6;
    pub const NO_SLOTS_ERROR: u8 = 9;
    pub const SLOT_NOT_ENABLED_ERROR: u8 = 11;
    pub const EP_NOT_ENABLED_ERROR: u8 = 12;
    pub const SHORT_PACKET: u8 = 13;
    pub const CONTEXT_STATE_ERROR: u8 = 19;
    pub const EVENT_RING_FULL_ERROR: u8 = 21;
    pub const COMMAND_RING_STOPPED: u8 = 24;
}

/// Endpoint states in the endpoint context.
mod ep_state {
    pub const RUNNING: u32 = 1;
    pub const HALTED: u32 = 2;
    pub const STOPPED: u32 = 3;
    pub const ERROR: u32 = 4;
}

/// Slot states in the slot context.
mod slot_state {
    pub const DEFAULT: u32 = 1;
    pub const ADDRESSED: u32 = 2;
    pub const CONFIGURED: u32 = 3;
    pub const SHIFT: u32 = 27;
    pub const MASK: u32 = 0x1f << SHIFT;
}

/// The controller's properties (`-device qemu-xhci,p2=,p3=`).
#[derive(Clone, Copy, Debug)]
pub struct XhciConfig {
    pub p2: u8,
    pub p3: u8,
    /// On a PCI Express bus: the function has the Express capability.
    pub express: bool,
}

impl Default for XhciConfig {
    fn default() -> Self {
        XhciConfig {
            p2: 4,
            p3: 4,
            express: false,
        }
    }
}

/// Why a device cannot go on a port.
#[derive(Debug, PartialEq, Eq)]
pub enum PlugError {
    /// The port does not exist (USB 2 ports are 1..=p2).
    NoSuchPort(u8),
    /// Another device is there.
    Occupied(u8),
}

impl std::fmt::Display for PlugError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlugError::NoSuchPort(p) => write!(f, "no USB port {p} on the controller"),
            PlugError::Occupied(p) => write!(f, "USB port {p} is already in use"),
        }
    }
}

impl std::error::Error for PlugError {}

struct Port {
    portsc: u32,
    usb3: bool,
    device: Option<SharedDevice>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Endpoint {
    ring: Ring,
    state: u32,
    ep_type: u32,
    /// The endpoint context in the output device context.
    ctx: u64,
}

#[derive(Default)]
struct Slot {
    enabled: bool,
    addressed: bool,
    /// The output device context.
    ctx: u64,
    /// Index in `ports`.
    port: Option<usize>,
    eps: [Option<Endpoint>; 31],
}

#[derive(Clone, Copy, Debug, Default)]
struct Interrupter {
    iman: u32,
    imod: u32,
    erstsz: u32,
    erstba_low: u32,
    erstba_high: u32,
    erdp_low: u32,
    erdp_high: u32,
    er_start: u64,
    er_size: u32,
    er_ep_idx: u32,
    er_pcs: bool,
}

/// An event to post.
#[derive(Clone, Copy, Debug, Default)]
struct Event {
    kind: u32,
    cc: u8,
    ptr: u64,
    length: u32,
    flags: u32,
    slot: u8,
    epid: u8,
}

/// What a transfer descriptor came to.
enum Outcome {
    /// The device NAKed: the TD stays on the ring.
    Pending,
    /// Done; the endpoint halts if `halt`.
    Done { halt: bool },
}

/// A silent MSI-X sink for a controller not on a machine yet.
struct NoVectors;

impl MsiVectors for NoVectors {
    fn count(&self) -> u16 {
        MSIX_VECTORS
    }
    fn route(&self, _: u16, _: Option<rvirt_platform::MsiMessage>) -> std::io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> std::io::Result<()> {
        Ok(())
    }
}

/// One qemu-xhci function.
pub struct Xhci {
    cfg: ConfigSpace,
    conf: XhciConfig,
    msix_cap: MsixCapability,
    msix: Msix,
    intx: Arc<IntxPin>,
    mem: Option<Memory>,
    usbcmd: u32,
    usbsts: u32,
    dnctrl: u32,
    crcr_low: u32,
    crcr_high: u32,
    dcbaap_low: u32,
    dcbaap_high: u32,
    config: u32,
    cmd_ring: Ring,
    /// xHCI ports 1..: the USB 3 ones, then the USB 2 ones.
    ports: Vec<Port>,
    slots: Vec<Slot>,
    intr: [Interrupter; MAX_INTRS],
    started: Instant,
    complained: bool,
}

fn read_u32s<const N: usize>(mem: &Memory, addr: u64) -> Option<[u32; N]> {
    let mut b = vec![0u8; N * 4];
    addr.checked_add(N as u64 * 4)?;
    mem.read_slice(&mut b, GuestAddress(addr)).ok()?;
    let mut out = [0u32; N];
    for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
        *o = u32::from_le_bytes(c.try_into().unwrap());
    }
    Some(out)
}

fn write_u32s(mem: &Memory, addr: u64, v: &[u32]) -> Option<()> {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    addr.checked_add(b.len() as u64)?;
    mem.write_slice(&b, GuestAddress(addr)).ok()
}

fn addr64(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

impl Xhci {
    pub fn new(conf: XhciConfig) -> Self {
        let conf = XhciConfig {
            p2: conf.p2.min(MAX_PORTS),
            p3: conf.p3.min(MAX_PORTS),
            ..conf
        };
        let (cfg, msix_cap) = Self::config_space(&conf);
        let mut ports = Vec::new();
        for i in 0..usize::from(conf.p3) + usize::from(conf.p2) {
            ports.push(Port {
                portsc: 0,
                usb3: i < usize::from(conf.p3),
                device: None,
            });
        }
        let mut x = Xhci {
            cfg,
            conf,
            msix_cap,
            msix: Msix::new(MSIX_VECTORS, Arc::new(NoVectors)),
            intx: IntxPin::unconnected(),
            mem: None,
            usbcmd: 0,
            usbsts: usbsts::HCH,
            dnctrl: 0,
            crcr_low: 0,
            crcr_high: 0,
            dcbaap_low: 0,
            dcbaap_high: 0,
            config: 0,
            cmd_ring: Ring::default(),
            ports,
            slots: (0..MAX_SLOTS).map(|_| Slot::default()).collect(),
            intr: [Interrupter::default(); MAX_INTRS],
            started: Instant::now(),
            complained: false,
        };
        x.reset();
        x
    }

    fn config_space(conf: &XhciConfig) -> (ConfigSpace, MsixCapability) {
        let ids = Ids {
            vendor: VENDOR_ID,
            device: DEVICE_ID,
            revision: REVISION,
            class: CLASS,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        };
        let mut cfg = ConfigSpace::endpoint(&ids, conf.express);
        cfg.set_interrupt_pin(1);
        cfg.set_u8(reg::CACHE_LINE_SIZE, 0x10);
        // SBRN: USB 3.0.
        cfg.set_u8(0x60, 0x30);
        cfg.add_bar(usize::from(BAR), BarSpec::mem64(BAR_SIZE, false));
        if conf.express {
            add_pcie(&mut cfg, PortType::Endpoint);
        }
        let msix_cap = MsixCapability::add(
            &mut cfg,
            MSIX_VECTORS,
            (BAR, OFF_MSIX_TABLE),
            (BAR, OFF_MSIX_PBA),
        );
        (cfg, msix_cap)
    }

    /// Puts the controller, as at power-on, on a (new) machine: its RAM,
    /// its MSI-X vectors and its INTx pin. Devices stay on their ports.
    pub fn attach(&mut self, mem: Memory, msi: Arc<dyn MsiVectors>, intx: Arc<IntxPin>) {
        let (cfg, msix_cap) = Self::config_space(&self.conf);
        self.cfg = cfg;
        self.msix_cap = msix_cap;
        self.msix = Msix::new(MSIX_VECTORS, msi);
        self.intx = intx;
        self.mem = Some(mem);
        self.reset();
    }

    /// Puts `device` on USB port `port` (QEMU's `port=`, 1-based): a USB 2
    /// device on xHCI port p3 + `port`.
    pub fn plug(&mut self, port: u8, device: SharedDevice) -> Result<(), PlugError> {
        if port == 0 || port > self.conf.p2 {
            return Err(PlugError::NoSuchPort(port));
        }
        let i = usize::from(self.conf.p3) + usize::from(port) - 1;
        if self.ports[i].device.is_some() {
            return Err(PlugError::Occupied(port));
        }
        self.ports[i].device = Some(device);
        self.port_update(i);
        Ok(())
    }

    /// The lowest free USB port (QEMU's choice without `port=`).
    pub fn free_port(&self) -> Option<u8> {
        (1..=self.conf.p2).find(|&p| {
            self.ports[usize::from(self.conf.p3) + usize::from(p) - 1]
                .device
                .is_none()
        })
    }

    /// New input for a device: retries the interrupt IN transfers it
    /// NAKed.
    pub fn wake(&mut self) {
        if !self.running() {
            return;
        }
        for s in 0..MAX_SLOTS {
            for e in 0..31 {
                let Some(ep) = self.slots[s].eps[e] else {
                    continue;
                };
                // Interrupt IN endpoints (type 7) that are running.
                if ep.ep_type == 7 && ep.state == ep_state::RUNNING {
                    self.kick_ep(s + 1, e + 1);
                }
            }
        }
    }

    fn running(&self) -> bool {
        self.usbsts & usbsts::HCH == 0
    }

    /// Guest memory, while bus mastering is on.
    fn mem(&self) -> Option<&Memory> {
        let master = self.cfg.read_u16(reg::COMMAND) & command::MASTER != 0;
        self.mem.as_ref().filter(|_| master)
    }

    fn complain(&mut self, what: &str) {
        if !self.complained {
            self.complained = true;
            tracing::warn!("xhci: {what} (further ones logged at debug level)");
        } else {
            tracing::debug!("xhci: {what}");
        }
    }

    /// Host Controller Error: what QEMU's `xhci_die` sets when the event
    /// ring or a context cannot be reached.
    fn die(&mut self, what: &str) {
        self.usbsts |= usbsts::HCE;
        self.complain(what);
    }

    /// HCRST, and the state at power-on.
    fn reset(&mut self) {
        self.usbcmd = 0;
        self.usbsts = usbsts::HCH;
        self.dnctrl = 0;
        self.crcr_low = 0;
        self.crcr_high = 0;
        self.dcbaap_low = 0;
        self.dcbaap_high = 0;
        self.config = 0;
        self.cmd_ring = Ring::default();
        for s in &mut self.slots {
            *s = Slot::default();
        }
        for i in 0..self.ports.len() {
            self.port_update(i);
        }
        for i in &mut self.intr {
            *i = Interrupter {
                er_pcs: true,
                ..Interrupter::default()
            };
        }
        self.started = Instant::now();
        self.update_intx();
    }

    // ---- ports ----

    fn port_update(&mut self, i: usize) {
        let p = &mut self.ports[i];
        p.portsc = portsc::PP;
        let mut pls = portsc::PLS_RX_DETECT;
        if let Some(d) = &p.device {
            let speed = d.lock().unwrap_or_else(|e| e.into_inner()).speed();
            // Only USB 2 ports take rvirt's (full or high speed) devices.
            if !p.usb3 {
                p.portsc |= portsc::CCS
                    | match speed {
                        Speed::Full => portsc::SPEED_FULL,
                        Speed::High => portsc::SPEED_HIGH,
                    };
                pls = portsc::PLS_POLLING;
            }
        }
        p.portsc |= pls << portsc::PLS_SHIFT;
        self.port_notify(i, portsc::CSC);
    }

    fn port_notify(&mut self, i: usize, bits: u32) {
        if self.ports[i].portsc & bits == bits {
            return;
        }
        self.ports[i].portsc |= bits;
        if self.running() {
            self.event(Event {
                kind: tt::PORT_STATUS_CHANGE,
                cc: cc::SUCCESS,
                ptr: ((i as u64) + 1) << 24,
                ..Event::default()
            });
        }
    }

    fn port_reset(&mut self, i: usize) {
        let Some(d) = self.ports[i].device.clone().filter(|_| !self.ports[i].usb3) else {
            return;
        };
        d.lock().unwrap_or_else(|e| e.into_inner()).reset();
        let p = &mut self.ports[i];
        p.portsc &= !portsc::PLS_MASK;
        p.portsc |= (portsc::PLS_U0 << portsc::PLS_SHIFT) | portsc::PED;
        p.portsc &= !portsc::PR;
        self.port_notify(i, portsc::PRC);
    }

    fn port_write(&mut self, i: usize, reg: u64, val: u32) {
        if reg != 0 {
            return;
        }
        if val & portsc::WPR != 0 || val & portsc::PR != 0 {
            self.port_reset(i);
            return;
        }
        let old = self.ports[i].portsc;
        let mut v = old;
        v &= !(val
            & (portsc::CSC
                | portsc::PEC
                | portsc::WRC
                | portsc::OCC
                | portsc::PRC
                | portsc::PLC
                | portsc::CEC));
        let mut notify = 0;
        if val & portsc::LWS != 0 {
            let old_pls = (old & portsc::PLS_MASK) >> portsc::PLS_SHIFT;
            let new_pls = (val & portsc::PLS_MASK) >> portsc::PLS_SHIFT;
            let set = match new_pls {
                portsc::PLS_U0 if old_pls != portsc::PLS_U0 => {
                    notify = portsc::PLC;
                    true
                }
                portsc::PLS_U3 => old_pls < portsc::PLS_U3,
                _ => false,
            };
            if set {
                v = (v & !portsc::PLS_MASK) | (new_pls << portsc::PLS_SHIFT);
            }
        }
        let rw = portsc::PP | portsc::WCE | portsc::WDE | portsc::WOE;
        v = (v & !rw) | (val & rw);
        self.ports[i].portsc = v;
        if notify != 0 {
            self.port_notify(i, notify);
        }
    }

    // ---- interrupts and events ----

    fn update_intx(&self) {
        let i = &self.intr[0];
        let level = i.iman & IMAN_IP != 0
            && i.iman & IMAN_IE != 0
            && self.usbcmd & usbcmd::INTE != 0
            && !self.msix.enabled();
        if let Err(error) = self.intx.set_level(level) {
            tracing::warn!(%error, "xhci: cannot drive INTx");
        }
    }

    fn intr_raise(&mut self) {
        let i = &mut self.intr[0];
        let pending = i.erdp_low & ERDP_EHB != 0;
        i.erdp_low |= ERDP_EHB;
        i.iman |= IMAN_IP;
        self.usbsts |= usbsts::EINT;
        if pending || i.iman & IMAN_IE == 0 || self.usbcmd & usbcmd::INTE == 0 {
            return;
        }
        if self.msix.enabled() {
            // A message clears IP (xHCI 1.2 section 5.5.2.1).
            self.intr[0].iman &= !IMAN_IP;
            if let Err(error) = self.msix.trigger(0) {
                tracing::warn!(%error, "xhci: cannot send MSI-X");
            }
        } else {
            self.update_intx();
        }
    }

    /// Posts an event on the (one) event ring, as QEMU's `xhci_event`:
    /// with one free TRB left, an Event Ring Full error instead; with
    /// none, the event is lost.
    fn event(&mut self, ev: Event) {
        let i = self.intr[0];
        let erdp = addr64(i.erdp_low & !0xf, i.erdp_high);
        let end = i.er_start + ring::TRB_SIZE * u64::from(i.er_size);
        if i.er_size == 0 || erdp < i.er_start || erdp >= end {
            self.die("event ring dequeue pointer outside the event ring");
            return;
        }
        let dp_idx = ((erdp - i.er_start) / ring::TRB_SIZE) as u32;
        if (i.er_ep_idx + 2) % i.er_size == dp_idx {
            self.write_event(Event {
                kind: tt::HOST_CONTROLLER,
                cc: cc::EVENT_RING_FULL_ERROR,
                ..Event::default()
            });
        } else if (i.er_ep_idx + 1) % i.er_size == dp_idx {
            tracing::debug!("xhci: event ring full, event lost");
        } else {
            self.write_event(ev);
        }
        self.intr_raise();
    }

    fn write_event(&mut self, ev: Event) {
        let i = &mut self.intr[0];
        let mut control =
            (u32::from(ev.slot) << 24) | (u32::from(ev.epid) << 16) | ev.flags | (ev.kind << 10);
        if i.er_pcs {
            control |= ring::TRB_C;
        }
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&ev.ptr.to_le_bytes());
        b[8..12].copy_from_slice(&(ev.length | (u32::from(ev.cc) << 24)).to_le_bytes());
        b[12..16].copy_from_slice(&control.to_le_bytes());
        let addr = i.er_start + ring::TRB_SIZE * u64::from(i.er_ep_idx);
        i.er_ep_idx += 1;
        if i.er_ep_idx >= i.er_size {
            i.er_ep_idx = 0;
            i.er_pcs = !i.er_pcs;
        }
        let ok = self
            .mem()
            .is_some_and(|m| m.write_slice(&b, GuestAddress(addr)).is_ok());
        if !ok {
            self.die("event ring outside guest memory");
        }
    }

    /// ERSTBA written: reads the event ring's (one) segment.
    fn er_reset(&mut self, v: usize) {
        let erstba = addr64(self.intr[v].erstba_low, self.intr[v].erstba_high);
        if self.intr[v].erstsz == 0 || erstba == 0 {
            self.intr[v].er_start = 0;
            self.intr[v].er_size = 0;
            return;
        }
        if self.intr[v].erstsz != 1 {
            self.die("more than one event ring segment");
            return;
        }
        let Some(seg) = self.mem().and_then(|m| read_u32s::<4>(m, erstba)) else {
            self.die("event ring segment table outside guest memory");
            return;
        };
        if !(16..=4096).contains(&seg[2]) {
            self.die("event ring segment size out of range");
            return;
        }
        let i = &mut self.intr[v];
        i.er_start = addr64(seg[0] & !0x3f, seg[1]);
        i.er_size = seg[2];
        i.er_ep_idx = 0;
        i.er_pcs = true;
    }

    // ---- registers ----

    fn cap_read(&self, reg: u64) -> u32 {
        let (p2, p3) = (u32::from(self.conf.p2), u32::from(self.conf.p3));
        match reg {
            0x00 => 0x0100_0000 | OFF_OPER as u32,
            0x04 => ((p2 + p3) << 24) | ((MAX_INTRS as u32) << 8) | MAX_SLOTS as u32,
            0x08 => 0x0000_000f,
            0x0c => 0,
            // 64-bit addressing, 32-byte contexts, QEMU's streams mask,
            // the extended capabilities at 0x20.
            0x10 => 0x0008_7001,
            0x14 => OFF_DOORBELL as u32,
            0x18 => OFF_RUNTIME as u32,
            0x20 => 0x0200_0402,
            0x24 => 0x2042_5355,
            0x28 => (p2 << 8) | (p3 + 1),
            0x30 => 0x0300_0002,
            0x34 => 0x2042_5355,
            0x38 => (p3 << 8) | 1,
            _ => 0,
        }
    }

    fn oper_read(&self, reg: u64) -> u32 {
        match reg {
            0x00 => self.usbcmd,
            0x04 => self.usbsts,
            0x08 => 1,
            0x14 => self.dnctrl,
            0x18 => self.crcr_low & !0xe,
            0x1c => self.crcr_high,
            0x30 => self.dcbaap_low,
            0x34 => self.dcbaap_high,
            0x38 => self.config,
            _ => 0,
        }
    }

    fn oper_write(&mut self, reg: u64, val: u32) {
        match reg {
            0x00 => {
                if val & usbcmd::RS != 0 && self.usbcmd & usbcmd::RS == 0 {
                    self.usbsts &= !usbsts::HCH;
                    self.started = Instant::now();
                } else if val & usbcmd::RS == 0 && self.usbcmd & usbcmd::RS != 0 {
                    self.usbsts |= usbsts::HCH;
                    self.crcr_low &= !CRCR_CRR;
                }
                if val & usbcmd::CSS != 0 {
                    self.usbsts &= !usbsts::SRE;
                }
                if val & usbcmd::CRS != 0 {
                    self.usbsts |= usbsts::SRE;
                }
                self.usbcmd = val & 0xc0f;
                if val & usbcmd::HCRST != 0 {
                    self.reset();
                }
                self.update_intx();
            }
            0x04 => {
                self.usbsts &= !(val & (usbsts::HSE | usbsts::EINT | usbsts::PCD | usbsts::SRE));
                self.update_intx();
            }
            0x14 => self.dnctrl = val & 0xffff,
            0x18 => self.crcr_low = (val & 0xffff_ffcf) | (self.crcr_low & CRCR_CRR),
            0x1c => {
                self.crcr_high = val;
                if self.crcr_low & (CRCR_CA | CRCR_CS) != 0 && self.crcr_low & CRCR_CRR != 0 {
                    self.crcr_low &= !CRCR_CRR;
                    self.event(Event {
                        kind: tt::COMMAND_COMPLETION,
                        cc: cc::COMMAND_RING_STOPPED,
                        ..Event::default()
                    });
                } else {
                    // QEMU starts the ring with cycle state 1 whatever RCS
                    // says; drivers write RCS = 1.
                    let base = addr64(self.crcr_low & !0x3f, val);
                    self.cmd_ring = Ring::new(base, true);
                }
                self.crcr_low &= !(CRCR_CA | CRCR_CS);
            }
            0x30 => self.dcbaap_low = val & 0xffff_ffc0,
            0x34 => self.dcbaap_high = val,
            0x38 => self.config = val & 0xff,
            _ => {}
        }
    }

    fn mfindex(&self) -> u32 {
        ((self.started.elapsed().as_nanos() / 125_000) & 0x3fff) as u32
    }

    fn runtime_read(&self, reg: u64) -> u32 {
        if reg < 0x20 {
            return if reg == 0 { self.mfindex() } else { 0 };
        }
        let i = &self.intr[((reg - 0x20) / 0x20) as usize];
        match reg & 0x1f {
            0x00 => i.iman,
            0x04 => i.imod,
            0x08 => i.erstsz,
            0x10 => i.erstba_low,
            0x14 => i.erstba_high,
            0x18 => i.erdp_low,
            0x1c => i.erdp_high,
            _ => 0,
        }
    }

    fn runtime_write(&mut self, reg: u64, val: u32) {
        if reg < 0x20 {
            return;
        }
        let v = ((reg - 0x20) / 0x20) as usize;
        let i = &mut self.intr[v];
        match reg & 0x1f {
            0x00 => {
                if val & IMAN_IP != 0 {
                    i.iman &= !IMAN_IP;
                }
                i.iman = (i.iman & !IMAN_IE) | (val & IMAN_IE);
                if v == 0 {
                    self.update_intx();
                }
            }
            0x04 => i.imod = val,
            0x08 => i.erstsz = val & 0xffff,
            0x10 => i.erstba_low = val & 0xffff_ffc0,
            0x14 => {
                i.erstba_high = val;
                self.er_reset(v);
            }
            0x18 => {
                let ehb = if val & ERDP_EHB != 0 {
                    0
                } else {
                    i.erdp_low & ERDP_EHB
                };
                i.erdp_low = (val & !ERDP_EHB) | ehb;
                if val & ERDP_EHB != 0 && v == 0 {
                    // Events the guest has not consumed yet: interrupt
                    // again.
                    let erdp = addr64(i.erdp_low & !0xf, i.erdp_high);
                    let end = i.er_start + ring::TRB_SIZE * u64::from(i.er_size);
                    if erdp >= i.er_start && erdp < end {
                        let dp_idx = ((erdp - i.er_start) / ring::TRB_SIZE) as u32;
                        if dp_idx != i.er_ep_idx {
                            self.intr_raise();
                        }
                    }
                }
            }
            0x1c => i.erdp_high = val,
            _ => {}
        }
    }

    fn doorbell_write(&mut self, reg: u64, val: u32) {
        if !self.running() {
            return;
        }
        let target = (reg >> 2) as usize;
        if target == 0 {
            if val == 0 {
                self.process_commands();
            }
            return;
        }
        let epid = (val & 0xff) as usize;
        if target > MAX_SLOTS || epid == 0 || epid > 31 {
            tracing::debug!(target, val, "xhci: bad doorbell");
            return;
        }
        self.kick_ep(target, epid);
    }

    /// A dword access at `offset` of BAR 0.
    fn read_dword(&mut self, offset: u64) -> u32 {
        let nports = self.ports.len() as u64;
        match offset {
            o if o < OFF_OPER => self.cap_read(o),
            o if o < OFF_PORTS => self.oper_read(o - OFF_OPER),
            o if o < OFF_PORTS + 0x10 * nports => {
                let r = o - OFF_PORTS;
                match r & 0xf {
                    0 => self.ports[(r / 0x10) as usize].portsc,
                    _ => 0,
                }
            }
            o if (OFF_RUNTIME..OFF_RUNTIME + LEN_RUNTIME).contains(&o) => {
                self.runtime_read(o - OFF_RUNTIME)
            }
            _ => 0,
        }
    }

    fn write_dword(&mut self, offset: u64, val: u32) {
        let nports = self.ports.len() as u64;
        match offset {
            o if o < OFF_OPER => {}
            o if o < OFF_PORTS => self.oper_write(o - OFF_OPER, val),
            o if o < OFF_PORTS + 0x10 * nports => {
                let r = o - OFF_PORTS;
                self.port_write((r / 0x10) as usize, r & 0xf, val);
            }
            o if (OFF_RUNTIME..OFF_RUNTIME + LEN_RUNTIME).contains(&o) => {
                self.runtime_write(o - OFF_RUNTIME, val)
            }
            o if (OFF_DOORBELL..OFF_DOORBELL + LEN_DOORBELL).contains(&o) => {
                self.doorbell_write(o - OFF_DOORBELL, val)
            }
            _ => {}
        }
    }

    // ---- commands ----

    fn process_commands(&mut self) {
        self.crcr_low |= CRCR_CRR;
        for _ in 0..BUDGET {
            let Some(mem) = self.mem().cloned() else {
                return;
            };
            let mut r = self.cmd_ring;
            let trb = match r.next(&mem) {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    // Nothing to advance past: stop the ring so the guest
                    // sees the error once, not at every doorbell.
                    self.complain("command ring unreadable or looping");
                    self.crcr_low &= !CRCR_CRR;
                    self.event(Event {
                        kind: tt::COMMAND_COMPLETION,
                        cc: cc::TRB_ERROR,
                        ptr: e.addr(),
                        ..Event::default()
                    });
                    return;
                }
            };
            self.cmd_ring = r;
            let (code, slot) = self.command(&trb);
            self.event(Event {
                kind: tt::COMMAND_COMPLETION,
                cc: code,
                ptr: trb.addr,
                slot,
                ..Event::default()
            });
        }
    }

    /// The slot a command names, or the completion code that refuses it.
    fn slot_of(&self, trb: &Trb) -> Result<usize, u8> {
        let id = (trb.control >> 24) as usize;
        if id == 0 || id > MAX_SLOTS {
            return Err(cc::TRB_ERROR);
        }
        if !self.slots[id - 1].enabled {
            return Err(cc::SLOT_NOT_ENABLED_ERROR);
        }
        Ok(id)
    }

    /// Runs one command: its completion code and the slot it names.
    fn command(&mut self, trb: &Trb) -> (u8, u8) {
        let kind = trb.kind();
        if kind == tt::ENABLE_SLOT {
            return match self.slots.iter().position(|s| !s.enabled) {
                Some(i) => {
                    self.slots[i] = Slot {
                        enabled: true,
                        ..Slot::default()
                    };
                    (cc::SUCCESS, (i + 1) as u8)
                }
                None => (cc::NO_SLOTS_ERROR, 0),
            };
        }
        if kind == tt::NOOP_COMMAND {
            return (cc::SUCCESS, 0);
        }
        let needs_slot = matches!(
            kind,
            tt::DISABLE_SLOT
                | tt::ADDRESS_DEVICE
                | tt::CONFIGURE_ENDPOINT
                | tt::EVALUATE_CONTEXT
                | tt::RESET_ENDPOINT
                | tt::STOP_ENDPOINT
                | tt::SET_TR_DEQUEUE
                | tt::RESET_DEVICE
        );
        if !needs_slot {
            tracing::debug!(kind, "xhci: unimplemented command");
            return (cc::TRB_ERROR, 0);
        }
        let id = match self.slot_of(trb) {
            Ok(id) => id,
            Err(code) => return (code, (trb.control >> 24) as u8),
        };
        let epid = ((trb.control >> 16) & 0x1f) as usize;
        let code = match kind {
            tt::DISABLE_SLOT => {
                self.slots[id - 1] = Slot::default();
                cc::SUCCESS
            }
            tt::ADDRESS_DEVICE => {
                self.address_device(id, trb.parameter, trb.control & (1 << 9) != 0)
            }
            tt::CONFIGURE_ENDPOINT => {
                self.configure_endpoint(id, trb.parameter, trb.control & (1 << 9) != 0)
            }
            tt::EVALUATE_CONTEXT => self.evaluate_context(id, trb.parameter),
            tt::RESET_ENDPOINT => self.ep_command(id, epid, |ep| {
                if ep.state != ep_state::HALTED {
                    return Err(cc::CONTEXT_STATE_ERROR);
                }
                ep.state = ep_state::STOPPED;
                Ok(())
            }),
            tt::STOP_ENDPOINT => self.ep_command(id, epid, |ep| {
                ep.state = ep_state::STOPPED;
                Ok(())
            }),
            tt::SET_TR_DEQUEUE => {
                let p = trb.parameter;
                self.ep_command(id, epid, |ep| {
                    if ep.state != ep_state::STOPPED && ep.state != ep_state::ERROR {
                        return Err(cc::CONTEXT_STATE_ERROR);
                    }
                    ep.ring = Ring::new(p & !0xf, p & 1 != 0);
                    Ok(())
                })
            }
            _ => self.reset_device(id),
        };
        (code, id as u8)
    }

    /// A command on one endpoint: `f` changes it, then its context is
    /// written back.
    fn ep_command(
        &mut self,
        id: usize,
        epid: usize,
        f: impl FnOnce(&mut Endpoint) -> Result<(), u8>,
    ) -> u8 {
        if epid == 0 {
            return cc::TRB_ERROR;
        }
        let Some(ep) = self.slots[id - 1].eps[epid - 1].as_mut() else {
            return cc::EP_NOT_ENABLED_ERROR;
        };
        if let Err(code) = f(ep) {
            return code;
        }
        self.write_ep_ctx(id, epid);
        cc::SUCCESS
    }

    /// Writes an endpoint's state and dequeue pointer into its context.
    fn write_ep_ctx(&mut self, id: usize, epid: usize) {
        let Some(ep) = self.slots[id - 1].eps[epid - 1] else {
            return;
        };
        let Some(mem) = self.mem().cloned() else {
            return;
        };
        let Some(mut ctx) = read_u32s::<5>(&mem, ep.ctx) else {
            self.die("endpoint context outside guest memory");
            return;
        };
        ctx[0] = (ctx[0] & !7) | ep.state;
        ctx[2] = (ep.ring.dequeue as u32 & !0xf) | u32::from(ep.ring.ccs);
        ctx[3] = (ep.ring.dequeue >> 32) as u32;
        if write_u32s(&mem, ep.ctx, &ctx).is_none() {
            self.die("endpoint context outside guest memory");
        }
    }

    /// Enables endpoint `epid` from its input context `ctx` (updated to
    /// what the output context gets), its output context at `out`.
    fn enable_ep(&mut self, id: usize, epid: usize, out: u64, ctx: &mut [u32; 5]) {
        let dequeue = addr64(ctx[2] & !0xf, ctx[3]);
        self.slots[id - 1].eps[epid - 1] = Some(Endpoint {
            ring: Ring::new(dequeue, ctx[2] & 1 != 0),
            state: ep_state::RUNNING,
            ep_type: (ctx[1] >> 3) & 7,
            ctx: out,
        });
        ctx[0] = (ctx[0] & !7) | ep_state::RUNNING;
    }

    fn address_device(&mut self, id: usize, input: u64, bsr: bool) -> u8 {
        let Some(mem) = self.mem().cloned() else {
            return cc::TRB_ERROR;
        };
        let dcbaap = addr64(self.dcbaap_low, self.dcbaap_high);
        let Some(out) = dcbaap
            .checked_add(8 * id as u64)
            .and_then(|a| read_u32s::<2>(&mem, a))
            .map(|v| addr64(v[0], v[1]))
        else {
            return cc::TRB_ERROR;
        };
        let (Some(ictl), Some(mut slot_ctx), Some(mut ep0)) = (
            read_u32s::<2>(&mem, input),
            input.checked_add(32).and_then(|a| read_u32s::<4>(&mem, a)),
            input.checked_add(64).and_then(|a| read_u32s::<5>(&mem, a)),
        ) else {
            return cc::TRB_ERROR;
        };
        if ictl != [0, 3] {
            return cc::TRB_ERROR;
        }
        // Root hub port, no route string: rvirt has no hubs.
        let port = ((slot_ctx[1] >> 16) & 0xff) as usize;
        if port == 0 || port > self.ports.len() || slot_ctx[0] & 0xf_ffff != 0 {
            return cc::TRB_ERROR;
        }
        let i = port - 1;
        let Some(dev) = self.ports[i].device.clone().filter(|_| !self.ports[i].usb3) else {
            return cc::USB_TRANSACTION_ERROR;
        };
        if self
            .slots
            .iter()
            .enumerate()
            .any(|(s, slot)| s != id - 1 && slot.enabled && slot.port == Some(i))
        {
            return cc::TRB_ERROR;
        }
        {
            let mut d = dev.lock().unwrap_or_else(|e| e.into_inner());
            d.reset();
            if bsr {
                slot_ctx[3] = slot_state::DEFAULT << slot_state::SHIFT;
            } else {
                d.set_address(id as u8);
                slot_ctx[3] = (slot_state::ADDRESSED << slot_state::SHIFT) | id as u32;
            }
        }
        let slot = &mut self.slots[id - 1];
        slot.port = Some(i);
        slot.ctx = out;
        let Some(ep0_out) = out.checked_add(32) else {
            return cc::TRB_ERROR;
        };
        self.enable_ep(id, 1, ep0_out, &mut ep0);
        if write_u32s(&mem, out, &slot_ctx).is_none() || write_u32s(&mem, ep0_out, &ep0).is_none() {
            self.slots[id - 1].eps[0] = None;
            return cc::TRB_ERROR;
        }
        self.slots[id - 1].addressed = true;
        cc::SUCCESS
    }

    fn configure_endpoint(&mut self, id: usize, input: u64, dc: bool) -> u8 {
        let Some(mem) = self.mem().cloned() else {
            return cc::TRB_ERROR;
        };
        let out = self.slots[id - 1].ctx;
        let set_state = |mem: &Memory, state: u32, entries: Option<u32>| -> Option<()> {
            let mut s = read_u32s::<4>(mem, out)?;
            s[3] = (s[3] & !slot_state::MASK) | (state << slot_state::SHIFT);
            if let Some(e) = entries {
                s[0] = (s[0] & !(0x1f << 27)) | (e & (0x1f << 27));
            }
            write_u32s(mem, out, &s)
        };
        if dc {
            for e in 2..=31 {
                self.slots[id - 1].eps[e - 1] = None;
            }
            return match set_state(&mem, slot_state::ADDRESSED, None) {
                Some(()) => cc::SUCCESS,
                None => cc::TRB_ERROR,
            };
        }
        let (Some(ictl), Some(islot), Some(slot)) = (
            read_u32s::<2>(&mem, input),
            input.checked_add(32).and_then(|a| read_u32s::<4>(&mem, a)),
            read_u32s::<4>(&mem, out),
        ) else {
            return cc::TRB_ERROR;
        };
        if ictl[0] & 3 != 0 || ictl[1] & 3 != 1 {
            return cc::TRB_ERROR;
        }
        if (slot[3] & slot_state::MASK) >> slot_state::SHIFT < slot_state::ADDRESSED {
            return cc::CONTEXT_STATE_ERROR;
        }
        for e in 2..=31usize {
            if ictl[0] & (1 << e) != 0 {
                self.slots[id - 1].eps[e - 1] = None;
            }
            if ictl[1] & (1 << e) != 0 {
                let at = input + 32 + 32 * e as u64;
                let Some(mut ctx) = read_u32s::<5>(&mem, at) else {
                    return cc::TRB_ERROR;
                };
                let o = out + 32 * e as u64;
                self.enable_ep(id, e, o, &mut ctx);
                if write_u32s(&mem, o, &ctx).is_none() {
                    self.slots[id - 1].eps[e - 1] = None;
                    return cc::TRB_ERROR;
                }
            }
        }
        match set_state(&mem, slot_state::CONFIGURED, Some(islot[0])) {
            Some(()) => cc::SUCCESS,
            None => cc::TRB_ERROR,
        }
    }

    fn evaluate_context(&mut self, id: usize, input: u64) -> u8 {
        let Some(mem) = self.mem().cloned() else {
            return cc::TRB_ERROR;
        };
        let out = self.slots[id - 1].ctx;
        let Some(ictl) = read_u32s::<2>(&mem, input) else {
            return cc::TRB_ERROR;
        };
        if ictl[0] != 0 || ictl[1] & !3 != 0 {
            return cc::TRB_ERROR;
        }
        let r = (|| -> Option<()> {
            if ictl[1] & 1 != 0 {
                let islot = read_u32s::<4>(&mem, input.checked_add(32)?)?;
                let mut s = read_u32s::<4>(&mem, out)?;
                s[1] = (s[1] & !0xffff) | (islot[1] & 0xffff);
                s[2] = (s[2] & !(0x3ff << 22)) | (islot[2] & (0x3ff << 22));
                write_u32s(&mem, out, &s)?;
            }
            if ictl[1] & 2 != 0 {
                let iep0 = read_u32s::<5>(&mem, input.checked_add(64)?)?;
                let o = out.checked_add(32)?;
                let mut e = read_u32s::<5>(&mem, o)?;
                e[1] = (e[1] & 0xffff) | (iep0[1] & 0xffff_0000);
                write_u32s(&mem, o, &e)?;
            }
            Some(())
        })();
        match r {
            Some(()) => cc::SUCCESS,
            None => cc::TRB_ERROR,
        }
    }

    fn reset_device(&mut self, id: usize) -> u8 {
        for e in 2..=31 {
            self.slots[id - 1].eps[e - 1] = None;
        }
        let out = self.slots[id - 1].ctx;
        let Some(mem) = self.mem().cloned() else {
            return cc::TRB_ERROR;
        };
        let r = read_u32s::<4>(&mem, out).and_then(|mut s| {
            s[3] = (s[3] & !slot_state::MASK) | (slot_state::DEFAULT << slot_state::SHIFT);
            write_u32s(&mem, out, &s)
        });
        match r {
            Some(()) => cc::SUCCESS,
            None => cc::TRB_ERROR,
        }
    }

    // ---- transfers ----

    /// Runs endpoint `epid` of slot `id`: its transfer descriptors, until
    /// the ring is empty, the device NAKs, the endpoint halts or the
    /// budget is spent.
    fn kick_ep(&mut self, id: usize, epid: usize) {
        let slot = &self.slots[id - 1];
        if !slot.enabled {
            return;
        }
        let (Some(ep), Some(port)) = (slot.eps[epid - 1], slot.port) else {
            return;
        };
        if ep.state == ep_state::HALTED {
            return;
        }
        let Some(dev) = self.ports[port].device.clone() else {
            return;
        };
        let Some(mem) = self.mem().cloned() else {
            return;
        };
        if ep.state != ep_state::RUNNING {
            self.set_ep(id, epid, |e| e.state = ep_state::RUNNING);
            self.write_ep_ctx(id, epid);
        }
        for _ in 0..BUDGET {
            let ring = match self.slots[id - 1].eps[epid - 1] {
                Some(e) => e.ring,
                None => return,
            };
            let (trbs, next) = match ring.peek_td(&mem) {
                Ok(Some(td)) => td,
                Ok(None) => break,
                Err(e) => {
                    self.transfer_error(id, epid, e);
                    break;
                }
            };
            let outcome = if epid == 1 {
                self.control_transfer(&mem, &dev, id, &trbs)
            } else {
                self.data_transfer(&mem, &dev, id, epid, &trbs)
            };
            match outcome {
                Outcome::Pending => break,
                Outcome::Done { halt } => {
                    self.set_ep(id, epid, |e| {
                        e.ring = next;
                        if halt {
                            e.state = ep_state::HALTED;
                        }
                    });
                    self.write_ep_ctx(id, epid);
                    if halt {
                        break;
                    }
                }
            }
        }
    }

    fn set_ep(&mut self, id: usize, epid: usize, f: impl FnOnce(&mut Endpoint)) {
        if let Some(e) = self.slots[id - 1].eps[epid - 1].as_mut() {
            f(e);
        }
    }

    /// A ring that cannot be read: a TRB Error event naming where, and the
    /// endpoint halts (the guest resets it and moves its dequeue pointer).
    fn transfer_error(&mut self, id: usize, epid: usize, e: RingError) {
        self.complain("transfer ring unreadable, looping or overlong");
        self.event(Event {
            kind: tt::TRANSFER_EVENT,
            cc: cc::TRB_ERROR,
            ptr: e.addr(),
            slot: id as u8,
            epid: epid as u8,
            ..Event::default()
        });
        self.set_ep(id, epid, |ep| ep.state = ep_state::HALTED);
        self.write_ep_ctx(id, epid);
    }

    /// The data TRBs of a TD.
    fn is_data(t: &Trb) -> bool {
        matches!(t.kind(), tt::NORMAL | tt::DATA | tt::ISOCH)
    }

    /// The OUT data the TD's data TRBs point at (at most `limit` bytes).
    fn gather(mem: &Memory, trbs: &[Trb], limit: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for t in trbs.iter().filter(|t| Self::is_data(t)) {
            let want = (t.length() as usize).min(limit - out.len());
            if t.control & ring::TR_IDT != 0 {
                let b = t.parameter.to_le_bytes();
                out.extend_from_slice(&b[..want.min(8)]);
            } else {
                let mut b = vec![0u8; want];
                t.parameter.checked_add(want as u64)?;
                mem.read_slice(&mut b, GuestAddress(t.parameter)).ok()?;
                out.extend_from_slice(&b);
            }
            if out.len() >= limit {
                break;
            }
        }
        Some(out)
    }

    /// Writes IN data into the TD's buffers; the bytes written.
    fn scatter(mem: &Memory, trbs: &[Trb], data: &[u8]) -> Option<usize> {
        let mut done = 0;
        for t in trbs.iter().filter(|t| Self::is_data(t)) {
            if done == data.len() {
                break;
            }
            let n = (t.length() as usize).min(data.len() - done);
            t.parameter.checked_add(n as u64)?;
            mem.write_slice(&data[done..done + n], GuestAddress(t.parameter))
                .ok()?;
            done += n;
        }
        Some(done)
    }

    fn control_transfer(
        &mut self,
        mem: &Memory,
        dev: &SharedDevice,
        id: usize,
        trbs: &[Trb],
    ) -> Outcome {
        let first = trbs[0];
        let last = trbs[trbs.len() - 1];
        if first.kind() != tt::SETUP
            || first.control & ring::TR_IDT == 0
            || first.length() != 8
            || last.kind() != tt::STATUS
        {
            self.report(id, 1, &trbs[..1], 0, cc::TRB_ERROR);
            return Outcome::Done { halt: true };
        }
        let setup = Setup::from_u64(first.parameter);
        let room: usize = trbs
            .iter()
            .filter(|t| Self::is_data(t))
            .map(|t| t.length() as usize)
            .sum();
        let out = if setup.is_in() {
            Vec::new()
        } else {
            let limit = usize::from(setup.length).min(MAX_CONTROL_DATA);
            match Self::gather(mem, trbs, limit) {
                Some(d) => d,
                None => {
                    self.report(id, 1, trbs, 0, cc::DATA_BUFFER_ERROR);
                    return Outcome::Done { halt: true };
                }
            }
        };
        let reply = dev
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .control(&setup, &out);
        match reply {
            Reply::Stall => {
                self.report(id, 1, trbs, 0, cc::STALL_ERROR);
                Outcome::Done { halt: true }
            }
            Reply::Data(mut d) => {
                let moved = if setup.is_in() {
                    d.truncate(usize::from(setup.length).min(room));
                    match Self::scatter(mem, trbs, &d) {
                        Some(n) => n,
                        None => {
                            self.report(id, 1, trbs, 0, cc::DATA_BUFFER_ERROR);
                            return Outcome::Done { halt: true };
                        }
                    }
                } else {
                    out.len()
                };
                self.report(id, 1, trbs, moved, cc::SUCCESS);
                Outcome::Done { halt: false }
            }
        }
    }

    fn data_transfer(
        &mut self,
        mem: &Memory,
        dev: &SharedDevice,
        id: usize,
        epid: usize,
        trbs: &[Trb],
    ) -> Outcome {
        let ep = (epid / 2) as u8;
        let room: usize = trbs
            .iter()
            .filter(|t| Self::is_data(t))
            .map(|t| t.length() as usize)
            .sum();
        if epid % 2 == 1 {
            let got = dev
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .data_in(ep, room);
            match got {
                In::Nak => Outcome::Pending,
                In::Stall => {
                    self.report(id, epid, trbs, 0, cc::STALL_ERROR);
                    Outcome::Done { halt: true }
                }
                In::Data(mut d) => {
                    d.truncate(room);
                    match Self::scatter(mem, trbs, &d) {
                        Some(n) => {
                            self.report(id, epid, trbs, n, cc::SUCCESS);
                            Outcome::Done { halt: false }
                        }
                        None => {
                            self.report(id, epid, trbs, 0, cc::DATA_BUFFER_ERROR);
                            Outcome::Done { halt: true }
                        }
                    }
                }
            }
        } else {
            let Some(data) = Self::gather(mem, trbs, room.min(MAX_CONTROL_DATA)) else {
                self.report(id, epid, trbs, 0, cc::DATA_BUFFER_ERROR);
                return Outcome::Done { halt: true };
            };
            let ok = dev
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .data_out(ep, &data);
            if ok {
                self.report(id, epid, trbs, data.len(), cc::SUCCESS);
                Outcome::Done { halt: false }
            } else {
                self.report(id, epid, trbs, 0, cc::STALL_ERROR);
                Outcome::Done { halt: true }
            }
        }
    }

    /// The Transfer Events of a finished TD, as QEMU's `xhci_xfer_report`:
    /// one at each TRB asking for it (IOC, or ISP after a short packet),
    /// or at the point an error was reached; an Event Data TRB reports the
    /// bytes moved since the last one.
    fn report(&mut self, id: usize, epid: usize, trbs: &[Trb], moved: usize, status: u8) {
        let mut left = moved as u32;
        let mut edtla: u32 = 0;
        let mut reported = false;
        let mut short = false;
        for t in trbs {
            let mut chunk = 0;
            match t.kind() {
                tt::SETUP => chunk = t.length().min(8),
                tt::NORMAL | tt::DATA | tt::ISOCH => {
                    chunk = t.length();
                    if chunk > left {
                        chunk = left;
                        if status == cc::SUCCESS {
                            short = true;
                        }
                    }
                    left -= chunk;
                    edtla = edtla.wrapping_add(chunk);
                }
                tt::STATUS => {
                    reported = false;
                    short = false;
                }
                _ => {}
            }
            let wanted = t.control & ring::TR_IOC != 0
                || (short && t.control & ring::TR_ISP != 0)
                || (status != cc::SUCCESS && left == 0);
            if !reported && wanted {
                let mut ev = Event {
                    kind: tt::TRANSFER_EVENT,
                    cc: if status != cc::SUCCESS {
                        status
                    } else if short {
                        cc::SHORT_PACKET
                    } else {
                        cc::SUCCESS
                    },
                    ptr: t.addr,
                    length: t.length().saturating_sub(chunk),
                    flags: 0,
                    slot: id as u8,
                    epid: epid as u8,
                };
                if t.kind() == tt::EVENT_DATA {
                    ev.ptr = t.parameter;
                    ev.flags |= ring::EVENT_ED;
                    ev.length = edtla & 0xff_ffff;
                    edtla = 0;
                }
                self.event(ev);
                reported = true;
                if status != cc::SUCCESS {
                    return;
                }
            }
            if t.kind() == tt::SETUP {
                reported = false;
                short = false;
            }
        }
    }

    /// Aligned 4- and 8-byte accesses to the registers (8 as two dwords,
    /// low first, as QEMU splits them); bytes and words of the capability
    /// registers.
    fn access(&mut self, offset: u64, data: &mut [u8], write: bool) {
        if let Some(o) = self.msix_cap.in_table(BAR, offset) {
            if write {
                self.msix.write_table(o, data);
            } else {
                self.msix.read_table(o, data);
            }
            return;
        }
        if let Some(o) = self.msix_cap.in_pba(BAR, offset) {
            if !write {
                self.msix.read_pba(o, data);
            }
            return;
        }
        let len = data.len();
        if offset < OFF_OPER && !write && matches!(len, 1 | 2 | 4) {
            let shift = (offset & 3) * 8;
            let v = u64::from(self.read_dword(offset & !3)) >> shift;
            let bytes = v.to_le_bytes();
            let n = len.min(4 - (offset & 3) as usize);
            data[..n].copy_from_slice(&bytes[..n]);
            data[n..].fill(0);
            return;
        }
        if !(len == 4 || len == 8) || offset % 4 != 0 {
            tracing::debug!(offset, len, "xhci: unaligned or odd-sized register access");
            if !write {
                data.fill(0);
            }
            return;
        }
        for (k, chunk) in data.chunks_mut(4).enumerate() {
            let o = offset + 4 * k as u64;
            if write {
                let v = u32::from_le_bytes(chunk.try_into().unwrap());
                self.write_dword(o, v);
            } else {
                chunk.copy_from_slice(&self.read_dword(o).to_le_bytes());
            }
        }
    }
}

impl PciFunction for Xhci {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
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
        }
        if self.msix_cap.control_written(offset, data.len()) {
            let (enabled, masked) = self.msix_cap.control(&self.cfg);
            self.msix.set_control(enabled, masked);
            self.update_intx();
        }
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        if bar != BAR || offset >= BAR_SIZE {
            data.fill(0xff);
            return;
        }
        self.access(offset, data, false);
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        if bar != BAR || offset >= BAR_SIZE {
            return;
        }
        let mut d = data.to_vec();
        self.access(offset, &mut d, true);
    }
}
