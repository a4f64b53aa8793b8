//! The PIIX3 IDE controller (QEMU's `piix3-ide`, pc's built-in 00:01.1):
//! two channels at the legacy compatibility ports (primary 0x1f0-0x1f7 and
//! 0x3f6 on IRQ 14, secondary 0x170-0x177 and 0x376 on IRQ 15), two drives
//! per channel, and the bus-master IDE registers in BAR 4.
//!
//! A command goes as ATA/ATAPI-6 describes: the guest writes the task file
//! and the command register. The port write only sets BSY and wakes the
//! device thread (through `kick`); [`Ide::process`], on that thread, asks
//! the shared ATA core ([`crate::drive`]) what the command does and moves
//! the data: PIO through a host buffer, one DRQ block at a time (a sector,
//! the READ/WRITE MULTIPLE block, an ATAPI byte-count chunk), DMA through
//! the bus master's PRD table, every entry read and every address checked
//! through vm-memory (an entry outside RAM, or a table shorter than the
//! transfer, fails the command with ABRT and the bus master's error bit).
//! Reads and writes of the medium go to the block layer; [`Ide::reap`]
//! completes them.
//!
//! Not emulated (QEMU 7.2 has them, a guest could notice): the PIIX
//! timing registers change nothing (they read back what was written), no
//! SMART, security or CFATA feature sets.

use std::os::fd::RawFd;
use std::sync::Arc;

use rvirt_block::{Disk, IoBuf, Op, Request};
use rvirt_pci::{BarSpec, ConfigSpace, Ids, PciFunction};
use rvirt_platform::InterruptLine;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::ahci::Attachment;
use crate::atapi::BLOCK as CD_BLOCK;
use crate::drive::{cmd, error, status, Action, Drive, Kind, Protocol, TaskFile, SECTOR};
use crate::sg::{self, Segment};
use crate::Memory;

/// QEMU's piix3-ide identity: legacy (compatibility) mode on both
/// channels, bus-master capable.
pub const IDS: Ids = Ids {
    vendor: 0x8086,
    device: 0x7010,
    revision: 0,
    class: 0x010180,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};

/// The bus-master IDE registers: BAR 4, 16 bytes of I/O, 8 per channel.
pub const BM_BAR: u8 = 4;
pub const BM_SIZE: u64 = 16;
/// Channels and drives per channel.
pub const CHANNELS: usize = 2;
pub const UNITS: usize = 2;

/// A channel's legacy place: its command block (8 ports), its control
/// block (one port: alternate status / device control) and ISA IRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legacy {
    pub command: u16,
    pub control: u16,
    pub irq: u32,
}

/// The compatibility-mode ports of the primary and secondary channels.
pub const LEGACY: [Legacy; CHANNELS] = [
    Legacy {
        command: 0x1f0,
        control: 0x3f6,
        irq: 14,
    },
    Legacy {
        command: 0x170,
        control: 0x376,
        irq: 15,
    },
];

/// QEMU's MAX_MULT_SECTORS: the largest READ/WRITE MULTIPLE block, and
/// the block size a drive starts with.
const MAX_MULT: u16 = 16;
/// The most PRD entries one transfer reads: a table may not cross a 64 KiB
/// boundary, so 8192 entries is all a real one can have.
const MAX_PRD: usize = 8192;
/// The largest chunk one PIO block request moves (an ATAPI byte count is
/// at most 0xfffe, READ MULTIPLE 16 sectors).
const MAX_PIO_CHUNK: u64 = 0x10000;

/// Device control register bits.
mod ctl {
    pub const NIEN: u8 = 0x02;
    pub const SRST: u8 = 0x04;
    pub const HOB: u8 = 0x80;
}

/// Bus-master command and status bits.
mod bm {
    pub const START: u8 = 0x01;
    /// Direction: set, the bus master writes memory (a device read).
    pub const WRITE_MEM: u8 = 0x08;
    pub const ACTIVE: u8 = 0x01;
    pub const ERROR: u8 = 0x02;
    pub const INT: u8 = 0x04;
    /// Drive 0/1 DMA capable: software's, kept as written.
    pub const CAPABLE: u8 = 0x60;
}

/// ATAPI interrupt reason (the sector count register).
mod reason {
    pub const CD: u8 = 0x01;
    pub const IO: u8 = 0x02;
}

/// Told when the guest opens or closes a CD-ROM's tray: the drive's
/// number (channel * 2 + unit) and whether the tray is open now.
pub type TrayMoved = Arc<dyn Fn(usize, bool) + Send + Sync>;

/// How a boot wires the controller.
pub struct Wiring {
    pub memory: Memory,
    /// The channels' interrupt lines (ISA IRQ 14 and 15).
    pub irqs: [Arc<dyn InterruptLine>; CHANNELS],
    /// Written when a command needs the device thread; it then calls
    /// [`Ide::process`]. Without one the work runs in the port access
    /// (tests).
    pub kick: Option<EventFd>,
}

/// A drive's copy of the task file. Writes go to both drives of a
/// channel (as on the cable), reads come from the selected one.
#[derive(Debug, Clone, Copy, Default)]
struct Regs {
    feature: u8,
    hob_feature: u8,
    nsector: u8,
    hob_nsector: u8,
    sector: u8,
    hob_sector: u8,
    lcyl: u8,
    hob_lcyl: u8,
    hcyl: u8,
    hob_hcyl: u8,
    select: u8,
    status: u8,
    error: u8,
}

