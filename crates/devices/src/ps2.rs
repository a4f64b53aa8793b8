//! The PS/2 keyboard and mouse behind the i8042, as QEMU's `ps2.c` models
//! them: the commands Linux's atkbd and psmouse and SeaBIOS send, the
//! keyboard's scancode sets (set 2, translated to set 1 when the
//! controller asks), the mouse's stream-mode packets with the IntelliMouse
//! wheel extensions. Each device has its own short output queue, which the
//! controller empties one byte at a time into its output register.

use std::collections::VecDeque;

use rvirt_input::Key;

/// Input bytes (scancodes, mouse packets) a device holds for the
/// controller (QEMU's PS2_QUEUE_SIZE).
pub const QUEUE_SIZE: usize = 16;
/// Room beyond that for command replies, which go out before the input
/// bytes already waiting (QEMU's PS2_QUEUE_HEADROOM and its command
/// queue): a guest that stops reading loses key strokes, never the answer
/// to its next command.
pub const HEADROOM: usize = 8;

const ACK: u8 = 0xfa;
const RESEND: u8 = 0xfe;
const SELF_TEST_OK: u8 = 0xaa;

/// A device's output: command replies ahead of input bytes.
#[derive(Debug, Default)]
struct Queue {
    replies: VecDeque<u8>,
    input: VecDeque<u8>,
}

impl Queue {
    fn len(&self) -> usize {
        self.replies.len() + self.input.len()
    }

    fn clear(&mut self) {
        self.replies.clear();
        self.input.clear();
    }

    fn pop(&mut self) -> Option<u8> {
        self.replies.pop_front().or_else(|| self.input.pop_front())
    }

    /// A command's reply: dropped only past the headroom, which a guest
    /// reaches only by writing commands without reading.
    fn reply(&mut self, bytes: &[u8]) {
        if self.len() + bytes.len() <= QUEUE_SIZE + HEADROOM {
            self.replies.extend(bytes);
        }
    }

    /// An input event's bytes, all or none.
    fn event(&mut self, bytes: &[u8]) -> bool {
        if self.len() + bytes.len() > QUEUE_SIZE {
            return false;
        }
        self.input.extend(bytes);
        true
    }
}

/// The keyboard.
#[derive(Debug)]
pub struct Keyboard {
    queue: Queue,
    /// A command waiting for its argument byte.
    pending: Option<u8>,
    scan_enabled: bool,
    scancode_set: u8,
    /// The controller's translate bit: set 2 codes leave as set 1.
    translate: bool,
    /// Scroll, Num, Caps lock LEDs (bits 0-2), as the guest last set them.
    leds: u8,
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard {
            queue: Queue::default(),
            pending: None,
            scan_enabled: true,
            scancode_set: 2,
            translate: false,
            leds: 0,
        }
    }
}

/// The 8042's translation of the set numbers the keyboard reports (its
/// set 2 to set 1 table applied to 1, 2, 3).
fn translated_set(set: u8) -> u8 {
    match set {
        1 => 0x43,
        2 => 0x41,
        _ => 0x3f,
    }
}

impl Keyboard {
    /// The next byte for the controller.
    pub fn pop(&mut self) -> Option<u8> {
        self.queue.pop()
    }

    /// The controller's translate bit changed.
    pub fn set_translate(&mut self, on: bool) {
        self.translate = on;
    }

    /// The LEDs as the guest set them (bit 0 Scroll, 1 Num, 2 Caps Lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// Power-on state (and the reset command's).
    fn reset(&mut self) {
        self.queue.clear();
        self.pending = None;
        self.scan_enabled = true;
        self.scancode_set = 2;
        self.leds = 0;
    }

