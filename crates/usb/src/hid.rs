//! QEMU 7.2's USB HID devices (`hw/usb/dev-hid.c`, `hw/input/hid.c`):
//! `usb-tablet` (absolute 0..0x7fff, three buttons, a wheel), `usb-mouse`
//! (relative, boot protocol) and `usb-kbd` (boot keyboard with its LED
//! output report), with QEMU's IDs (0627:0001), strings and USB 2.0
//! descriptors (`usb_version=2`, QEMU's default: high speed on xHCI).
//!
//! Input arrives as console events ([`Hid::pointer_abs`], [`Hid::pointer_rel`],
//! [`Hid::key`]) and waits in a queue of 16 as QEMU's does; the interrupt IN
//! endpoint answers a report while one is queued and NAKs otherwise (the
//! controller keeps the transfer pending and retries on the next event).
//!
//! What a guest could notice against QEMU: no idle-rate repetition
//! (SET_IDLE is kept and read back, reports are only sent on change, as
//! with the idle rate 0 that Linux and Windows set); no Microsoft OS
//! descriptors.

use std::collections::VecDeque;

use crate::device::{Descriptors, In, Reply, Setup, Speed, StdState, UsbDevice};

/// Which HID device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HidKind {
    Tablet,
    Mouse,
    Keyboard,
}

/// QEMU's queue length (hw/input/hid.c).
const QUEUE_LEN: usize = 16;

const VENDOR: u16 = 0x0627;
const PRODUCT: u16 = 0x0001;

/// The strings, numbered as QEMU's (index 1 first).
const STRINGS: [&str; 11] = [
    "QEMU",
    "QEMU USB Mouse",
    "QEMU USB Tablet",
    "QEMU USB Keyboard",
    "42",
    "HID Mouse",
    "HID Tablet",
    "HID Keyboard",
    "89126",
    "28754",
    "68284",
];

pub const MOUSE_REPORT_DESCRIPTOR: [u8; 52] = [
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05, 0x09, 0x19, 0x01, 0x29, 0x03,
    0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x05, 0x81, 0x01,
    0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7f, 0x75, 0x08, 0x95, 0x03,
    0x81, 0x06, 0xc0, 0xc0,
];

pub const TABLET_REPORT_DESCRIPTOR: [u8; 74] = [
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05, 0x09, 0x19, 0x01, 0x29, 0x03,
    0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x05, 0x81, 0x01,
    0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x15, 0x00, 0x26, 0xff, 0x7f, 0x35, 0x00, 0x46, 0xff, 0x7f,
    0x75, 0x10, 0x95, 0x02, 0x81, 0x02, 0x05, 0x01, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7f, 0x35, 0x00,
    0x45, 0x00, 0x75, 0x08, 0x95, 0x01, 0x81, 0x06, 0xc0, 0xc0,
];

pub const KEYBOARD_REPORT_DESCRIPTOR: [u8; 63] = [
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x75, 0x01, 0x95, 0x08, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7,
    0x15, 0x00, 0x25, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01, 0x95, 0x05, 0x75, 0x01,
    0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x01, 0x95, 0x06,
    0x75, 0x08, 0x15, 0x00, 0x25, 0xff, 0x05, 0x07, 0x19, 0x00, 0x29, 0xff, 0x81, 0x00, 0xc0,
];

/// HID class requests (bmRequestType << 8 | bRequest).
const GET_REPORT: u16 = 0xa101;
const GET_IDLE: u16 = 0xa102;
const GET_PROTOCOL: u16 = 0xa103;
const SET_REPORT: u16 = 0x2109;
const SET_IDLE: u16 = 0x210a;
const SET_PROTOCOL: u16 = 0x210b;

/// Buttons in HID order (bit 0 left, 1 right, 2 middle).
pub mod buttons {
    pub const LEFT: u8 = 1;
    pub const RIGHT: u8 = 2;
    pub const MIDDLE: u8 = 4;
}

/// One queued pointer state: position (tablet) or motion (mouse).
#[derive(Clone, Copy, Debug, Default)]
struct PointerEvent {
    x: i32,
    y: i32,
    dz: i32,
    buttons: u8,
}