struct Unit {
    att: Option<Attachment>,
    regs: Regs,
    /// The READ/WRITE MULTIPLE block in sectors (0: multiple mode off).
    mult: u16,
}

impl Unit {
    fn set_signature(&mut self) {
        let r = &mut self.regs;
        r.select &= 0xf0;
        r.nsector = 1;
        r.sector = 1;
        let (l, h) = match self.att.as_ref().map(|a| a.drive.kind()) {
            Some(Kind::Disk) => (0, 0),
            Some(Kind::Cdrom) => (0x14, 0xeb),
            None => (0xff, 0xff),
        };
        r.lcyl = l;
        r.hcyl = h;
    }

    fn is_cd(&self) -> bool {
        self.att
            .as_ref()
            .is_some_and(|a| a.drive.kind() == Kind::Cdrom)
    }
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// The device thread has work: a new command, a full PIO block to
    /// write, the next block to read, a packet to run, a DMA to start.
    Pending(Work),
    /// A block request is in flight.
    Busy(InFlight),
    /// The guest reads `buf[pos..end]` through the data port.
    PioIn,
    /// The guest writes `buf[pos..end]` through the data port.
    PioOut,
    /// The guest writes the 12-byte ATAPI packet.
    Packet,
    /// A DMA command waits for the bus master's start bit.
    DmaWait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Command,
    /// The PIO block in the buffer is written to the medium.
    WriteBlock,
    /// The next PIO block is read from the medium.
    ReadBlock,
    Packet,
    Dma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    PioRead,
    PioWrite,
    Dma,
    Flush,
}

/// What is left of a transfer after the current block.
#[derive(Debug, Clone, Default)]
struct Transfer {
    /// The drive (unit) running the command.
    unit: usize,
    atapi: bool,
    /// A medium transfer: read (or write) `left` bytes at `offset`, in
    /// blocks of `chunk`.
    write: bool,
    offset: u64,
    left: u64,
    chunk: u64,
    /// Data the drive produced (IDENTIFY, an ATAPI reply) still to go.
    data: Vec<u8>,
    /// The ATAPI byte count limit of a PIO reply.
    limit: u64,
    /// Bytes of the DMA transfer (for a DMA command).
    dma_len: u64,
}

struct Channel {
    units: [Unit; UNITS],
    selected: usize,
    ctl: u8,
    /// The command register: write-only, kept for the device thread.
    command: u8,
    phase: Phase,
    xfer: Transfer,
    /// The PIO buffer; a block request may point into it, so it is only
    /// replaced with no request in flight.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// INTRQ as the drive drives it (the line follows unless nIEN).
    irq_pending: bool,
    irq: Option<Arc<dyn InterruptLine>>,
    bm_cmd: u8,
    bm_status: u8,
    bm_prd: u32,
}

/// The controller.
///
/// Invariant: host buffers handed to a disk point into `memory` or a
/// channel's `buf`; every disk is quiesced before either is replaced or
/// dropped (a new boot's [`Ide::attach`], a reset, and `Drop`, which
/// drops the channels first).
pub struct Ide {
    // First, so dropping the controller waits for in-flight I/O before
    // the memory goes.
    channels: Vec<Channel>,
    cfg: ConfigSpace,
    memory: Option<Memory>,
    kick: Option<EventFd>,
    tray_moved: Option<TrayMoved>,
}

fn config() -> ConfigSpace {
    let mut cfg = ConfigSpace::endpoint(&IDS, false);
    cfg.add_bar(usize::from(BM_BAR), BarSpec::io(BM_SIZE));
    // QEMU leaves the device-specific space (the PIIX timing registers
    // among it) writable, and so does rvirt: a guest tuning its timings
    // reads back what it wrote.
    cfg.set_wmask(0x40, &[0xff; 0xc0]);
    cfg
}

impl Ide {
    /// A controller with `drives[c * 2 + u]` on channel `c`, unit `u`.
    pub fn new(drives: Vec<Option<Attachment>>) -> Self {
        let mut it = drives.into_iter().chain(std::iter::repeat_with(|| None));
        let mut channels = Vec::new();
        for _ in 0..CHANNELS {
            let mut unit = || Unit {
                att: it.next().flatten(),
                regs: Regs::default(),
                mult: MAX_MULT,
            };
            let units = [unit(), unit()];
            channels.push(Channel {
                units,
                selected: 0,
                ctl: 0,
                command: 0,
                phase: Phase::Idle,
                xfer: Transfer::default(),
                buf: Vec::new(),
                pos: 0,
                end: 0,
                irq_pending: false,
                irq: None,
                bm_cmd: 0,
                bm_status: 0,
                bm_prd: 0,
            });
        }
        let mut ide = Ide {
            channels,
            cfg: config(),
            memory: None,
            kick: None,
            tray_moved: None,
        };
        for c in 0..CHANNELS {
            ide.reset_channel(c, true);
        }
        ide
    }

    /// Puts the controller in a new boot: as at power-on, on this boot's
    /// memory and interrupts.
    pub fn attach(&mut self, wiring: Wiring) {
        self.quiesce();
        self.cfg = config();
        self.memory = Some(wiring.memory);
        self.kick = wiring.kick;
        for (c, irq) in wiring.irqs.into_iter().enumerate() {
            self.channels[c].irq = Some(irq);
            self.reset_channel(c, true);
        }
    }

