//! virtio-scsi (device type 8) as QEMU 7.2's `virtio-scsi-pci` /
//! `virtio-scsi-device`: a control queue (task management and
//! asynchronous-notification requests, answered), an event queue (its
//! buffers are kept: there is nothing to report, no hot-plug), and
//! `num_queues` request queues (queues 2 and up; the command line picks
//! how many). Each LUN is a `scsi-hd` or `scsi-cd`, whose commands
//! rvirt-scsi interprets; this module carries them: the request header
//! (the 8-byte LUN address, tag, CDB), the data buffers, the response
//! (sense, residual, status, response code), every buffer checked
//! against guest memory.
//!
//! The LUNs' media run on the block layer's inline engine, on the
//! device thread (the VMM's event loop, never a vCPU): the device has
//! many disks and one completion descriptor to offer, and the firmware
//! and installer traffic it carries is modest (see README, "Not yet").
//! The request queues share that thread and the LUNs: each queue's kick
//! runs its requests to the end under the device's lock, in the order the
//! kicks arrive. A queue per vCPU still spares the guest its own locking
//! and IPIs (Linux maps each CPU's block requests to its own queue and
//! completes them on the queue's interrupt vector); a thread per queue
//! would only contend for the same LUNs' files.

mod request;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rvirt_block::{Done, Op, Request as DiskRequest};
pub use rvirt_scsi::disk::DiskInfo;
use rvirt_scsi::mmc::{Cdrom, Flavor, Tray};
use rvirt_scsi::{Outcome, Sense};
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};