/// One HID device.
pub struct Hid {
    kind: HidKind,
    std: StdState,
    desc: Descriptors,
    /// Pointer states not yet reported, oldest first; the last one is
    /// where new input merges while its buttons match.
    pointer: VecDeque<PointerEvent>,
    /// The pointer as it is now (absolute position and buttons).
    now: PointerEvent,
    /// Key events (usage, down) not yet reported.
    keys_queued: VecDeque<(u8, bool)>,
    modifiers: u8,
    pressed: Vec<u8>,
    leds: u8,
    protocol: u8,
    idle: u8,
    /// The guest's driver has polled or set the idle rate: QEMU then puts
    /// this pointer first among the console's input handlers.
    active: bool,
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}

impl Hid {
    pub fn new(kind: HidKind) -> Self {
        Hid {
            kind,
            std: StdState::default(),
            desc: Self::descriptors(kind),
            pointer: VecDeque::new(),
            now: PointerEvent::default(),
            keys_queued: VecDeque::new(),
            modifiers: 0,
            pressed: Vec::new(),
            leds: 0,
            protocol: 1,
            idle: 0,
            active: false,
        }
    }

    pub fn kind(&self) -> HidKind {
        self.kind
    }

    /// Whether the guest's driver runs (see the field's comment); a
    /// keyboard takes keys from the start, as QEMU activates it at once.
    pub fn is_active(&self) -> bool {
        self.active || self.kind == HidKind::Keyboard
    }

    /// The LEDs the guest set (bit 0 Num Lock, 1 Caps Lock, 2 Scroll Lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// The device, configuration and string descriptors, as QEMU's
    /// `desc_*2` (high speed) with its full-speed set as the other speed.
    fn descriptors(kind: HidKind) -> Descriptors {
        let (product, serial, config_str, subclass, protocol, report_len, max_packet, hid_ver) =
            match kind {
                HidKind::Mouse => (2, 9, 6, 1, 2, 52u16, 4u16, 0x0001u16),
                HidKind::Tablet => (3, 10, 7, 0, 0, 74, 8, 0x0001),
                HidKind::Keyboard => (4, 11, 8, 1, 1, 63, 8, 0x0111),
            };
        // bInterval: high speed 2^(n-1) microframes (tablet 1 ms, the
        // others 8 ms); full speed 10 ms.
        let (interval_hs, interval_fs) = match kind {
            HidKind::Tablet => (4, 10),
            _ => (7, 10),
        };
        let config = |interval: u8| {
            let mut c = vec![9, 2, 34, 0, 1, 1, config_str, 0xa0, 50];
            c.extend_from_slice(&[9, 4, 0, 0, 1, 3, subclass, protocol, 0]);
            c.extend_from_slice(&[9, 0x21]);
            c.extend_from_slice(&le16(hid_ver));
            c.extend_from_slice(&[0, 1, 0x22]);
            c.extend_from_slice(&le16(report_len));
            c.extend_from_slice(&[7, 5, 0x81, 3]);
            c.extend_from_slice(&le16(max_packet));
            c.push(interval);
            c
        };
        let mut device = [0u8; 18];
        device[..8].copy_from_slice(&[18, 1, 0x00, 0x02, 0, 0, 0, 64]);
        device[8..10].copy_from_slice(&le16(VENDOR));
        device[10..12].copy_from_slice(&le16(PRODUCT));
        device[12..].copy_from_slice(&[0, 0, 1, product, serial, 1]);
        let mut strings: Vec<String> = STRINGS.iter().map(|s| s.to_string()).collect();
        // QEMU's usb_desc_create_serial: the base serial, then the port.
        let s = usize::from(serial) - 1;
        strings[s] = format!("{}-1", STRINGS[s]);
        Descriptors {
            device,
            config: config(interval_hs),
            other_config: config(interval_fs),
            other_max_packet0: 8,
            strings,
        }
    }

    /// Where the device is, for its serial number string as QEMU's
    /// `usb_desc_create_serial` makes it: the base serial, the
    /// controller's device path (`0000:00:04.0` for a PCI controller),
    /// the port.
    pub fn set_location(&mut self, controller: Option<&str>, port: u8) {
        let s = usize::from(self.desc.device[16]) - 1;
        self.desc.strings[s] = match controller {
            Some(path) => format!("{}-{path}-{port}", STRINGS[s]),
            None => format!("{}-{port}", STRINGS[s]),
        };
    }