    /// Who hears of the guest's tray moves; kept across boots.
    pub fn on_tray_moved(&mut self, f: TrayMoved) {
        self.tray_moved = Some(f);
    }

    /// The attachment of drive `n` (channel * 2 + unit), for the monitor.
    pub fn device(&mut self, n: usize) -> Option<&mut Attachment> {
        self.channels
            .get_mut(n / UNITS)?
            .units
            .get_mut(n % UNITS)?
            .att
            .as_mut()
    }

    /// Replaces drive `n`'s medium (its tray open), waiting for the old
    /// one's requests first.
    pub fn set_medium(&mut self, n: usize, disk: Option<Disk<u8>>) {
        let Some(ch) = self.channels.get_mut(n / UNITS) else {
            return;
        };
        let Some(a) = ch.units[n % UNITS].att.as_mut() else {
            return;
        };
        if let Some(old) = a.disk.as_mut() {
            old.quiesce();
        }
        if matches!(ch.phase, Phase::Busy(_)) && ch.xfer.unit == n % UNITS {
            // The request finished in the quiesce, unseen: the command
            // fails as if the medium went away under it.
            ch.phase = Phase::Idle;
        }
        let size = disk.as_ref().and_then(|d| d.len().ok());
        a.disk = disk;
        if let Some(cd) = a.drive.cdrom_state() {
            cd.set_medium(size);
        }
    }

    /// The disks' completion descriptors, for the device thread.
    pub fn host_fds(&self) -> Vec<RawFd> {
        self.channels
            .iter()
            .flat_map(|c| c.units.iter())
            .filter_map(|u| u.att.as_ref()?.disk.as_ref()?.host_fd())
            .collect()
    }

    fn quiesce(&mut self) {
        for c in &mut self.channels {
            for u in &mut c.units {
                if let Some(d) = u.att.as_mut().and_then(|a| a.disk.as_mut()) {
                    d.quiesce();
                }
            }
            if matches!(c.phase, Phase::Busy(_)) {
                c.phase = Phase::Idle;
            }
        }
    }

    /// A channel reset (power-on or SRST): the drives' signatures, ready
    /// status (an ATAPI drive leaves DRDY clear) and diagnostic code.
    fn reset_channel(&mut self, c: usize, power_on: bool) {
        let ch = &mut self.channels[c];
        for u in &mut ch.units {
            if let Some(d) = u.att.as_mut().and_then(|a| a.disk.as_mut()) {
                d.quiesce();
            }
        }
        ch.phase = Phase::Idle;
        ch.xfer = Transfer::default();
        ch.pos = 0;
        ch.end = 0;
        ch.selected = 0;
        if power_on {
            ch.ctl = 0;
            ch.bm_cmd = 0;
            ch.bm_status = 0;
            ch.bm_prd = 0;
            ch.irq_pending = false;
            if let Some(l) = &ch.irq {
                let _ = l.lower();
            }
        }
        for u in &mut ch.units {
            u.regs = Regs::default();
            u.mult = MAX_MULT;
            if let Some(a) = u.att.as_mut() {
                a.drive.reset();
            }
            u.set_signature();
            u.regs.error = 0x01;
            u.regs.status = if u.is_cd() { 0 } else { status::READY };
        }
    }

    // ---- interrupts ----

    fn raise(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        ch.irq_pending = true;
        if ch.ctl & ctl::NIEN == 0 {
            ch.bm_status |= bm::INT;
            if let Some(l) = &ch.irq {
                if let Err(error) = l.raise() {
                    tracing::warn!(%error, "cannot raise the IDE interrupt");
                }
            }
        }
    }

    fn lower(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        ch.irq_pending = false;
        if let Some(l) = &ch.irq {
            if let Err(error) = l.lower() {
                tracing::warn!(%error, "cannot lower the IDE interrupt");
            }
        }
    }

    /// Whether channel `c`'s interrupt is pending (tests, the fuzz target).
    pub fn irq_pending(&self, c: usize) -> bool {
        self.channels.get(c).is_some_and(|ch| ch.irq_pending)
    }

    // ---- the legacy ports ----

    /// A read of channel `c`'s command block (`offset` 0-7).
    pub fn read_command_block(&mut self, c: usize, offset: u64, data: &mut [u8]) {
        if c >= CHANNELS {
            data.fill(0xff);
            return;
        }
        if offset == 0 {
            self.read_data(c, data);
            return;
        }
        let v = self.read_reg(c, offset);
        data.fill(0);
        data[0] = v;
    }

    /// A write of channel `c`'s command block (`offset` 0-7).
    pub fn write_command_block(&mut self, c: usize, offset: u64, data: &[u8]) {
        if c >= CHANNELS || data.is_empty() {
            return;
        }
        if offset == 0 {
            self.write_data(c, data);
            return;
        }
        self.write_reg(c, offset, data[0]);
    }

    /// A read of channel `c`'s alternate status port.
    pub fn read_control(&mut self, c: usize) -> u8 {
        let Some(ch) = self.channels.get(c) else {
            return 0xff;
        };
        let u = &ch.units[ch.selected];
        if !present(ch, ch.selected) {
            return 0;
        }
        u.regs.status
    }