use crate::{ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

pub use request::{response, Response, LUN_MAX, TARGET_MAX};

/// virtio-scsi's device ID.
pub const DEVICE_TYPE: u32 = 8;
/// Queue size (QEMU 7.2's virtqueue_size default).
pub const QUEUE_SIZE: u16 = 256;
/// Segments per request (seg_max), as QEMU's seg_max_adjust gives it.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Sense and CDB sizes until the driver writes others.
pub const DEFAULT_SENSE_SIZE: u32 = 96;
pub const DEFAULT_CDB_SIZE: u32 = 32;
/// Size of `struct virtio_scsi_config`.
pub const CONFIG_SIZE: usize = 36;
/// The control and event queues, before the request queues.
pub const FIXED_QUEUES: u16 = 2;
/// The most request queues: on virtio-pci each queue and the
/// configuration change take one MSI-X vector, and the transport's table
/// holds 128 (QEMU grows its MSI-X BAR past that and allows 1022).
pub const MAX_REQUEST_QUEUES: u16 = 125;
/// VIRTIO_SCSI_F_HOTPLUG and VIRTIO_SCSI_F_CHANGE, which QEMU offers
/// (no event is ever sent: nothing is hot-plugged and capacities are
/// fixed).
const FEATURES: u64 = 1 << 1 | 1 << 2;

/// Who hears of the guest's tray moves (START STOP UNIT), by target,
/// LUN and whether the tray is now open.
pub type TrayMoved = Arc<dyn Fn(u8, u16, bool) + Send + Sync>;

/// A disk of a LUN; requests carry no tag (they run inline).
pub type Disk = rvirt_block::Disk<()>;

/// What sits at a LUN.
pub enum Device {
    /// `scsi-hd`.
    Disk { disk: Disk, info: DiskInfo },
    /// `scsi-cd`, with its medium if one is in.
    Cdrom { medium: Option<Disk> },
}

/// A LUN as the command line places it.
pub struct LunSpec {
    /// `scsi-id=`.
    pub target: u8,
    /// `lun=`.
    pub lun: u16,
    pub device: Device,
}

enum Target {
    Disk(rvirt_scsi::disk::Disk),
    Cdrom(Cdrom),
}

struct Lun {
    target: u8,
    lun: u16,
    scsi: Target,
    disk: Option<Disk>,
    /// The power-on or reset unit attention, until a command reports it.
    reset_ua: bool,
}

struct Active {
    mem: Arc<Memory>,
    queues: Vec<Queue>,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// The controller and its LUNs.
pub struct Scsi {
    luns: Vec<Lun>,
    /// Every queue's size: control, event, then the request queues.
    queue_sizes: Vec<u16>,
    sense_size: u32,
    cdb_size: u32,
    active: Option<Active>,
    tray_moved: Option<TrayMoved>,
}

impl Scsi {
    /// A controller with these LUNs (two at one address: the later one is
    /// unreachable; the command line refuses that before) and
    /// `request_queues` request queues (1 to [`MAX_REQUEST_QUEUES`]; the
    /// command line checks, others are brought into that range).
    pub fn new(specs: Vec<LunSpec>, request_queues: u16) -> Self {
        let request_queues = request_queues.clamp(1, MAX_REQUEST_QUEUES);
        let luns = specs
            .into_iter()
            .map(|s| {
                let (scsi, disk) = match s.device {
                    Device::Disk { disk, info } => {
                        let wce = disk.write_cache();
                        (
                            Target::Disk(rvirt_scsi::disk::Disk::new(info, wce)),
                            Some(disk),
                        )
                    }
                    Device::Cdrom { medium } => {
                        let size = medium.as_ref().map(|d| d.len().unwrap_or(0));
                        (Target::Cdrom(Cdrom::new(size, Flavor::Scsi)), medium)
                    }
                };
                Lun {
                    target: s.target,
                    lun: s.lun,
                    scsi,
                    disk,
                    reset_ua: true,
                }
            })
            .collect();
        Scsi {
            luns,
            queue_sizes: vec![QUEUE_SIZE; usize::from(FIXED_QUEUES + request_queues)],
            sense_size: DEFAULT_SENSE_SIZE,
            cdb_size: DEFAULT_CDB_SIZE,
            active: None,
            tray_moved: None,
        }
    }

    /// How many request queues the guest sees (`num_queues`).
    pub fn request_queues(&self) -> u16 {
        self.queue_sizes.len() as u16 - FIXED_QUEUES
    }

    fn find(&mut self, target: u8, lun: u16) -> Option<&mut Lun> {
        self.luns
            .iter_mut()
            .find(|l| l.target == target && l.lun == lun)
    }

    /// The CD-ROM at `target`/`lun`, for the monitor's tray commands.
    pub fn cdrom(&mut self, target: u8, lun: u16) -> Option<&mut Cdrom> {
        match &mut self.find(target, lun)?.scsi {
            Target::Cdrom(cd) => Some(cd),
            Target::Disk(_) => None,
        }
    }

    /// Puts a new medium (or none) in the CD-ROM at `target`/`lun`; its
    /// tray must be open (the caller opened it).
    pub fn set_medium(&mut self, target: u8, lun: u16, medium: Option<Disk>) {
        if let Some(l) = self.find(target, lun) {
            if let Target::Cdrom(cd) = &mut l.scsi {
                cd.set_medium(medium.as_ref().map(|d| d.len().unwrap_or(0)));
                l.disk = medium;
            }
        }
    }

    /// Who hears of the guest's tray moves from now on (the monitor's
    /// DEVICE_TRAY_MOVED); kept across resets. Without one they wait for
    /// [`Scsi::take_tray_moves`].
    pub fn on_tray_moved(&mut self, f: TrayMoved) {
        self.tray_moved = Some(f);
    }

    /// The tray moves the guest made (START STOP UNIT) since the last
    /// call, by target and LUN.
    pub fn take_tray_moves(&mut self) -> Vec<(u8, u16, Tray)> {
        self.luns
            .iter_mut()
            .filter_map(|l| match &mut l.scsi {
                Target::Cdrom(cd) => cd.take_moved().map(|m| (l.target, l.lun, m)),
                Target::Disk(_) => None,
            })
            .collect()
    }

    /// The LUNs of `target`, for REPORT LUNS.
    fn luns_of(&self, target: u8) -> Vec<u16> {
        self.luns
            .iter()
            .filter(|l| l.target == target)
            .map(|l| l.lun)
            .collect()
    }

    /// Runs one command: the outcome for `cdb` at the address, with the
    /// bus's answers for REPORT LUNS and empty LUNs. None: no device on
    /// that target (BAD_TARGET).
    fn command(
        &mut self,
        target: u8,
        lun: u16,
        cdb: &[u8],
    ) -> Option<(Outcome, Option<&mut Disk>)> {
        let luns = self.luns_of(target);
        if luns.is_empty() {
            return None;
        }
        if cdb.first() == Some(&rvirt_scsi::op::REPORT_LUNS) {
            return Some((rvirt_scsi::target::report_luns(cdb, &luns), None));
        }
        let tray_moved = self.tray_moved.clone();
        let Some(l) = self.find(target, lun) else {
            return Some((rvirt_scsi::target::no_lun(cdb), None));
        };
        // As QEMU's bus: every LUN reports the reset first.
        if l.reset_ua {
            if let Some(out) = rvirt_scsi::target::unit_attention(cdb, Sense::POWER_ON_RESET) {
                l.reset_ua = false;
                return Some((out, None));
            }
        }
        let out = match &mut l.scsi {
            Target::Disk(d) => d.command(cdb),
            Target::Cdrom(cd) => {
                let out = cd.command(cdb);
                if let Some(f) = &tray_moved {
                    if let Some(m) = cd.take_moved() {
                        f(target, lun, m == Tray::Opened);
                    }
                }
                out
            }
        };
        Some((out, l.disk.as_mut()))
    }

    fn pump(&mut self, q: usize) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        if !active.queues[q].ready() {
            return;
        }
        let mem = active.mem.clone();
        let interrupt = active.interrupt.clone();
        let mut used = false;
        let result = (|| -> Result<(), virtio_queue::Error> {
            loop {
                let queue = self.queue(q);
                queue.disable_notification(&*mem)?;
                loop {
                    let queue = self.queue(q);
                    let Some(chain) = queue.iter(&*mem)?.next() else {
                        break;
                    };
                    let head = chain.head_index();
                    let len = if q == 0 {
                        self.control(&mem, chain)
                    } else {
                        self.request(&mem, chain)
                    };
                    self.queue(q).add_used(&*mem, head, len)?;
                    used = true;
                }
                if !self.queue(q).enable_notification(&*mem)? {
                    break;
                }
            }
            Ok(())
        })();
        if used && crate::queue_util::wants_interrupt(self.queue(q), &mem) {
            interrupt.signal_used_queue(q as u16);
        }
        if let Err(error) = result {
            tracing::warn!(queue = q, %error, "broken virtqueue, device needs reset");
            interrupt.signal_needs_reset();
        }
    }

    fn queue(&mut self, q: usize) -> &mut Queue {
        // Only called while active, with a queue the device has
        // (process_queue checks).
        &mut self
            .active
            .as_mut()
            .expect("queue of an active device")
            .queues[q]
    }

    /// A control-queue request; returns the bytes written.
    fn control(&mut self, mem: &Memory, chain: DescriptorChain<&Memory>) -> u32 {
        let segs = crate::chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        if let Some(fault) = segs.fault {
            tracing::debug!(%fault, "virtio-scsi control request refused");
            return 0;
        }
        match request::control(mem, &segs, |target, lun| {
            self.luns.iter().any(|l| l.target == target) && lun <= LUN_MAX
        }) {
            Ok(n) => n,
            Err(error) => {
                tracing::debug!(%error, "virtio-scsi control request refused");
                0
            }
        }
    }

    /// A command request; returns the bytes written.
    fn request(&mut self, mem: &Memory, chain: DescriptorChain<&Memory>) -> u32 {
        let segs = crate::chain::collect(mem, chain, usize::from(QUEUE_SIZE));
        if let Some(fault) = segs.fault {
            tracing::debug!(%fault, "virtio-scsi request refused");
            return 0;
        }
        let cmd = match request::Command::parse(mem, &segs, self.cdb_size, self.sense_size) {
            Ok(c) => c,
            Err(error) => {
                tracing::debug!(%error, "virtio-scsi request refused");
                return 0;
            }
        };
        let resp = match cmd.address {
            None => Response::new(request::response::BAD_TARGET),
            Some((target, lun)) => match self.command(target, lun, &cmd.cdb) {
                None => Response::new(request::response::BAD_TARGET),
                Some((out, disk)) => execute(mem, &cmd, out, disk),
            },
        };
        cmd.respond(mem, &resp)
    }
}

/// Carries out what a command does; the response for the guest.
fn execute(
    mem: &Memory,
    cmd: &request::Command,
    out: Outcome,
    disk: Option<&mut Disk>,
) -> Response {
    let din = crate::chain::total_len(&cmd.data_in);
    let dout = crate::chain::total_len(&cmd.data_out);
    let resid = |moved: u64, total: u64| u32::try_from(total - moved).unwrap_or(u32::MAX);
    // Buffers both ways: QEMU fails such a request (no bidirectional
    // commands, VIRTIO_SCSI_F_INOUT is not offered).
    if din > 0 && dout > 0 {
        return Response::new(request::response::FAILURE);
    }
    let io = |disk: Option<&mut Disk>, op: Op| -> Result<(), Sense> {
        let Some(disk) = disk else {
            return Err(Sense::NO_MEDIUM);
        };
        let done = match disk.submit(DiskRequest { tag: (), op }) {
            Some(d) => d,
            None => {
                // An engine that runs elsewhere: wait for it here.
                disk.commit();
                let mut out: Vec<Done<()>> = Vec::new();
                if let Err(error) = disk.settle(&mut out, crate::blk::SETTLE_LIMIT) {
                    tracing::warn!(%error, "virtio-scsi disk did not settle");
                    return Err(Sense::IO_ERROR);
                }
                match out.pop() {
                    Some(d) => d,
                    None => return Err(Sense::IO_ERROR),
                }
            }
        };
        done.result.map_err(|error| {
            tracing::debug!(%error, "virtio-scsi I/O failed");
            Sense::IO_ERROR
        })
    };
    let check = |s: Sense, din_total: u64| {
        let mut r = Response::check(s);
        r.resid = resid(0, din_total.max(dout));
        r
    };
    match out {
        Outcome::Good => Response {
            resid: resid(0, din.max(dout)),
            ..Response::good()
        },
        Outcome::Data(bytes) => {
            if dout > 0 {
                return Response::new(request::response::OVERRUN);
            }
            match request::write_segments(mem, &cmd.data_in, &bytes) {
                Ok(n) => Response {
                    resid: resid(n as u64, din),
                    data_in: n as u32,
                    ..Response::good()
                },
                Err(_) => Response::new(request::response::FAILURE),
            }
        }
        Outcome::Read { offset, len } => {
            if len > din {
                return Response::new(request::response::OVERRUN);
            }
            let segs = request::truncate(&cmd.data_in, len);
            let Some(bufs) = crate::blk::exec::guest_bufs(mem, &segs) else {
                return Response::new(request::response::FAILURE);
            };
            match io(disk, Op::Read { offset, bufs }) {
                Ok(()) => Response {
                    resid: resid(len, din),
                    data_in: len as u32,
                    ..Response::good()
                },
                Err(s) => check(s, din),
            }
        }
        Outcome::Write { offset, len } => {
            if len > dout {
                return Response::new(request::response::OVERRUN);
            }
            let segs = request::truncate(&cmd.data_out, len);
            let Some(bufs) = crate::blk::exec::guest_bufs(mem, &segs) else {
                return Response::new(request::response::FAILURE);
            };
            match io(disk, Op::Write { offset, bufs }) {
                Ok(()) => Response {
                    resid: resid(len, dout),
                    ..Response::good()
                },
                Err(s) => check(s, dout),
            }
        }
        Outcome::Flush => match io(disk, Op::Flush) {
            Ok(()) => Response::good(),
            Err(s) => check(s, 0),
        },
        Outcome::Check(s) => check(s, din),
    }
}

impl VirtioDevice for Scsi {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn device_features(&self) -> u64 {
        FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let mut c = [0u8; CONFIG_SIZE];
        let fields: [u32; 7] = [
            u32::from(self.request_queues()), // num_queues
            SEG_MAX,
            0xffff, // max_sectors
            128,    // cmd_per_lun
            16,     // event_info_size
            self.sense_size,
            self.cdb_size,
        ];
        for (i, v) in fields.iter().enumerate() {
            c[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        // max_channel 0, max_target, max_lun.
        c[30..32].copy_from_slice(&u16::from(TARGET_MAX).to_le_bytes());
        c[32..36].copy_from_slice(&u32::from(LUN_MAX).to_le_bytes());
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start < CONFIG_SIZE {
            let n = data.len().min(CONFIG_SIZE - start);
            data[..n].copy_from_slice(&c[start..start + n]);
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // sense_size (20) and cdb_size (24) are the driver's to set, as
        // whole 32-bit fields; QEMU refuses sizes the header cannot hold.
        let Ok(v) = <[u8; 4]>::try_from(data) else {
            tracing::debug!(offset, len = data.len(), "ignored virtio-scsi config write");
            return;
        };
        let v = u32::from_le_bytes(v);
        match offset {
            20 if v < 65536 => self.sense_size = v,
            24 if v < 256 => self.cdb_size = v,
            _ => tracing::debug!(offset, v, "ignored virtio-scsi config write"),
        }
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        // Only a request queue must be there: SeaBIOS sets up the first
        // alone, a driver may use any of them, and QEMU serves each that
        // is ready.
        let (got, expected) = (ctx.queues.len(), self.queue_sizes.len());
        if got != expected {
            return Err(ActivateError::QueueCount { expected, got });
        }
        if !ctx.queues[usize::from(FIXED_QUEUES)..]
            .iter()
            .any(|q| q.ready())
        {
            return Err(ActivateError::QueueNotReady(usize::from(FIXED_QUEUES)));
        }
        self.active = Some(Active {
            mem: Arc::new(ctx.mem),
            queues: ctx.queues,
            interrupt: ctx.interrupt,
        });
        Ok(())
    }

    fn reset(&mut self) {
        // Every request ran to its end inline: nothing is in flight. The
        // bus resets its LUNs, each with a unit attention to report.
        self.active = None;
        for l in &mut self.luns {
            l.reset_ua = true;
        }
        self.sense_size = DEFAULT_SENSE_SIZE;
        self.cdb_size = DEFAULT_CDB_SIZE;
    }

    fn process_queue(&mut self, queue: u16) {
        // The event queue's buffers wait for events that never come.
        if self.active.is_none() || queue == 1 || usize::from(queue) >= self.queue_sizes.len() {
            return;
        }
        self.pump(usize::from(queue));
    }
}