    /// A byte the guest sent to the keyboard (through port 0x60).
    pub fn write(&mut self, byte: u8) {
        if let Some(cmd) = self.pending.take() {
            match cmd {
                0xed => {
                    self.leds = byte & 7;
                    self.queue.reply(&[ACK]);
                }
                0xf0 => match byte {
                    0 => {
                        let set = if self.translate {
                            translated_set(self.scancode_set)
                        } else {
                            self.scancode_set
                        };
                        self.queue.reply(&[ACK, set]);
                    }
                    1..=3 => {
                        self.scancode_set = byte;
                        self.queue.reply(&[ACK]);
                    }
                    _ => self.queue.reply(&[RESEND]),
                },
                // Typematic rate and delay: nothing repeats here (the
                // client repeats keys itself).
                _ => self.queue.reply(&[ACK]),
            }
            return;
        }
        match byte {
            0xee => self.queue.reply(&[0xee]),
            0xf2 => {
                // An MF2 keyboard; the second ID byte is translated too.
                let id = if self.translate { 0x41 } else { 0x83 };
                self.queue.reply(&[ACK, 0xab, id]);
            }
            0xed | 0xf0 | 0xf3 => {
                self.pending = Some(byte);
                self.queue.reply(&[ACK]);
            }
            0xf4 => {
                self.scan_enabled = true;
                self.queue.reply(&[ACK]);
            }
            0xf5 => {
                self.reset();
                self.scan_enabled = false;
                self.queue.reply(&[ACK]);
            }
            0xf6 => {
                self.reset();
                self.queue.reply(&[ACK]);
            }
            // Set 3's per-key modes: accepted, nothing changes.
            0x00 | 0xf7..=0xfd => self.queue.reply(&[ACK]),
            0xff => {
                self.reset();
                self.queue.reply(&[ACK, SELF_TEST_OK]);
            }
            _ => self.queue.reply(&[RESEND]),
        }
    }

    /// A key pressed or released; false if it was dropped (scanning off,
    /// or the queue full).
    pub fn key(&mut self, key: Key, down: bool) -> bool {
        if !self.scan_enabled {
            return false;
        }
        let mut bytes = [0u8; 3];
        let mut n = 0;
        let mut put = |b: u8| {
            bytes[n] = b;
            n += 1;
        };
        // Set 1 either way when the 8042 translates (its table maps each
        // set 2 make code to the set 1 one, and F0 to the break bit); set 3
        // is answered with set 2's codes, which Linux never asks for.
        if self.translate || self.scancode_set == 1 {
            let (code, e0) = key.set1();
            if e0 {
                put(0xe0);
            }
            put(if down { code } else { code | 0x80 });
        } else {
            let (code, e0) = key.set2();
            if e0 {
                put(0xe0);
            }
            if !down {
                put(0xf0);
            }
            put(code);
        }
        self.queue.event(&bytes[..n])
    }
}

const MOUSE_REMOTE: u8 = 0x40;
const MOUSE_ENABLED: u8 = 0x20;
const MOUSE_SCALE21: u8 = 0x10;

/// Accumulated motion is held within this, so a guest that never reads
/// cannot make it overflow.
const MAX_MOTION: i32 = 2048;

/// The mouse.
#[derive(Debug)]
pub struct Mouse {
    queue: Queue,
    pending: Option<u8>,
    /// Remote mode, reporting enabled, 2:1 scaling (the status byte's bits).
    status: u8,
    sample_rate: u8,
    resolution: u8,
    /// 0 PS/2, 3 IntelliMouse (wheel), 4 IntelliMouse Explorer (wheel and
    /// two more buttons), after the sample-rate knocks that ask for them.
    kind: u8,
    detect: u8,
    wrap: bool,
    dx: i32,
    dy: i32,
    dz: i32,
    /// PS/2 order: bit 0 left, 1 right, 2 middle, 3 side, 4 extra.
    buttons: u8,
}

impl Default for Mouse {
    fn default() -> Self {
        Mouse {
            queue: Queue::default(),
            pending: None,
            status: 0,
            sample_rate: 100,
            resolution: 2,
            kind: 0,
            detect: 0,
            wrap: false,
            dx: 0,
            dy: 0,
            dz: 0,
            buttons: 0,
        }
    }
}