    /// A write of channel `c`'s device control port.
    pub fn write_control(&mut self, c: usize, v: u8) {
        let Some(ch) = self.channels.get_mut(c) else {
            return;
        };
        let was = ch.ctl;
        ch.ctl = v;
        if v & ctl::SRST != 0 && was & ctl::SRST == 0 {
            // Reset asserted: the drives go busy until it is released.
            self.reset_channel(c, false);
            for u in &mut self.channels[c].units {
                u.regs.status = status::BSY | status::DSC;
            }
        } else if v & ctl::SRST == 0 && was & ctl::SRST != 0 {
            for u in &mut self.channels[c].units {
                u.regs.status = if u.is_cd() { 0 } else { status::READY };
                u.regs.error = 0x01;
                u.set_signature();
            }
        }
    }

    fn read_reg(&mut self, c: usize, offset: u64) -> u8 {
        let ch = &self.channels[c];
        let sel = ch.selected;
        if !present(ch, sel) {
            if offset == 7 {
                self.lower(c);
            }
            return 0;
        }
        let hob = ch.ctl & ctl::HOB != 0;
        let r = &ch.units[sel].regs;
        let v = match offset {
            1 => r.error,
            2 if hob => r.hob_nsector,
            2 => r.nsector,
            3 if hob => r.hob_sector,
            3 => r.sector,
            4 if hob => r.hob_lcyl,
            4 => r.lcyl,
            5 if hob => r.hob_hcyl,
            5 => r.hcyl,
            6 => r.select,
            _ => r.status,
        };
        if offset == 7 {
            self.lower(c);
        }
        v
    }

    fn write_reg(&mut self, c: usize, offset: u64, v: u8) {
        let ch = &mut self.channels[c];
        if offset != 7 {
            // Any task file write clears HOB.
            ch.ctl &= !ctl::HOB;
        }
        match offset {
            1..=5 => {
                for u in &mut ch.units {
                    let r = &mut u.regs;
                    let (cur, hob) = match offset {
                        1 => (&mut r.feature, &mut r.hob_feature),
                        2 => (&mut r.nsector, &mut r.hob_nsector),
                        3 => (&mut r.sector, &mut r.hob_sector),
                        4 => (&mut r.lcyl, &mut r.hob_lcyl),
                        _ => (&mut r.hcyl, &mut r.hob_hcyl),
                    };
                    *hob = *cur;
                    *cur = v;
                }
            }
            6 => {
                for u in &mut ch.units {
                    u.regs.select = v | 0xa0;
                }
                ch.selected = usize::from(v >> 4 & 1);
            }
            _ => self.write_command(c, v),
        }
    }

    fn write_command(&mut self, c: usize, command: u8) {
        let ch = &mut self.channels[c];
        let sel = ch.selected;
        if !present(ch, sel) {
            return;
        }
        // A busy drive takes no command, except a DEVICE RESET for an
        // ATAPI one.
        let busy = ch.units[sel].regs.status & status::BSY != 0
            || matches!(ch.phase, Phase::Busy(_) | Phase::Pending(_));
        if busy && !(command == cmd::DEVICE_RESET && ch.units[sel].is_cd()) {
            tracing::debug!(channel = c, command, "IDE command while busy: ignored");
            return;
        }
        self.lower(c);
        let ch = &mut self.channels[c];
        if matches!(ch.phase, Phase::Busy(_)) {
            // A DEVICE RESET over a request in flight: wait for it, since
            // it may point into the buffer the next command replaces.
            let u = ch.xfer.unit;
            if let Some(d) = ch.units[u].att.as_mut().and_then(|a| a.disk.as_mut()) {
                d.quiesce();
            }
        }
        ch.xfer = Transfer {
            unit: sel,
            ..Transfer::default()
        };
        ch.pos = 0;
        ch.end = 0;
        ch.units[sel].regs.status = status::BSY | status::DSC;
        ch.command = command;
        ch.phase = Phase::Pending(Work::Command);
        self.wake(c);
    }

    /// Work for the device thread: kick it, or do it here without one.
    fn wake(&mut self, c: usize) {
        match &self.kick {
            Some(k) => {
                if let Err(error) = k.write(1) {
                    tracing::warn!(%error, "cannot wake the IDE thread");
                }
            }
            None => self.step(c),
        }
    }

    fn read_data(&mut self, c: usize, data: &mut [u8]) {
        let ch = &mut self.channels[c];
        if ch.phase != Phase::PioIn {
            data.fill(0xff);
            return;
        }
        let n = data.len().min(ch.end - ch.pos);
        data[..n].copy_from_slice(&ch.buf[ch.pos..ch.pos + n]);
        data[n..].fill(0);
        ch.pos += n;
        if ch.pos >= ch.end {
            self.block_done(c);
        }
    }

    fn write_data(&mut self, c: usize, data: &[u8]) {
        let ch = &mut self.channels[c];
        if !matches!(ch.phase, Phase::PioOut | Phase::Packet) {
            return;
        }
        let n = data.len().min(ch.end - ch.pos);
        ch.buf[ch.pos..ch.pos + n].copy_from_slice(&data[..n]);
        ch.pos += n;
        if ch.pos >= ch.end {
            let work = if ch.phase == Phase::Packet {
                Work::Packet
            } else {
                Work::WriteBlock
            };
            let u = ch.xfer.unit;
            ch.units[u].regs.status = status::BSY | status::DSC;
            ch.phase = Phase::Pending(work);
            self.wake(c);
        }
    }

