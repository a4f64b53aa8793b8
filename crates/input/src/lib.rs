//! The console's input in the words the guest's input devices speak.
//!
//! A key travels as QEMU's "qnum": the XT (scancode set 1) make code, with
//! 0x80 added for the keys sent after an 0xE0 prefix. It is what a VNC
//! client sends in QEMU's extended key event; clients that do not send it
//! give an X keysym, looked up in a US layout ([`qnum_of_keysym`], as
//! QEMU's `en-us` keymap). From the qnum come the PS/2 keyboard's set 2
//! codes ([`Key::set2`]) and virtio-input's Linux key codes
//! ([`Key::linux`]).
//!
//! Written here by hand: no maintained crate maps X keysyms to PC
//! scancodes (QEMU generates its tables from keycodemapdb's CSV at build
//! time), and the table is the few keys of a PC keyboard.

/// Linux evdev event types and codes (`linux/input-event-codes.h`) that
/// rvirt's virtio-input devices send or describe.
pub mod evdev {
    pub const EV_SYN: u16 = 0x00;
    pub const EV_KEY: u16 = 0x01;
    pub const EV_REL: u16 = 0x02;
    pub const EV_ABS: u16 = 0x03;
    pub const EV_LED: u16 = 0x11;
    pub const EV_REP: u16 = 0x14;
    pub const SYN_REPORT: u16 = 0;
    pub const REL_X: u16 = 0x00;
    pub const REL_Y: u16 = 0x01;
    pub const REL_WHEEL: u16 = 0x08;
    pub const ABS_X: u16 = 0x00;
    pub const ABS_Y: u16 = 0x01;
    pub const BTN_LEFT: u16 = 0x110;
    pub const BTN_RIGHT: u16 = 0x111;
    pub const BTN_MIDDLE: u16 = 0x112;
    pub const BTN_SIDE: u16 = 0x113;
    pub const BTN_EXTRA: u16 = 0x114;
    pub const BTN_GEAR_DOWN: u16 = 0x150;
    pub const BTN_GEAR_UP: u16 = 0x151;
    pub const LED_NUML: u16 = 0x00;
    pub const LED_CAPSL: u16 = 0x01;
    pub const LED_SCROLLL: u16 = 0x02;
    /// `BUS_VIRTUAL`, the bus type QEMU's virtio-input devices report.
    pub const BUS_VIRTUAL: u16 = 0x06;
}

/// Pointer buttons as RFB numbers them in its button mask.
pub mod buttons {
    pub const LEFT: u8 = 1 << 0;
    pub const MIDDLE: u8 = 1 << 1;
    pub const RIGHT: u8 = 1 << 2;
    pub const WHEEL_UP: u8 = 1 << 3;
    pub const WHEEL_DOWN: u8 = 1 << 4;
}

/// One key of the PC keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// XT make code, +0x80 for an 0xE0-prefixed key.
    pub qnum: u16,
    /// Scancode set 2 make code, +0x100 for an 0xE0-prefixed key.
    pub set2: u16,
    /// Linux's `KEY_*` code.
    pub linux: u16,
}

impl Key {
    /// The set 1 make code and whether it has the 0xE0 prefix.
    pub fn set1(&self) -> (u8, bool) {
        ((self.qnum & 0x7f) as u8, self.qnum & 0x80 != 0)
    }

    /// The set 2 make code and whether it has the 0xE0 prefix.
    pub fn set2(&self) -> (u8, bool) {
        ((self.set2 & 0xff) as u8, self.set2 & 0x100 != 0)
    }
}