impl Mouse {
    /// The next byte for the controller; motion held back while the queue
    /// was full goes out as the queue drains.
    pub fn pop(&mut self) -> Option<u8> {
        if self.queue.len() == 0 && self.streaming() && (self.dx | self.dy | self.dz) != 0 {
            self.sync();
        }
        self.queue.pop()
    }

    fn streaming(&self) -> bool {
        self.status & (MOUSE_ENABLED | MOUSE_REMOTE) == MOUSE_ENABLED
    }

    /// The wheel protocol the guest's knocks selected (0, 3 or 4).
    pub fn kind(&self) -> u8 {
        self.kind
    }

    fn defaults(&mut self) {
        self.sample_rate = 100;
        self.resolution = 2;
        self.status = 0;
    }

    /// A byte the guest sent to the mouse (0xD4, then port 0x60).
    pub fn write(&mut self, byte: u8) {
        if self.wrap && byte != 0xec && byte != 0xff {
            self.queue.reply(&[byte]);
            return;
        }
        if let Some(cmd) = self.pending.take() {
            if cmd == 0xf3 {
                self.sample_rate = byte;
                self.knock(byte);
            } else {
                self.resolution = byte;
            }
            self.queue.reply(&[ACK]);
            return;
        }
        match byte {
            0xe6 => self.status &= !MOUSE_SCALE21,
            0xe7 => self.status |= MOUSE_SCALE21,
            0xe8 | 0xf3 => self.pending = Some(byte),
            0xe9 => {
                let status = self.status | (self.buttons & 7);
                self.queue
                    .reply(&[ACK, status, self.resolution, self.sample_rate]);
                return;
            }
            0xea => self.status &= !MOUSE_REMOTE,
            0xeb => {
                self.queue.reply(&[ACK]);
                self.packet();
                return;
            }
            0xec => self.wrap = false,
            0xee => self.wrap = true,
            0xf0 => self.status |= MOUSE_REMOTE,
            0xf2 => {
                self.queue.reply(&[ACK, self.kind]);
                return;
            }
            0xf4 => self.status |= MOUSE_ENABLED,
            0xf5 => self.status &= !MOUSE_ENABLED,
            0xf6 => self.defaults(),
            0xff => {
                self.defaults();
                self.kind = 0;
                self.detect = 0;
                self.wrap = false;
                self.queue.clear();
                self.queue.reply(&[ACK, SELF_TEST_OK, 0]);
                return;
            }
            _ => {
                self.queue.reply(&[RESEND]);
                return;
            }
        }
        self.queue.reply(&[ACK]);
    }

    /// The sample-rate sequences that switch on the wheel: 200, 100, 80
    /// for IntelliMouse, then 200, 200, 80 for the Explorer.
    fn knock(&mut self, rate: u8) {
        self.detect = match (self.detect, rate) {
            (0, 200) => 1,
            (1, 100) => 2,
            (1, 200) => 3,
            (2, 80) => {
                self.kind = 3;
                0
            }
            (3, 80) => {
                self.kind = 4;
                0
            }
            (_, 200) => 1,
            _ => 0,
        };
    }

    /// Motion (right and down positive, as on the screen), wheel (down
    /// positive) and the buttons held (PS/2 order). Sends packets in
    /// stream mode; ignored while reporting is disabled.
    pub fn event(&mut self, dx: i32, dy: i32, dz: i32, buttons: u8) {
        if self.status & MOUSE_ENABLED == 0 {
            return;
        }
        let acc = |a: i32, d: i32| a.saturating_add(d).clamp(-MAX_MOTION, MAX_MOTION);
        self.dx = acc(self.dx, dx);
        // PS/2 counts up as positive.
        self.dy = acc(self.dy, dy.saturating_neg());
        self.dz = acc(self.dz, dz);
        self.buttons = buttons & 0x1f;
        if self.status & MOUSE_REMOTE == 0 {
            self.sync();
        }
    }