    fn report_descriptor(&self) -> &'static [u8] {
        match self.kind {
            HidKind::Mouse => &MOUSE_REPORT_DESCRIPTOR,
            HidKind::Tablet => &TABLET_REPORT_DESCRIPTOR,
            HidKind::Keyboard => &KEYBOARD_REPORT_DESCRIPTOR,
        }
    }

    /// Queues the pointer's state after an event: QEMU's `hid_pointer_sync`
    /// merges into the newest queued state while the buttons are the same,
    /// and drops events (keeping the buttons) when the queue is full.
    fn sync(&mut self, delta: PointerEvent) {
        let absolute = self.kind == HidKind::Tablet;
        if let Some(last) = self.pointer.back_mut() {
            if last.buttons == delta.buttons {
                if absolute {
                    last.x = delta.x;
                    last.y = delta.y;
                } else {
                    last.x = last.x.saturating_add(delta.x);
                    last.y = last.y.saturating_add(delta.y);
                }
                last.dz = last.dz.saturating_add(delta.dz);
                return;
            }
        }
        if self.pointer.len() >= QUEUE_LEN - 1 {
            return;
        }
        self.pointer.push_back(delta);
    }

    /// A tablet event: position in 0..=0x7fff, buttons in HID order, wheel
    /// steps (positive up).
    pub fn pointer_abs(&mut self, x: u32, y: u32, buttons: u8, wheel: i32) {
        self.now = PointerEvent {
            x: x.min(0x7fff) as i32,
            y: y.min(0x7fff) as i32,
            dz: wheel,
            buttons: buttons & 7,
        };
        let now = self.now;
        self.sync(now);
    }

    /// A mouse event: motion, buttons in HID order, wheel steps (positive
    /// up).
    pub fn pointer_rel(&mut self, dx: i32, dy: i32, buttons: u8, wheel: i32) {
        self.sync(PointerEvent {
            x: dx,
            y: dy,
            dz: wheel,
            buttons: buttons & 7,
        });
    }

    /// A key event by its qnum (rvirt-input's key numbering).
    pub fn key(&mut self, qnum: u16, down: bool) {
        let Some(usage) = usage_of_qnum(qnum) else {
            tracing::debug!(qnum, "usb-kbd: no HID usage for this key");
            return;
        };
        if self.keys_queued.len() >= QUEUE_LEN {
            tracing::debug!("usb-kbd: queue full, key dropped");
            return;
        }
        self.keys_queued.push_back((usage, down));
    }

    fn has_events(&self) -> bool {
        match self.kind {
            HidKind::Keyboard => !self.keys_queued.is_empty(),
            _ => !self.pointer.is_empty(),
        }
    }

    /// The next pointer report (QEMU's `hid_pointer_poll`): the tablet's 6
    /// bytes, the mouse's 4 (motion clamped to ±127, the rest left for the
    /// next report).
    fn pointer_report(&mut self) -> Vec<u8> {
        let e = self.pointer.front().copied().unwrap_or(PointerEvent {
            x: self.now.x,
            y: self.now.y,
            dz: 0,
            buttons: self.now.buttons,
        });
        let dz = e.dz.clamp(-127, 127);
        let b = e.buttons;
        match self.kind {
            HidKind::Tablet => {
                self.pointer.pop_front();
                vec![
                    b,
                    e.x as u8,
                    (e.x >> 8) as u8,
                    e.y as u8,
                    (e.y >> 8) as u8,
                    dz as u8,
                ]
            }
            _ => {
                let dx = e.x.clamp(-127, 127);
                let dy = e.y.clamp(-127, 127);
                if let Some(f) = self.pointer.front_mut() {
                    f.x -= dx;
                    f.y -= dy;
                    f.dz -= dz;
                    if f.x == 0 && f.y == 0 && f.dz == 0 {
                        self.pointer.pop_front();
                    }
                }
                vec![b, dx as u8, dy as u8, dz as u8]
            }
        }
    }

    /// The next keyboard report after one queued key event (QEMU processes
    /// one per poll): modifiers, a reserved byte, six keys (or six
    /// "rollover" errors with more pressed).
    fn keyboard_report(&mut self) -> Vec<u8> {
        if let Some((usage, down)) = self.keys_queued.pop_front() {
            if (0xe0..=0xe7).contains(&usage) {
                let bit = 1 << (usage - 0xe0);
                if down {
                    self.modifiers |= bit;
                } else {
                    self.modifiers &= !bit;
                }
            } else if down {
                if !self.pressed.contains(&usage) && self.pressed.len() < 32 {
                    self.pressed.push(usage);
                }
            } else {
                self.pressed.retain(|&k| k != usage);
            }
        }
        let mut r = vec![self.modifiers, 0, 0, 0, 0, 0, 0, 0];
        if self.pressed.len() > 6 {
            r[2..].fill(0x01);
        } else {
            r[2..2 + self.pressed.len()].copy_from_slice(&self.pressed);
        }
        r
    }

    fn report(&mut self) -> Vec<u8> {
        match self.kind {
            HidKind::Keyboard => self.keyboard_report(),
            _ => self.pointer_report(),
        }
    }
}