    /// The guest read the whole PIO block: the next one, or the end.
    fn block_done(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        if ch.xfer.left > 0 {
            ch.units[u].regs.status = status::BSY | status::DSC;
            ch.phase = Phase::Pending(Work::ReadBlock);
            self.wake(c);
        } else if !ch.xfer.data.is_empty() {
            // The next chunk of an ATAPI reply: no I/O, straight on.
            self.next_data_chunk(c);
        } else {
            self.finish_ok(c);
        }
    }

    // ---- the device thread ----

    /// Runs the work the port accesses left (the device thread, after a
    /// kick).
    pub fn process(&mut self) {
        for c in 0..CHANNELS {
            self.step(c);
        }
    }

    /// Completes what the block layer finished (the device thread, when a
    /// disk's descriptor is readable).
    pub fn reap(&mut self) {
        for c in 0..CHANNELS {
            for u in 0..UNITS {
                let mut done = Vec::new();
                if let Some(d) = self.channels[c].units[u]
                    .att
                    .as_mut()
                    .and_then(|a| a.disk.as_mut())
                {
                    d.reap(&mut done);
                }
                for d in done {
                    if self.channels[c].xfer.unit == u {
                        self.finished(c, d.result.is_ok());
                    }
                }
            }
        }
    }

    fn step(&mut self, c: usize) {
        let Phase::Pending(work) = self.channels[c].phase else {
            return;
        };
        match work {
            Work::Command => self.run_command(c),
            Work::Packet => self.run_packet(c),
            Work::ReadBlock => self.submit_pio(c, false),
            Work::WriteBlock => self.submit_pio(c, true),
            Work::Dma => self.run_dma(c),
        }
    }

    fn run_command(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        let unit = &mut ch.units[u];
        let r = unit.regs;
        let command = ch.command;
        let Some(att) = unit.att.as_mut() else {
            // A missing master beside a slave answers, and aborts
            // everything (as QEMU's empty IDEState does).
            return self.finish_error(c, error::ABRT);
        };
        let cd = att.drive.kind() == Kind::Cdrom;
        // What the task file alone decides (the shared core knows no
        // channel): diagnostics, multiple mode, CHS addresses.
        match command {
            0x90 => {
                // EXECUTE DEVICE DIAGNOSTIC: both drives' signatures, code 1.
                ch.phase = Phase::Idle;
                for x in &mut ch.units {
                    x.set_signature();
                    x.regs.error = 0x01;
                    x.regs.status = if x.is_cd() { 0 } else { status::READY };
                }
                self.raise(c);
                return;
            }
            cmd::DEVICE_RESET if cd => {
                unit.set_signature();
                unit.regs.error = 0x01;
                unit.regs.status = 0;
                ch.phase = Phase::Idle;
                return;
            }
            cmd::SET_MULTIPLE if !cd => {
                let n = u16::from(r.nsector);
                if n > MAX_MULT || n & n.wrapping_sub(1) != 0 {
                    return self.finish_error(c, error::ABRT);
                }
                unit.mult = n;
                return self.finish_ok(c);
            }
            cmd::READ_MULTIPLE
            | cmd::READ_MULTIPLE_EXT
            | cmd::WRITE_MULTIPLE
            | cmd::WRITE_MULTIPLE_EXT
                if unit.mult == 0 =>
            {
                return self.finish_error(c, error::ABRT);
            }
            _ => {}
        }
        let tf = task_file(&r, command, &att.drive);
        let action = att.drive.command(&tf);
        if command == cmd::IDENTIFY && cd {
            // An ATAPI drive aborts IDENTIFY with its signature in place,
            // so the host knows to send IDENTIFY PACKET DEVICE.
            unit.set_signature();
        }
        let chunk = match command {
            cmd::READ_MULTIPLE
            | cmd::READ_MULTIPLE_EXT
            | cmd::WRITE_MULTIPLE
            | cmd::WRITE_MULTIPLE_EXT => u64::from(unit.mult) * SECTOR,
            _ => SECTOR,
        };
        if let Action::Packet { dma } = action {
            let ch = &mut self.channels[c];
            ch.xfer.atapi = true;
            ch.xfer.dma_len = u64::from(dma);
            ch.buf = vec![0; 12];
            ch.pos = 0;
            ch.end = 12;
            let r = &mut ch.units[u].regs;
            r.nsector = reason::CD;
            r.status = status::READY | status::DRQ;
            ch.phase = Phase::Packet;
            return;
        }
        self.run_action(c, action, chunk, u64::from(u16::MAX));
    }

    fn run_packet(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        let mut cdb = [0u8; 12];
        cdb.copy_from_slice(&ch.buf[..12]);
        let dma = ch.xfer.dma_len != 0;
        let r = ch.units[u].regs;
        let limit = match u64::from(r.lcyl) | u64::from(r.hcyl) << 8 {
            // QEMU's reading of a zero or odd byte count.
            0 | 0xffff => 0xfffe,
            // Even, and at least a word, so every DRQ block moves data.
            n => (n & !1).max(2),
        };
        let Some(att) = ch.units[u].att.as_mut() else {
            return self.finish_error(c, error::ABRT);
        };
        let action = att.drive.packet(&cdb, dma);
        let moved = att.drive.cdrom_state().and_then(|c| c.take_moved());
        if let (Some(m), Some(f)) = (moved, &self.tray_moved) {
            f(c * UNITS + u, m == crate::atapi::Tray::Opened);
        }
        let chunk = if limit >= CD_BLOCK {
            limit / CD_BLOCK * CD_BLOCK
        } else {
            limit
        };
        self.run_action(c, action, chunk, limit);
    }