    /// Packets until the motion is sent or the queue is full; at least one.
    fn sync(&mut self) {
        loop {
            if !self.packet() {
                break;
            }
            if (self.dx | self.dy | self.dz) == 0 {
                break;
            }
        }
    }

    /// One packet of at most ±127 in each direction; false if the queue
    /// had no room.
    fn packet(&mut self) -> bool {
        let dx = self.dx.clamp(-127, 127);
        let dy = self.dy.clamp(-127, 127);
        let mut p = [0u8; 4];
        p[0] = 0x08 | (u8::from(dx < 0) << 4) | (u8::from(dy < 0) << 5) | (self.buttons & 7);
        p[1] = dx as u8;
        p[2] = dy as u8;
        let (len, dz) = match self.kind {
            3 => {
                let dz = self.dz.clamp(-127, 127);
                p[3] = dz as u8;
                (4, dz)
            }
            4 => {
                let dz = self.dz.clamp(-7, 7);
                p[3] = (dz as u8 & 0x0f) | ((self.buttons & 0x18) << 1);
                (4, dz)
            }
            _ => (3, 0),
        };
        if !self.queue.event(&p[..len]) {
            return false;
        }
        self.dx -= dx;
        self.dy -= dy;
        self.dz -= dz;
        if self.kind == 0 {
            // A plain PS/2 mouse has no wheel: what it turned is lost.
            self.dz = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut impl FnMut() -> Option<u8>) -> Vec<u8> {
        std::iter::from_fn(q).collect()
    }

    fn kbd_out(k: &mut Keyboard) -> Vec<u8> {
        drain(&mut || k.pop())
    }

    fn mouse_out(m: &mut Mouse) -> Vec<u8> {
        drain(&mut || m.pop())
    }

    #[test]
    fn keyboard_sets_and_translation() {
        let a = rvirt_input::key(0x1e).unwrap();
        let up = rvirt_input::key(0xc8).unwrap();
        let mut k = Keyboard::default();
        k.key(a, true);
        k.key(a, false);
        k.key(up, true);
        k.key(up, false);
        assert_eq!(
            kbd_out(&mut k),
            [0x1c, 0xf0, 0x1c, 0xe0, 0x75, 0xe0, 0xf0, 0x75]
        );
        k.set_translate(true);
        k.key(a, true);
        k.key(a, false);
        k.key(up, true);
        k.key(up, false);
        assert_eq!(kbd_out(&mut k), [0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8]);
        // Get the scancode set, translated and not.
        k.write(0xf0);
        k.write(0);
        assert_eq!(kbd_out(&mut k), [ACK, ACK, 0x41]);
        k.set_translate(false);
        k.write(0xf0);
        k.write(1);
        k.write(0xf0);
        k.write(0);
        assert_eq!(kbd_out(&mut k), [ACK, ACK, ACK, ACK, 1]);
        k.key(a, false);
        assert_eq!(kbd_out(&mut k), [0x9e]);
        k.write(0xf0);
        k.write(9);
        assert_eq!(kbd_out(&mut k), [ACK, RESEND]);
    }

    #[test]
    fn keyboard_commands() {
        let a = rvirt_input::key(0x1e).unwrap();
        let mut k = Keyboard::default();
        k.write(0xff);
        assert_eq!(kbd_out(&mut k), [ACK, SELF_TEST_OK]);
        k.write(0xf2);
        assert_eq!(kbd_out(&mut k), [ACK, 0xab, 0x83]);
        k.write(0xed);
        k.write(0x05);
        assert_eq!(kbd_out(&mut k), [ACK, ACK]);
        assert_eq!(k.leds(), 5);
        k.write(0xf5);
        assert!(!k.key(a, true));
        k.write(0xf4);
        assert!(k.key(a, true));
        assert_eq!(kbd_out(&mut k), [ACK, ACK, 0x1c]);
        k.write(0xee);
        k.write(0x42);
        assert_eq!(kbd_out(&mut k), [0xee, RESEND]);
    }

    #[test]
    fn keyboard_queue_keeps_room_for_replies() {
        let a = rvirt_input::key(0x1e).unwrap();
        let mut k = Keyboard::default();
        for _ in 0..100 {
            k.key(a, true);
        }
        assert_eq!(k.queue.len(), QUEUE_SIZE);
        // The reply goes out first.
        k.write(0xf2);
        assert_eq!(k.queue.len(), QUEUE_SIZE + 3);
        assert_eq!(
            (k.pop(), k.pop(), k.pop(), k.pop()),
            (Some(ACK), Some(0xab), Some(0x83), Some(0x1c))
        );
        for _ in 0..100 {
            k.write(0xf2);
        }
        assert!(k.queue.len() <= QUEUE_SIZE + HEADROOM);
    }

    #[test]
    fn mouse_probe_and_packets() {
        let mut m = Mouse::default();
        m.write(0xff);
        assert_eq!(mouse_out(&mut m), [ACK, SELF_TEST_OK, 0]);
        // Motion before enable is not reported.
        m.event(5, 5, 0, 0);
        assert!(mouse_out(&mut m).is_empty());
        m.write(0xf4);
        assert_eq!(mouse_out(&mut m), [ACK]);
        m.event(5, -3, 0, 1);
        // Left held, dx 5, dy 3 up.
        assert_eq!(mouse_out(&mut m), [0x09, 5, 3]);
        m.event(-200, 10, 0, 0);
        assert_eq!(
            mouse_out(&mut m),
            [0x38, (-127i8) as u8, (-10i8) as u8, 0x18, (-73i8) as u8, 0]
        );
        m.write(0xe9);
        assert_eq!(mouse_out(&mut m), [ACK, MOUSE_ENABLED, 2, 100]);
    }

    #[test]
    fn mouse_wheel_knocks() {
        let mut m = Mouse::default();
        for rate in [200, 100, 80] {
            m.write(0xf3);
            m.write(rate);
        }
        m.write(0xf2);
        assert_eq!(mouse_out(&mut m)[6..], [ACK, 3]);
        for rate in [200, 200, 80] {
            m.write(0xf3);
            m.write(rate);
        }
        m.write(0xf2);
        m.write(0xf4);
        assert_eq!(mouse_out(&mut m)[6..], [ACK, 4, ACK]);
        m.event(0, 0, 1, 0x08);
        assert_eq!(mouse_out(&mut m), [0x08, 0, 0, 0x01 | 0x10]);
        m.write(0xff);
        m.write(0xf2);
        assert_eq!(mouse_out(&mut m), [ACK, SELF_TEST_OK, 0, ACK, 0]);
    }

    #[test]
    fn mouse_never_grows_and_catches_up() {
        let mut m = Mouse::default();
        m.write(0xf4);
        mouse_out(&mut m);
        for _ in 0..10_000 {
            m.event(i32::MAX, i32::MIN, 0, 0);
        }
        assert!(m.queue.len() <= QUEUE_SIZE);
        assert!(m.dx <= MAX_MOTION && m.dy <= MAX_MOTION);
        // Reading lets the rest out.
        let mut n = 0;
        while m.pop().is_some() && n < 10_000 {
            n += 1;
        }
        assert_eq!((m.dx, m.dy), (0, 0));
    }

    #[test]
    fn mouse_wrap_and_remote() {
        let mut m = Mouse::default();
        m.write(0xee);
        m.write(0x12);
        m.write(0xec);
        assert_eq!(mouse_out(&mut m), [ACK, 0x12, ACK]);
        m.write(0xf4);
        m.write(0xf0);
        m.event(3, 0, 0, 0);
        assert_eq!(mouse_out(&mut m), [ACK, ACK]);
        m.write(0xeb);
        assert_eq!(mouse_out(&mut m), [ACK, 0x08, 3, 0]);
    }
}