impl UsbDevice for Hid {
    fn speed(&self) -> Speed {
        Speed::High
    }

    fn reset(&mut self) {
        self.std = StdState::default();
        self.pointer.clear();
        self.keys_queued.clear();
        self.modifiers = 0;
        self.pressed.clear();
        self.protocol = 1;
        self.idle = 0;
    }

    fn set_address(&mut self, address: u8) {
        self.std.address = address;
    }

    fn control(&mut self, s: &Setup, out: &[u8]) -> Reply {
        if let Some(r) = self.desc.standard(&mut self.std, s) {
            return r;
        }
        let pointer = self.kind != HidKind::Keyboard;
        match (u16::from(s.request_type) << 8) | u16::from(s.request) {
            // Interface GET_DESCRIPTOR: the report descriptor.
            0x8106 if s.value >> 8 == 0x22 => Reply::Data(self.report_descriptor().to_vec()),
            GET_REPORT => Reply::Data(self.report()),
            SET_REPORT if self.kind == HidKind::Keyboard => {
                if let Some(&l) = out.first() {
                    self.leds = l;
                }
                Reply::Data(vec![])
            }
            GET_PROTOCOL if self.kind != HidKind::Tablet => Reply::Data(vec![self.protocol]),
            SET_PROTOCOL if self.kind != HidKind::Tablet => {
                self.protocol = s.value as u8;
                Reply::Data(vec![])
            }
            GET_IDLE => Reply::Data(vec![self.idle]),
            SET_IDLE => {
                self.idle = (s.value >> 8) as u8;
                if pointer {
                    self.active = true;
                }
                Reply::Data(vec![])
            }
            _ => Reply::Stall,
        }
    }

    fn data_in(&mut self, ep: u8, max: usize) -> In {
        if ep != 1 {
            return In::Stall;
        }
        if self.kind != HidKind::Keyboard {
            self.active = true;
        }
        if !self.has_events() {
            return In::Nak;
        }
        let mut r = self.report();
        r.truncate(max);
        In::Data(r)
    }
}