/// (qnum, set 2, Linux) for every key rvirt knows. The set 1 and Linux
/// codes of the main block agree (Linux numbered its keys after the XT);
/// the 0xE0 keys are listed one by one.
const KEYS: &[(u16, u16, u16)] = &[
    (0x01, 0x76, 1),    // Escape
    (0x02, 0x16, 2),    // 1
    (0x03, 0x1e, 3),    // 2
    (0x04, 0x26, 4),    // 3
    (0x05, 0x25, 5),    // 4
    (0x06, 0x2e, 6),    // 5
    (0x07, 0x36, 7),    // 6
    (0x08, 0x3d, 8),    // 7
    (0x09, 0x3e, 9),    // 8
    (0x0a, 0x46, 10),   // 9
    (0x0b, 0x45, 11),   // 0
    (0x0c, 0x4e, 12),   // minus
    (0x0d, 0x55, 13),   // equal
    (0x0e, 0x66, 14),   // BackSpace
    (0x0f, 0x0d, 15),   // Tab
    (0x10, 0x15, 16),   // q
    (0x11, 0x1d, 17),   // w
    (0x12, 0x24, 18),   // e
    (0x13, 0x2d, 19),   // r
    (0x14, 0x2c, 20),   // t
    (0x15, 0x35, 21),   // y
    (0x16, 0x3c, 22),   // u
    (0x17, 0x43, 23),   // i
    (0x18, 0x44, 24),   // o
    (0x19, 0x4d, 25),   // p
    (0x1a, 0x54, 26),   // bracketleft
    (0x1b, 0x5b, 27),   // bracketright
    (0x1c, 0x5a, 28),   // Return
    (0x1d, 0x14, 29),   // Control_L
    (0x1e, 0x1c, 30),   // a
    (0x1f, 0x1b, 31),   // s
    (0x20, 0x23, 32),   // d
    (0x21, 0x2b, 33),   // f
    (0x22, 0x34, 34),   // g
    (0x23, 0x33, 35),   // h
    (0x24, 0x3b, 36),   // j
    (0x25, 0x42, 37),   // k
    (0x26, 0x4b, 38),   // l
    (0x27, 0x4c, 39),   // semicolon
    (0x28, 0x52, 40),   // apostrophe
    (0x29, 0x0e, 41),   // grave
    (0x2a, 0x12, 42),   // Shift_L
    (0x2b, 0x5d, 43),   // backslash
    (0x2c, 0x1a, 44),   // z
    (0x2d, 0x22, 45),   // x
    (0x2e, 0x21, 46),   // c
    (0x2f, 0x2a, 47),   // v
    (0x30, 0x32, 48),   // b
    (0x31, 0x31, 49),   // n
    (0x32, 0x3a, 50),   // m
    (0x33, 0x41, 51),   // comma
    (0x34, 0x49, 52),   // period
    (0x35, 0x4a, 53),   // slash
    (0x36, 0x59, 54),   // Shift_R
    (0x37, 0x7c, 55),   // KP_Multiply
    (0x38, 0x11, 56),   // Alt_L
    (0x39, 0x29, 57),   // space
    (0x3a, 0x58, 58),   // Caps_Lock
    (0x3b, 0x05, 59),   // F1
    (0x3c, 0x06, 60),   // F2
    (0x3d, 0x04, 61),   // F3
    (0x3e, 0x0c, 62),   // F4
    (0x3f, 0x03, 63),   // F5
    (0x40, 0x0b, 64),   // F6
    (0x41, 0x83, 65),   // F7
    (0x42, 0x0a, 66),   // F8
    (0x43, 0x01, 67),   // F9
    (0x44, 0x09, 68),   // F10
    (0x45, 0x77, 69),   // Num_Lock
    (0x46, 0x7e, 70),   // Scroll_Lock
    (0x47, 0x6c, 71),   // KP_7
    (0x48, 0x75, 72),   // KP_8
    (0x49, 0x7d, 73),   // KP_9
    (0x4a, 0x7b, 74),   // KP_Subtract
    (0x4b, 0x6b, 75),   // KP_4
    (0x4c, 0x73, 76),   // KP_5
    (0x4d, 0x74, 77),   // KP_6
    (0x4e, 0x79, 78),   // KP_Add
    (0x4f, 0x69, 79),   // KP_1
    (0x50, 0x72, 80),   // KP_2
    (0x51, 0x7a, 81),   // KP_3
    (0x52, 0x70, 82),   // KP_0
    (0x53, 0x71, 83),   // KP_Decimal
    (0x56, 0x61, 86),   // less (the 102nd key)
    (0x57, 0x78, 87),   // F11
    (0x58, 0x07, 88),   // F12
    (0x9c, 0x15a, 96),  // KP_Enter
    (0x9d, 0x114, 97),  // Control_R
    (0xb5, 0x14a, 98),  // KP_Divide
    (0xb7, 0x17c, 99),  // Print (SysRq)
    (0xb8, 0x111, 100), // Alt_R
    (0xc7, 0x16c, 102), // Home
    (0xc8, 0x175, 103), // Up
    (0xc9, 0x17d, 104), // Prior
    (0xcb, 0x16b, 105), // Left
    (0xcd, 0x174, 106), // Right
    (0xcf, 0x169, 107), // End
    (0xd0, 0x172, 108), // Down
    (0xd1, 0x17a, 109), // Next
    (0xd2, 0x170, 110), // Insert
    (0xd3, 0x171, 111), // Delete
    (0xdb, 0x11f, 125), // Super_L
    (0xdc, 0x127, 126), // Super_R
    (0xdd, 0x12f, 127), // Menu
];

/// The key with this qnum, if rvirt knows it.
pub fn key(qnum: u16) -> Option<Key> {
    KEYS.iter()
        .find(|&&(q, _, _)| q == qnum)
        .map(|&(qnum, set2, linux)| Key { qnum, set2, linux })
}