    /// Carries out what the drive said; `chunk` is a PIO medium
    /// transfer's block, `limit` an ATAPI PIO reply's chunk.
    fn run_action(&mut self, c: usize, action: Action, chunk: u64, limit: u64) {
        let ch = &mut self.channels[c];
        match action {
            Action::Done => self.finish_ok(c),
            Action::Error(e) => self.finish_error(c, e),
            Action::Packet { .. } => self.finish_error(c, error::ABRT),
            Action::Flush => self.submit(c, Op::Flush, InFlight::Flush),
            Action::DataIn(data, Protocol::Pio) => {
                ch.xfer.data = data;
                ch.xfer.limit = if ch.xfer.atapi { limit } else { u64::MAX };
                self.next_data_chunk(c);
            }
            Action::DataIn(data, Protocol::Dma) => {
                ch.xfer.dma_len = data.len() as u64;
                ch.xfer.data = data;
                self.dma_wait(c);
            }
            Action::Read {
                offset,
                len,
                protocol,
            }
            | Action::Write {
                offset,
                len,
                protocol,
            } => {
                let write = matches!(action, Action::Write { .. });
                ch.xfer.write = write;
                ch.xfer.offset = offset;
                ch.xfer.left = len;
                ch.xfer.chunk = chunk.clamp(2, MAX_PIO_CHUNK);
                match protocol {
                    Protocol::Dma => {
                        ch.xfer.dma_len = len;
                        self.dma_wait(c);
                    }
                    Protocol::Pio if write => {
                        // The first block goes without an interrupt.
                        let n = ch.xfer.chunk.min(ch.xfer.left) as usize;
                        ch.buf = vec![0; n];
                        ch.pos = 0;
                        ch.end = n;
                        let u = ch.xfer.unit;
                        ch.units[u].regs.status = status::READY | status::DRQ;
                        ch.phase = Phase::PioOut;
                    }
                    Protocol::Pio => self.submit_pio(c, false),
                }
            }
        }
    }

    /// The next chunk of data the drive produced, or the end.
    fn next_data_chunk(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        if ch.xfer.data.is_empty() {
            return self.finish_ok(c);
        }
        let n = (ch.xfer.limit.min(ch.xfer.data.len() as u64)) as usize;
        let rest = ch.xfer.data.split_off(n);
        ch.buf = std::mem::replace(&mut ch.xfer.data, rest);
        ch.pos = 0;
        ch.end = n;
        self.data_ready(c, n as u64);
    }