/// The HID usage (page 7) of a key by its qnum, as QEMU's
/// `hid_usage_keys`. By hand: no crate maps PC scancodes to HID usages.
pub fn usage_of_qnum(qnum: u16) -> Option<u8> {
    const MAIN: [u8; 0x59] = [
        0x00, 0x29, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, // 0x00
        0x24, 0x25, 0x26, 0x27, 0x2d, 0x2e, 0x2a, 0x2b, // 0x08
        0x14, 0x1a, 0x08, 0x15, 0x17, 0x1c, 0x18, 0x0c, // 0x10
        0x12, 0x13, 0x2f, 0x30, 0x28, 0xe0, 0x04, 0x16, // 0x18
        0x07, 0x09, 0x0a, 0x0b, 0x0d, 0x0e, 0x0f, 0x33, // 0x20
        0x34, 0x35, 0xe1, 0x31, 0x1d, 0x1b, 0x06, 0x19, // 0x28
        0x05, 0x11, 0x10, 0x36, 0x37, 0x38, 0xe5, 0x55, // 0x30
        0xe2, 0x2c, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, // 0x38
        0x3f, 0x40, 0x41, 0x42, 0x43, 0x53, 0x47, 0x5f, // 0x40
        0x60, 0x61, 0x56, 0x5c, 0x5d, 0x5e, 0x57, 0x59, // 0x48
        0x5a, 0x5b, 0x62, 0x63, 0x00, 0x00, 0x64, 0x44, // 0x50
        0x45, // 0x58
    ];
    let u = match qnum {
        q if q < 0x59 => MAIN[q as usize],
        0x9c => 0x58,
        0x9d => 0xe4,
        0xb5 => 0x54,
        0xb7 => 0x46,
        0xb8 => 0xe6,
        0xc7 => 0x4a,
        0xc8 => 0x52,
        0xc9 => 0x4b,
        0xcb => 0x50,
        0xcd => 0x4f,
        0xcf => 0x4d,
        0xd0 => 0x51,
        0xd1 => 0x4e,
        0xd2 => 0x49,
        0xd3 => 0x4c,
        0xdb => 0xe3,
        0xdc => 0xe7,
        0xdd => 0x65,
        _ => 0,
    };
    (u != 0).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(h: &mut Hid, rt: u8, req: u8, value: u16, len: u16) -> Reply {
        h.control(
            &Setup {
                request_type: rt,
                request: req,
                value,
                index: 0,
                length: len,
            },
            &[],
        )
    }

    #[test]
    fn tablet_descriptors_as_qemu() {
        let mut h = Hid::new(HidKind::Tablet);
        assert_eq!(
            get(&mut h, 0x80, 6, 0x0100, 18),
            Reply::Data(vec![
                18, 1, 0, 2, 0, 0, 0, 64, 0x27, 6, 1, 0, 0, 0, 1, 3, 10, 1
            ])
        );
        let Reply::Data(c) = get(&mut h, 0x80, 6, 0x0200, 255) else {
            panic!()
        };
        assert_eq!(c.len(), 34);
        assert_eq!(&c[18..27], &[9, 0x21, 1, 0, 0, 1, 0x22, 74, 0]);
        assert_eq!(&c[27..], &[7, 5, 0x81, 3, 8, 0, 4]);
        let Reply::Data(r) = get(&mut h, 0x81, 6, 0x2200, 74) else {
            panic!()
        };
        assert_eq!(r, TABLET_REPORT_DESCRIPTOR);
        let Reply::Data(s) = get(&mut h, 0x80, 6, 0x0303, 255) else {
            panic!()
        };
        let text: Vec<u16> = s[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(String::from_utf16(&text).unwrap(), "QEMU USB Tablet");
    }

    #[test]
    fn tablet_reports_merge_while_buttons_hold() {
        let mut h = Hid::new(HidKind::Tablet);
        assert_eq!(h.data_in(1, 8), In::Nak);
        assert!(h.is_active());
        h.pointer_abs(0x100, 0x200, 0, 0);
        h.pointer_abs(0x1234, 0x2345, 0, 0);
        h.pointer_abs(0x1234, 0x2345, buttons::LEFT, 0);
        assert_eq!(
            h.data_in(1, 8),
            In::Data(vec![0, 0x34, 0x12, 0x45, 0x23, 0])
        );
        assert_eq!(
            h.data_in(1, 8),
            In::Data(vec![1, 0x34, 0x12, 0x45, 0x23, 0])
        );
        assert_eq!(h.data_in(1, 8), In::Nak);
        h.pointer_abs(0, 0, 0, 1);
        assert_eq!(h.data_in(1, 8), In::Data(vec![0, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn mouse_motion_is_split_into_reports() {
        let mut h = Hid::new(HidKind::Mouse);
        h.pointer_rel(200, -3, 0, 0);
        assert_eq!(h.data_in(1, 4), In::Data(vec![0, 127, 0xfd, 0]));
        assert_eq!(h.data_in(1, 4), In::Data(vec![0, 73, 0, 0]));
        assert_eq!(h.data_in(1, 4), In::Nak);
    }

    #[test]
    fn keyboard_reports_and_leds() {
        let mut h = Hid::new(HidKind::Keyboard);
        assert!(h.is_active());
        h.key(0x2a, true); // Shift_L
        h.key(0x1e, true); // a
        h.key(0x1e, false);
        assert_eq!(h.data_in(1, 8), In::Data(vec![2, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(h.data_in(1, 8), In::Data(vec![2, 0, 4, 0, 0, 0, 0, 0]));
        assert_eq!(h.data_in(1, 8), In::Data(vec![2, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(h.data_in(1, 8), In::Nak);
        let r = h.control(
            &Setup {
                request_type: 0x21,
                request: 9,
                value: 0x0200,
                index: 0,
                length: 1,
            },
            &[2],
        );
        assert_eq!(r, Reply::Data(vec![]));
        assert_eq!(h.leds(), 2);
    }

    #[test]
    fn every_known_key_has_a_usage() {
        for k in rvirt_input::keys() {
            assert!(usage_of_qnum(k.qnum).is_some(), "qnum {:#x}", k.qnum);
        }
    }

    #[test]
    fn unknown_requests_stall() {
        let mut h = Hid::new(HidKind::Tablet);
        assert_eq!(get(&mut h, 0x80, 6, 0x0900, 9), Reply::Stall);
        assert_eq!(get(&mut h, 0xa1, 3, 0, 1), Reply::Stall);
        assert_eq!(get(&mut h, 0x80, 6, 0x03ff, 255), Reply::Stall);
    }
}