/// Every key, for a device that describes the keys it can send.
pub fn keys() -> impl Iterator<Item = Key> {
    KEYS.iter()
        .map(|&(qnum, set2, linux)| Key { qnum, set2, linux })
}

/// Printable keysyms (Latin-1 and ASCII) on a US keyboard: the key that
/// types them, shifted or not (the client sends Shift itself).
const PRINTABLE: &[(u8, u16)] = &[
    (b' ', 0x39),
    (b'1', 0x02),
    (b'!', 0x02),
    (b'2', 0x03),
    (b'@', 0x03),
    (b'3', 0x04),
    (b'#', 0x04),
    (b'4', 0x05),
    (b'$', 0x05),
    (b'5', 0x06),
    (b'%', 0x06),
    (b'6', 0x07),
    (b'^', 0x07),
    (b'7', 0x08),
    (b'&', 0x08),
    (b'8', 0x09),
    (b'*', 0x09),
    (b'9', 0x0a),
    (b'(', 0x0a),
    (b'0', 0x0b),
    (b')', 0x0b),
    (b'-', 0x0c),
    (b'_', 0x0c),
    (b'=', 0x0d),
    (b'+', 0x0d),
    (b'[', 0x1a),
    (b'{', 0x1a),
    (b']', 0x1b),
    (b'}', 0x1b),
    (b';', 0x27),
    (b':', 0x27),
    (b'\'', 0x28),
    (b'"', 0x28),
    (b'`', 0x29),
    (b'~', 0x29),
    (b'\\', 0x2b),
    (b'|', 0x2b),
    (b',', 0x33),
    (b'<', 0x33),
    (b'.', 0x34),
    (b'>', 0x34),
    (b'/', 0x35),
    (b'?', 0x35),
];

/// Letters in keyboard order, row by row, with the first row's qnum.
const LETTER_ROWS: [(&[u8], u16); 3] = [
    (b"qwertyuiop", 0x10),
    (b"asdfghjkl", 0x1e),
    (b"zxcvbnm", 0x2c),
];

/// Function and keypad keysyms (0xffXX, and ISO_Level3_Shift).
const FUNCTION: &[(u32, u16)] = &[
    (0xff08, 0x0e), // BackSpace
    (0xff09, 0x0f), // Tab
    (0xff0d, 0x1c), // Return
    (0xff14, 0x46), // Scroll_Lock
    (0xff15, 0xb7), // Sys_Req
    (0xff1b, 0x01), // Escape
    (0xff50, 0xc7), // Home
    (0xff51, 0xcb), // Left
    (0xff52, 0xc8), // Up
    (0xff53, 0xcd), // Right
    (0xff54, 0xd0), // Down
    (0xff55, 0xc9), // Prior
    (0xff56, 0xd1), // Next
    (0xff57, 0xcf), // End
    (0xff61, 0xb7), // Print
    (0xff63, 0xd2), // Insert
    (0xff67, 0xdd), // Menu
    (0xff7f, 0x45), // Num_Lock
    (0xff8d, 0x9c), // KP_Enter
    (0xff95, 0x47), // KP_Home
    (0xff96, 0x4b), // KP_Left
    (0xff97, 0x48), // KP_Up
    (0xff98, 0x4d), // KP_Right
    (0xff99, 0x50), // KP_Down
    (0xff9a, 0x49), // KP_Prior
    (0xff9b, 0x51), // KP_Next
    (0xff9c, 0x4f), // KP_End
    (0xff9d, 0x4c), // KP_Begin
    (0xff9e, 0x52), // KP_Insert
    (0xff9f, 0x53), // KP_Delete
    (0xffaa, 0x37), // KP_Multiply
    (0xffab, 0x4e), // KP_Add
    (0xffac, 0x53), // KP_Separator
    (0xffad, 0x4a), // KP_Subtract
    (0xffae, 0x53), // KP_Decimal
    (0xffaf, 0xb5), // KP_Divide
    (0xffe1, 0x2a), // Shift_L
    (0xffe2, 0x36), // Shift_R
    (0xffe3, 0x1d), // Control_L
    (0xffe4, 0x9d), // Control_R
    (0xffe5, 0x3a), // Caps_Lock
    (0xffe7, 0xdb), // Meta_L
    (0xffe8, 0xdc), // Meta_R
    (0xffe9, 0x38), // Alt_L
    (0xffea, 0xb8), // Alt_R
    (0xffeb, 0xdb), // Super_L
    (0xffec, 0xdc), // Super_R
    (0xfe03, 0xb8), // ISO_Level3_Shift (AltGr)
    (0xffff, 0xd3), // Delete
];

