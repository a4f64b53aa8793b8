//! virtio-input (device type 18) as QEMU's `virtio-keyboard`,
//! `virtio-mouse` and `virtio-tablet`: the configuration space answers
//! the driver's selects (name, IDs, event bits, absolute axes) as QEMU
//! 7.2's devices do, evdev events go out on the event queue, and the
//! status queue (keyboard LEDs) is consumed.
//!
//! Events come from the console's threads ([`Input::send`]), one batch
//! per input report, ended by SYN_REPORT. A batch waits in a bounded queue
//! for the driver's buffers; a batch that does not fit is dropped whole,
//! so a guest that posts no buffers loses input, never memory.

use std::collections::VecDeque;
use std::sync::Arc;

use rvirt_input::evdev::*;
use virtio_bindings::virtio_ids::VIRTIO_ID_INPUT;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;

use crate::chain::{self, Segment};
use crate::ratelimit::warn_limited;
use crate::{queue_util, ActivateContext, ActivateError, Memory, VirtioDevice, VirtioInterrupt};

/// Size of both queues (QEMU's 64).
pub const QUEUE_SIZE: u16 = 64;
/// Events held for the driver at most.
pub const MAX_PENDING: usize = 256;
/// `struct virtio_input_config`: select, subsel, size, 5 reserved, 128
/// bytes of answer.
pub const CONFIG_SIZE: usize = 136;

const EVENT_QUEUE: u16 = 0;
const STATUS_QUEUE: u16 = 1;

/// The config space selects (virtio spec 5.8.4).
pub mod select {
    pub const UNSET: u8 = 0x00;
    pub const ID_NAME: u8 = 0x01;
    pub const ID_SERIAL: u8 = 0x02;
    pub const ID_DEVIDS: u8 = 0x03;
    pub const PROP_BITS: u8 = 0x10;
    pub const EV_BITS: u8 = 0x11;
    pub const ABS_INFO: u8 = 0x12;
}

/// The largest absolute coordinate a tablet reports (QEMU's
/// INPUT_EVENT_ABS_MAX; its minimum is 0).
pub const ABS_MAX: u32 = 0x7fff;

/// Which of QEMU's devices this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Keyboard,
    /// Relative motion, buttons and the wheel.
    Mouse,
    /// Absolute position (0..=[`ABS_MAX`]), buttons and the wheel.
    Tablet,
}

/// One evdev event (`struct virtio_input_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: u32,
}

impl InputEvent {
    pub fn new(kind: u16, code: u16, value: i32) -> Self {
        InputEvent {
            kind,
            code,
            value: value as u32,
        }
    }

    fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.code.to_le_bytes());
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }

    fn from_bytes(b: [u8; 8]) -> Self {
        InputEvent {
            kind: u16::from_le_bytes([b[0], b[1]]),
            code: u16::from_le_bytes([b[2], b[3]]),
            value: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// The buttons QEMU's mouse and tablet describe (`keymap_button` of QEMU
/// 7.2: no BTN_TOUCH yet).
const BUTTONS: [u16; 7] = [
    BTN_LEFT,
    BTN_RIGHT,
    BTN_MIDDLE,
    BTN_GEAR_UP,
    BTN_GEAR_DOWN,
    BTN_SIDE,
    BTN_EXTRA,
];

/// A bitmap answer with `bits` set, as long as its highest byte.
fn bitmap(bits: impl IntoIterator<Item = u16>) -> Vec<u8> {
    let mut map = Vec::new();
    for bit in bits {
        let byte = usize::from(bit / 8);
        if map.len() <= byte {
            map.resize(byte + 1, 0);
        }
        map[byte] |= 1 << (bit % 8);
    }
    map
}

fn name(s: &str) -> Vec<u8> {
    // QEMU's sizes count the terminating NUL (`sizeof` of the literal).
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn devids(product: u16, version: u16) -> Vec<u8> {
    [BUS_VIRTUAL, 0x0627, product, version]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn absinfo(max: u32) -> Vec<u8> {
    // min, max, fuzz, flat, res.
    [0, max, 0, 0, 0]
        .iter()
        .flat_map(|v: &u32| v.to_le_bytes())
        .collect()
}

/// (select, subsel, answer) for every question the device answers; any
/// other reads as size 0.
fn config_entries(kind: InputKind) -> Vec<(u8, u8, Vec<u8>)> {
    use select::*;
    match kind {
        InputKind::Keyboard => vec![
            (ID_NAME, 0, name("QEMU Virtio Keyboard")),
            (ID_DEVIDS, 0, devids(1, 1)),
            (EV_BITS, EV_REP as u8, vec![0]),
            (
                EV_BITS,
                EV_LED as u8,
                bitmap([LED_NUML, LED_CAPSL, LED_SCROLLL]),
            ),
            (
                EV_BITS,
                EV_KEY as u8,
                bitmap(rvirt_input::keys().map(|k| k.linux)),
            ),
        ],
        InputKind::Mouse => vec![
            (ID_NAME, 0, name("QEMU Virtio Mouse")),
            (ID_DEVIDS, 0, devids(2, 2)),
            (EV_BITS, EV_REL as u8, bitmap([REL_X, REL_Y, REL_WHEEL])),
            (EV_BITS, EV_KEY as u8, bitmap(BUTTONS)),
        ],
        InputKind::Tablet => vec![
            (ID_NAME, 0, name("QEMU Virtio Tablet")),
            (ID_DEVIDS, 0, devids(3, 2)),
            (EV_BITS, EV_ABS as u8, bitmap([ABS_X, ABS_Y])),
            (EV_BITS, EV_REL as u8, bitmap([REL_WHEEL])),
            (ABS_INFO, ABS_X as u8, absinfo(ABS_MAX)),
            (ABS_INFO, ABS_Y as u8, absinfo(ABS_MAX)),
            (EV_BITS, EV_KEY as u8, bitmap(BUTTONS)),
        ],
    }
}

struct Active {
    mem: Memory,
    events: Queue,
    status: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
}

/// A virtio keyboard, mouse or tablet.
pub struct Input {
    kind: InputKind,
    entries: Vec<(u8, u8, Vec<u8>)>,
    select: u8,
    subsel: u8,
    pending: VecDeque<InputEvent>,
    active: Option<Active>,
    /// LED_NUML, LED_CAPSL, LED_SCROLLL as bits 0-2, as the driver set them.
    leds: u8,
}

impl Input {
    pub fn new(kind: InputKind) -> Self {
        Input {
            kind,
            entries: config_entries(kind),
            select: 0,
            subsel: 0,
            pending: VecDeque::new(),
            active: None,
            leds: 0,
        }
    }

    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// Whether the driver runs the device (QEMU routes the console's input
    /// to a virtio-input device from then on).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The keyboard LEDs as the driver last set them (bit 0 Num, 1 Caps,
    /// 2 Scroll Lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// One input report: `events` and a SYN_REPORT after them. Returns
    /// false if it was dropped (no driver, or too much waiting).
    pub fn send(&mut self, events: &[InputEvent]) -> bool {
        if self.active.is_none() || self.pending.len() + events.len() + 1 > MAX_PENDING {
            return false;
        }
        self.pending.extend(events);
        self.pending
            .push_back(InputEvent::new(EV_SYN, SYN_REPORT, 0));
        self.deliver();
        true
    }

    /// Events waiting for the driver's buffers.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Moves waiting events into the event queue's buffers, one event per
    /// buffer, until one side runs out.
    fn deliver(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let pending = &mut self.pending;
        let mut used = false;
        let result = (|| -> Result<(), virtio_queue::Error> {
            let mut rechecked = false;
            while let Some(&event) = pending.front() {
                let Some(chain) = active.events.iter(mem)?.next() else {
                    // No buffer: ask for a kick when the driver posts one,
                    // re-checking once for one posted meanwhile.
                    if active.events.enable_notification(mem)? && !rechecked {
                        rechecked = true;
                        continue;
                    }
                    break;
                };
                rechecked = false;
                let head = chain.head_index();
                let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
                let mut written = 0;
                match (segs.fault, segs.writable.first()) {
                    (None, Some(&Segment { addr, len })) if len >= 8 => {
                        if mem.write_slice(&event.to_bytes(), addr).is_ok() {
                            written = 8;
                        }
                    }
                    (fault, _) => {
                        tracing::debug!(
                            ?fault,
                            "virtio-input: event buffer unusable, event dropped"
                        )
                    }
                }
                pending.pop_front();
                active.events.add_used(mem, head, written)?;
                used = true;
            }
            Ok(())
        })();
        if used && queue_util::wants_interrupt(&mut active.events, mem) {
            active.interrupt.signal_used_queue(EVENT_QUEUE);
        }
        if let Err(error) = result {
            warn_limited!(%error, "virtio-input: broken event queue, device needs reset");
            active.interrupt.signal_needs_reset();
        }
    }

    /// Reads the driver's status events (LEDs).
    fn status(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mem = &active.mem;
        let leds = &mut self.leds;
        queue_util::drain(
            &mut active.status,
            mem,
            STATUS_QUEUE,
            &*active.interrupt,
            |chain| {
                let segs = chain::collect(mem, chain, usize::from(QUEUE_SIZE));
                let mut b = [0u8; 8];
                match (segs.fault, segs.readable.first()) {
                    (None, Some(&Segment { addr, len })) if len >= 8 => {
                        if mem.read_slice(&mut b, addr).is_err() {
                            return 0;
                        }
                    }
                    _ => {
                        tracing::debug!("virtio-input: status buffer unusable");
                        return 0;
                    }
                }
                let e = InputEvent::from_bytes(b);
                match (e.kind, e.code) {
                    (EV_LED, code @ (LED_NUML | LED_CAPSL | LED_SCROLLL)) => {
                        let bit = 1 << code;
                        if e.value != 0 {
                            *leds |= bit;
                        } else {
                            *leds &= !bit;
                        }
                    }
                    (kind, code) => {
                        tracing::debug!(kind, code, "virtio-input: status event ignored")
                    }
                }
                0
            },
        );
    }

    /// The configuration space as the driver's select and subsel ask.
    fn config_image(&self) -> [u8; CONFIG_SIZE] {
        let mut c = [0u8; CONFIG_SIZE];
        c[0] = self.select;
        c[1] = self.subsel;
        if let Some((_, _, answer)) = self
            .entries
            .iter()
            .find(|(s, sub, _)| *s == self.select && *sub == self.subsel)
        {
            // Every answer is made here and fits in 128 bytes.
            let n = answer.len().min(128);
            c[2] = n as u8;
            c[8..8 + n].copy_from_slice(&answer[..n]);
        }
        c
    }
}

impl VirtioDevice for Input {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_INPUT
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let image = self.config_image();
        for (i, b) in data.iter_mut().enumerate() {
            match usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| image.get(o))
            {
                Some(&v) => *b = v,
                None => break,
            }
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only select and subsel are the driver's to write.
        for (i, &b) in data.iter().enumerate() {
            match offset.checked_add(i as u64) {
                Some(0) => self.select = b,
                Some(1) => self.subsel = b,
                _ => tracing::debug!(offset, "virtio-input: read-only config write ignored"),
            }
        }
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let [events, status] = crate::device::ready_queues(ctx.queues)?;
        self.active = Some(Active {
            mem: ctx.mem,
            events,
            status,
            interrupt: ctx.interrupt,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.pending.clear();
        self.select = 0;
        self.subsel = 0;
    }

    fn process_queue(&mut self, queue: u16) {
        match queue {
            EVENT_QUEUE => self.deliver(),
            STATUS_QUEUE => self.status(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