    /// A PIO block is in the buffer: DRQ, and the interrupt.
    fn data_ready(&mut self, c: usize, n: u64) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        let r = &mut ch.units[u].regs;
        r.status = status::READY | status::DRQ;
        if ch.xfer.atapi {
            r.nsector = reason::IO;
            r.lcyl = n as u8;
            r.hcyl = (n >> 8) as u8;
        }
        ch.phase = Phase::PioIn;
        self.raise(c);
    }

    fn dma_wait(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        ch.units[u].regs.status = status::READY | status::DRQ;
        if ch.bm_cmd & bm::START != 0 {
            ch.phase = Phase::Pending(Work::Dma);
            self.step(c);
        } else {
            ch.phase = Phase::DmaWait;
        }
    }

    /// Hands the next PIO block to the block layer.
    fn submit_pio(&mut self, c: usize, write: bool) {
        let ch = &mut self.channels[c];
        let n = if write {
            ch.end as u64
        } else {
            ch.xfer.chunk.min(ch.xfer.left)
        };
        if !write {
            ch.buf = vec![0; n as usize];
            ch.pos = 0;
            ch.end = n as usize;
        }
        // SAFETY: the buffer is the channel's and is neither replaced nor
        // dropped while a request is in flight: every path that replaces
        // it runs in a phase other than Busy, and every reset, new boot,
        // medium change and Drop quiesces the disk first.
        let bufs = vec![unsafe { IoBuf::new(ch.buf.as_mut_ptr(), n as usize) }];
        let offset = ch.xfer.offset;
        let (op, kind) = if write {
            (Op::Write { offset, bufs }, InFlight::PioWrite)
        } else {
            (Op::Read { offset, bufs }, InFlight::PioRead)
        };
        self.submit(c, op, kind);
    }

    /// Submits `op` on the transfer's drive.
    fn submit(&mut self, c: usize, op: Op, kind: InFlight) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        let Some(disk) = ch.units[u].att.as_mut().and_then(|a| a.disk.as_mut()) else {
            return self.finish_error(c, error::ABRT);
        };
        ch.units[u].regs.status = status::BSY | status::DSC;
        ch.phase = Phase::Busy(kind);
        let done = disk.submit(Request { tag: c as u8, op });
        disk.commit();
        if let Some(d) = done {
            self.finished(c, d.result.is_ok());
        }
    }

    /// A block request of channel `c` finished.
    fn finished(&mut self, c: usize, ok: bool) {
        let ch = &mut self.channels[c];
        let Phase::Busy(kind) = ch.phase else {
            return;
        };
        if !ok {
            if kind == InFlight::Dma {
                ch.bm_status |= bm::ERROR;
            }
            return self.finish_error(c, error::ABRT);
        }
        match kind {
            InFlight::Flush => self.finish_ok(c),
            InFlight::Dma => {
                ch.bm_status &= !bm::ACTIVE;
                self.finish_ok(c);
            }
            InFlight::PioRead => {
                let n = ch.end as u64;
                ch.xfer.offset += n;
                ch.xfer.left -= n;
                self.data_ready(c, n);
            }
            InFlight::PioWrite => {
                let n = ch.end as u64;
                ch.xfer.offset += n;
                ch.xfer.left -= n;
                if ch.xfer.left == 0 {
                    return self.finish_ok(c);
                }
                let n = ch.xfer.chunk.min(ch.xfer.left) as usize;
                ch.buf = vec![0; n];
                ch.pos = 0;
                ch.end = n;
                let u = ch.xfer.unit;
                ch.units[u].regs.status = status::READY | status::DRQ;
                ch.phase = Phase::PioOut;
                self.raise(c);
            }
        }
    }

    /// Runs the DMA transfer both the command and the bus master asked
    /// for.
    fn run_dma(&mut self, c: usize) {
        let Some(mem) = self.memory.clone() else {
            self.channels[c].bm_status |= bm::ERROR;
            return self.finish_error(c, error::ABRT);
        };
        let ch = &mut self.channels[c];
        ch.bm_status |= bm::ACTIVE;
        let len = ch.xfer.dma_len;
        let segs = match prd_table(&mem, ch.bm_prd, len) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(channel = c, error = %e, "IDE PRD table refused");
                ch.bm_status = (ch.bm_status & !bm::ACTIVE) | bm::ERROR;
                return self.finish_error(c, error::ABRT);
            }
        };
        if !ch.xfer.data.is_empty() {
            let data = std::mem::take(&mut ch.xfer.data);
            if let Err(e) = sg::copy_in(&mem, &segs, &data) {
                tracing::debug!(channel = c, error = %e, "IDE DMA refused");
                ch.bm_status = (ch.bm_status & !bm::ACTIVE) | bm::ERROR;
                return self.finish_error(c, error::ABRT);
            }
            ch.bm_status &= !bm::ACTIVE;
            return self.finish_ok(c);
        }
        let bufs = match sg::io_bufs(&mem, &segs, len) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(channel = c, error = %e, "IDE DMA refused");
                ch.bm_status = (ch.bm_status & !bm::ACTIVE) | bm::ERROR;
                return self.finish_error(c, error::ABRT);
            }
        };
        let offset = ch.xfer.offset;
        let op = if ch.xfer.write {
            Op::Write { offset, bufs }
        } else {
            Op::Read { offset, bufs }
        };
        self.submit(c, op, InFlight::Dma);
    }

    fn finish_ok(&mut self, c: usize) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        let atapi = ch.xfer.atapi;
        ch.phase = Phase::Idle;
        ch.xfer.data.clear();
        let r = &mut ch.units[u].regs;
        r.status = status::READY;
        if atapi {
            r.nsector = reason::IO | reason::CD;
        }
        self.raise(c);
    }

    fn finish_error(&mut self, c: usize, e: u8) {
        let ch = &mut self.channels[c];
        let u = ch.xfer.unit;
        let atapi = ch.xfer.atapi;
        ch.phase = Phase::Idle;
        ch.xfer.data.clear();
        ch.xfer.left = 0;
        let r = &mut ch.units[u].regs;
        r.status = status::READY | status::ERR;
        r.error = e;
        if atapi {
            r.nsector = reason::IO | reason::CD;
        }
        self.raise(c);
    }

    // ---- the bus master ----

    fn read_bm(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let o = offset + i as u64;
            let Some(ch) = self.channels.get((o / 8) as usize) else {
                *b = 0xff;
                continue;
            };
            *b = match o % 8 {
                0 => ch.bm_cmd,
                2 => ch.bm_status,
                r @ 4..=7 => ch.bm_prd.to_le_bytes()[(r - 4) as usize],
                _ => 0,
            };
        }
    }

    fn write_bm(&mut self, offset: u64, data: &[u8]) {
        for (i, &v) in data.iter().enumerate() {
            let o = offset + i as u64;
            let c = (o / 8) as usize;
            if c >= CHANNELS {
                continue;
            }
            match o % 8 {
                0 => self.write_bm_command(c, v),
                2 => {
                    let ch = &mut self.channels[c];
                    ch.bm_status = (ch.bm_status & bm::ACTIVE)
                        | (ch.bm_status & !v & (bm::ERROR | bm::INT))
                        | (v & bm::CAPABLE);
                }
                r @ 4..=7 => {
                    let ch = &mut self.channels[c];
                    let mut b = ch.bm_prd.to_le_bytes();
                    b[(r - 4) as usize] = v;
                    ch.bm_prd = u32::from_le_bytes(b) & !3;
                }
                _ => {}
            }
        }
    }

    fn write_bm_command(&mut self, c: usize, v: u8) {
        let ch = &mut self.channels[c];
        let was = ch.bm_cmd;
        ch.bm_cmd = v & (bm::START | bm::WRITE_MEM);
        if v & bm::START != 0 && was & bm::START == 0 {
            if ch.phase == Phase::DmaWait {
                ch.phase = Phase::Pending(Work::Dma);
                self.wake(c);
            }
        } else if v & bm::START == 0 && was & bm::START != 0 {
            // Stopping the engine: a transfer in flight is waited for and
            // its result dropped, as QEMU drains it.
            if matches!(ch.phase, Phase::Busy(InFlight::Dma))
                || ch.phase == Phase::Pending(Work::Dma)
            {
                let u = ch.xfer.unit;
                if let Some(d) = ch.units[u].att.as_mut().and_then(|a| a.disk.as_mut()) {
                    d.quiesce();
                }
                ch.phase = Phase::Idle;
                ch.units[u].regs.status = status::READY;
            }
            ch.bm_status &= !bm::ACTIVE;
        }
    }
}