/// The qnum of the key that types `keysym` on a US keyboard, or None for
/// a keysym the layout has no key for.
pub fn qnum_of_keysym(keysym: u32) -> Option<u16> {
    match keysym {
        // Keypad digits KP_0..KP_9.
        0xffb0..=0xffb9 => {
            const KP: [u16; 10] = [0x52, 0x4f, 0x50, 0x51, 0x4b, 0x4c, 0x4d, 0x47, 0x48, 0x49];
            Some(KP[(keysym - 0xffb0) as usize])
        }
        // F1..F10, then F11 and F12.
        0xffbe..=0xffc7 => Some(0x3b + (keysym - 0xffbe) as u16),
        0xffc8 => Some(0x57),
        0xffc9 => Some(0x58),
        0x20..=0x7e => {
            let c = (keysym as u8).to_ascii_lowercase();
            if c.is_ascii_lowercase() {
                return LETTER_ROWS.iter().find_map(|(row, first)| {
                    row.iter().position(|&l| l == c).map(|i| first + i as u16)
                });
            }
            PRINTABLE
                .iter()
                .find(|&&(ch, _)| ch == keysym as u8)
                .map(|&(_, q)| q)
        }
        // Above ASCII only function keys: Latin-1 letters have no key on
        // this layout.
        _ => FUNCTION
            .iter()
            .find(|&&(k, _)| k == keysym)
            .map(|&(_, q)| q),
    }
}

/// The qnum a VNC key event means: the client's own scancode when it sent
/// QEMU's extended key event (QEMU's rule: it wins over the keysym), else
/// the keysym through the US layout.
pub fn qnum(keysym: u32, keycode: Option<u32>) -> Option<u16> {
    match keycode {
        Some(code) if code != 0 => u16::try_from(code).ok(),
        _ => qnum_of_keysym(keysym),
    }
}

/// Scales `v` in `0..size` to `0..=0x7fff`, the range QEMU's absolute
/// pointers report (`qemu_input_scale_axis` with INPUT_EVENT_ABS_MAX).
pub fn scale_abs(v: u16, size: u16) -> u32 {
    const MAX: i64 = 0x7fff;
    if size < 2 {
        return (MAX / 2) as u32;
    }
    // QEMU divides by the size, not size - 1, so the last column stays
    // just under the maximum.
    (i64::from(v) * MAX / i64::from(size)).clamp(0, MAX) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert_ne!(a.0, b.0, "qnum {:#x} twice", a.0);
                assert_ne!(a.1, b.1, "set 2 {:#x} twice", a.1);
                assert_ne!(a.2, b.2, "linux {} twice", a.2);
            }
            // The main block's Linux codes are its XT codes.
            if a.0 < 0x80 {
                assert_eq!(a.0, a.2);
            }
            // The 8042 translates set 2 to set 1 byte by byte, E0 kept:
            // a key has the prefix in both sets or in neither.
            assert_eq!(a.0 & 0x80 != 0, a.1 & 0x100 != 0);
        }
    }

    #[test]
    fn keysyms_of_a_us_keyboard() {
        assert_eq!(qnum_of_keysym(u32::from(b'a')), Some(0x1e));
        assert_eq!(qnum_of_keysym(u32::from(b'A')), Some(0x1e));
        assert_eq!(qnum_of_keysym(u32::from(b'm')), Some(0x32));
        assert_eq!(qnum_of_keysym(u32::from(b'!')), Some(0x02));
        assert_eq!(qnum_of_keysym(u32::from(b'?')), Some(0x35));
        assert_eq!(qnum_of_keysym(0xff0d), Some(0x1c));
        assert_eq!(qnum_of_keysym(0xffbe), Some(0x3b));
        assert_eq!(qnum_of_keysym(0xffc9), Some(0x58));
        assert_eq!(qnum_of_keysym(0xffb7), Some(0x47));
        assert_eq!(qnum_of_keysym(0xff52), Some(0xc8));
        // EuroSign: no key on a US layout.
        assert_eq!(qnum_of_keysym(0x20ac), None);
        // The client's scancode wins.
        assert_eq!(qnum(u32::from(b'a'), Some(0x10)), Some(0x10));
        assert_eq!(qnum(u32::from(b'a'), Some(0)), Some(0x1e));
        // Every keysym's key is in the table.
        for k in (0x20..0x7f).chain(0xff00..=0xffff) {
            if let Some(q) = qnum_of_keysym(k) {
                assert!(key(q).is_some(), "keysym {k:#x}");
            }
        }
    }

    #[test]
    fn absolute_scale_as_qemu() {
        assert_eq!(scale_abs(0, 640), 0);
        assert_eq!(scale_abs(320, 640), 0x3fff);
        assert_eq!(scale_abs(639, 640), 0x7fff * 639 / 640);
        assert_eq!(scale_abs(5, 0), 0x3fff);
    }
}