impl Drop for Ide {
    fn drop(&mut self) {
        self.quiesce();
    }
}

/// Whether drive `u` of a channel answers: QEMU reads zeros from an empty
/// channel and from a missing slave.
fn present(ch: &Channel, u: usize) -> bool {
    let any = ch.units.iter().any(|x| x.att.is_some());
    any && (u == 0 || ch.units[u].att.is_some())
}

/// The task file of `command` from a drive's registers: 48-bit
/// commands take the previous (HOB) values as the high bytes, 28-bit ones
/// in CHS mode are turned into an LBA by the drive's geometry.
fn task_file(r: &Regs, command: u8, drive: &Drive) -> TaskFile {
    let ext = matches!(
        command,
        cmd::READ_DMA_EXT
            | cmd::READ_SECTORS_EXT
            | cmd::READ_MULTIPLE_EXT
            | cmd::WRITE_DMA_EXT
            | cmd::WRITE_SECTORS_EXT
            | cmd::WRITE_MULTIPLE_EXT
            | cmd::READ_VERIFY_EXT
            | cmd::FLUSH_CACHE_EXT
    );
    let lba28 = u64::from(r.sector) | u64::from(r.lcyl) << 8 | u64::from(r.hcyl) << 16;
    let (lba, count, features, device) = if ext {
        let lba = lba28
            | u64::from(r.hob_sector) << 24
            | u64::from(r.hob_lcyl) << 32
            | u64::from(r.hob_hcyl) << 40;
        (
            lba,
            u16::from(r.hob_nsector) << 8 | u16::from(r.nsector),
            u16::from(r.hob_feature) << 8 | u16::from(r.feature),
            r.select,
        )
    } else if r.select & 0x40 == 0 && drive.kind() == Kind::Disk {
        // CHS: sector numbers start at 1; sector 0 is past any end.
        let (_, heads, spt) = crate::identify::geometry(drive.sectors());
        let cyl = u64::from(r.lcyl) | u64::from(r.hcyl) << 8;
        let head = u64::from(r.select & 0xf);
        let lba = match u64::from(r.sector) {
            0 => u64::MAX >> 16,
            s => (cyl * u64::from(heads) + head) * u64::from(spt) + s - 1,
        };
        let lba = lba.min(0x0fff_ffff);
        (
            lba & 0xff_ffff,
            u16::from(r.nsector),
            u16::from(r.feature),
            (r.select & 0xf0) | (lba >> 24) as u8,
        )
    } else {
        (lba28, u16::from(r.nsector), u16::from(r.feature), r.select)
    };
    TaskFile {
        command,
        features,
        count,
        lba,
        device,
    }
}

/// The segments of the PRD table at `at` that cover `len` bytes: each
/// entry a 32-bit address and a byte count (0 meaning 64 KiB), the last
/// with bit 31 of its second dword set.
fn prd_table(mem: &Memory, at: u32, len: u64) -> Result<Vec<Segment>, sg::SgError> {
    let mut segs = Vec::new();
    let mut have = 0u64;
    for i in 0..MAX_PRD {
        let mut raw = [0u8; 8];
        mem.read_slice(&mut raw, GuestAddress(u64::from(at) + 8 * i as u64))
            .map_err(|_| sg::SgError::NotRam)?;
        let addr = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) & !1;
        let count = match u32::from(u16::from_le_bytes([raw[4], raw[5]])) & !1 {
            0 => 0x10000,
            n => n,
        };
        segs.push(Segment {
            addr: GuestAddress(u64::from(addr)),
            len: count,
        });
        have += u64::from(count);
        if raw[7] & 0x80 != 0 || have >= len {
            break;
        }
    }
    if have < len {
        return Err(sg::SgError::Short { have, want: len });
    }
    Ok(segs)
}

impl PciFunction for Ide {
    fn config(&self) -> &ConfigSpace {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.cfg
    }

    fn read_config(&mut self, offset: u16, data: &mut [u8]) {
        self.cfg.read(offset, data);
    }

    fn write_config(&mut self, offset: u16, data: &[u8]) {
        self.cfg.write(offset, data);
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        match bar {
            BM_BAR => self.read_bm(offset, data),
            _ => data.fill(0xff),
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        match bar {
            BM_BAR => self.write_bm(offset, data),
            _ => tracing::debug!(bar, offset, "IDE BAR write ignored"),
        }
    }
}

#[cfg(test)]
mod tests;
