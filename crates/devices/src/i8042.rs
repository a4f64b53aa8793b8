//! The i8042 keyboard controller with a PS/2 keyboard and mouse behind it
//! (QEMU's `pckbd.c` and `ps2.c` in behaviour): the controller's command
//! byte, its commands (self-test, port tests and enables, the output port
//! with the CPU reset line, aux writes and loopbacks), IRQ 1 for keyboard
//! bytes and IRQ 12 for mouse bytes, and the console's keys and pointer
//! ([`I8042::key`], [`I8042::mouse`]). The devices queue their bytes
//! ([`crate::ps2`]); the controller moves one at a time into its output
//! register as the guest reads, so a guest that never reads loses events,
//! never memory.

use std::collections::VecDeque;
use std::sync::Arc;

use rvirt_bus::BusDevice;
use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};
use rvirt_platform::{InterruptLine, VmControl, VmRequest};

use crate::ps2::{Keyboard, Mouse};

/// Offsets inside the device's range, which starts at port 0x60 and is five
/// ports long (0x60..=0x64).
const DATA: u64 = 0;
const COMMAND: u64 = 4;

// Status register bits.
const STS_OBF: u8 = 1 << 0;
const STS_SYS: u8 = 1 << 2;
const STS_CMD: u8 = 1 << 3;
const STS_UNLOCKED: u8 = 1 << 4;
const STS_AUX: u8 = 1 << 5;

// Controller configuration byte bits.
const CTR_KBD_INT: u8 = 1 << 0;
const CTR_AUX_INT: u8 = 1 << 1;
const CTR_SYS: u8 = 1 << 2;
const CTR_KBD_DISABLE: u8 = 1 << 4;
const CTR_AUX_DISABLE: u8 = 1 << 5;
const CTR_XLATE: u8 = 1 << 6;

/// Controller replies waiting for the output register at most (a guest
/// writing commands in a loop without reading gets no more).
const CONTROLLER_QUEUE: usize = 16;

/// What the next byte written to the data port means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    WriteCtr,
    WriteOutputPort,
    KbdEcho,
    AuxEcho,
    AuxCommand,
}

/// The controller, its keyboard and its mouse.
pub struct I8042 {
    ctr: u8,
    status_cmd: bool,
    pending: Pending,
    /// The output register: the byte the guest reads next, and whether it
    /// came from the aux (mouse) port.
    out: Option<(u8, bool)>,
    /// The last byte read, which an empty register reads as again.
    last: u8,
    /// The controller's own replies, before the devices' bytes.
    replies: VecDeque<(u8, bool)>,
    kbd: Keyboard,
    mouse: Mouse,
    kbd_irq: Option<Arc<dyn InterruptLine>>,
    aux_irq: Option<Arc<dyn InterruptLine>>,
    control: Arc<dyn VmControl>,
}

const POWER_ON_CTR: u8 = CTR_KBD_INT | CTR_SYS | CTR_XLATE | CTR_AUX_DISABLE;

impl I8042 {
    /// Creates the controller; `control` receives reset requests.
    pub fn new(
        kbd_irq: Option<Arc<dyn InterruptLine>>,
        aux_irq: Option<Arc<dyn InterruptLine>>,
        control: Arc<dyn VmControl>,
    ) -> Self {
        let mut kbd = Keyboard::default();
        kbd.set_translate(true);
        I8042 {
            ctr: POWER_ON_CTR,
            status_cmd: false,
            pending: Pending::None,
            out: None,
            last: 0,
            replies: VecDeque::new(),
            kbd,
            mouse: Mouse::default(),
            kbd_irq,
            aux_irq,
            control,
        }
    }

    /// Back to the power-on state (a machine reset), keeping the lines.
    pub fn reset(&mut self) {
        let (kbd_irq, aux_irq) = (self.kbd_irq.take(), self.aux_irq.take());
        *self = I8042::new(kbd_irq, aux_irq, self.control.clone());
    }

    /// A key of the console (by qnum, see `rvirt_input`), pressed or
    /// released; keys rvirt has no scancode for are dropped.
    pub fn key(&mut self, qnum: u16, down: bool) {
        match rvirt_input::key(qnum) {
            Some(key) => {
                if !self.kbd.key(key, down) {
                    tracing::trace!(qnum, "i8042: key dropped");
                }
            }
            None => tracing::debug!(qnum, "i8042: no scancode for this key"),
        }
        self.fill();
    }

    /// Relative pointer motion (screen directions), the wheel (down
    /// positive) and the buttons held in PS/2 order (bit 0 left, 1 right,
    /// 2 middle).
    pub fn mouse(&mut self, dx: i32, dy: i32, dz: i32, buttons: u8) {
        self.mouse.event(dx, dy, dz, buttons);
        self.fill();
    }

    /// The keyboard LEDs as the guest set them (bit 0 Scroll, 1 Num, 2
    /// Caps Lock).
    pub fn leds(&self) -> u8 {
        self.kbd.leds()
    }

    fn status(&self) -> u8 {
        let mut s = STS_SYS | STS_UNLOCKED;
        if let Some((_, aux)) = self.out {
            s |= STS_OBF;
            if aux {
                s |= STS_AUX;
            }
        }
        if self.status_cmd {
            s |= STS_CMD;
        }
        s
    }

    fn reply(&mut self, byte: u8, aux: bool) {
        if self.replies.len() < CONTROLLER_QUEUE {
            self.replies.push_back((byte, aux));
        }
        self.fill();
    }

    /// Loads the output register if it is empty: controller replies first,
    /// then the keyboard's bytes, then the mouse's, each only while its
    /// port is enabled; raises the port's interrupt if the command byte
    /// enables it.
    fn fill(&mut self) {
        if self.out.is_some() {
            return;
        }
        let next = self
            .replies
            .pop_front()
            .or_else(|| {
                (self.ctr & CTR_KBD_DISABLE == 0)
                    .then(|| self.kbd.pop())
                    .flatten()
                    .map(|b| (b, false))
            })
            .or_else(|| {
                (self.ctr & CTR_AUX_DISABLE == 0)
                    .then(|| self.mouse.pop())
                    .flatten()
                    .map(|b| (b, true))
            });
        let Some((byte, aux)) = next else { return };
        self.out = Some((byte, aux));
        self.interrupt();
    }

    fn interrupt(&self) {
        let Some((_, aux)) = self.out else { return };
        let (enabled, irq) = if aux {
            (self.ctr & CTR_AUX_INT != 0, &self.aux_irq)
        } else {
            (self.ctr & CTR_KBD_INT != 0, &self.kbd_irq)
        };
        if let (true, Some(irq)) = (enabled, irq) {
            if let Err(e) = irq.raise() {
                tracing::debug!("i8042 interrupt lost: {e}");
            }
        }
    }

    fn set_ctr(&mut self, ctr: u8) {
        self.ctr = ctr;
        self.kbd.set_translate(ctr & CTR_XLATE != 0);
        // A byte waiting when its interrupt is switched on interrupts now.
        self.interrupt();
        self.fill();
    }

    fn command(&mut self, cmd: u8) {
        self.status_cmd = true;
        match cmd {
            0x20 => self.reply(self.ctr, false),
            0x60 => self.pending = Pending::WriteCtr,
            0xa7 => self.ctr |= CTR_AUX_DISABLE,
            0xa8 => {
                self.ctr &= !CTR_AUX_DISABLE;
                self.fill();
            }
            // Aux interface test, keyboard interface test: no error.
            0xa9 | 0xab => self.reply(0x00, false),
            // Controller self-test passed.
            0xaa => self.reply(0x55, false),
            0xad => self.ctr |= CTR_KBD_DISABLE,
            0xae => {
                self.ctr &= !CTR_KBD_DISABLE;
                self.fill();
            }
            // Input port, test inputs: nothing set.
            0xc0 | 0xe0 => self.reply(0x00, false),
            // Output port: reset line high (not in reset), A20 enabled,
            // and the output-buffer-full lines.
            0xd0 => {
                let mut port = 0x03;
                match self.out {
                    Some((_, false)) => port |= 0x10,
                    Some((_, true)) => port |= 0x20,
                    None => {}
                }
                self.reply(port, false)
            }
            0xd1 => self.pending = Pending::WriteOutputPort,
            0xd2 => self.pending = Pending::KbdEcho,
            0xd3 => self.pending = Pending::AuxEcho,
            0xd4 => self.pending = Pending::AuxCommand,
            // Pulse output lines: bit 0 clear pulses the CPU reset line.
            0xf0..=0xff if cmd & 1 == 0 => self.control.request(VmRequest::Reset),
            0xf0..=0xff => {}
            _ => tracing::debug!("i8042: unhandled command {cmd:#x}"),
        }
    }

    fn data(&mut self, byte: u8) {
        self.status_cmd = false;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::WriteCtr => self.set_ctr(byte),
            Pending::WriteOutputPort if byte & 1 == 0 => self.control.request(VmRequest::Reset),
            Pending::WriteOutputPort => {}
            Pending::KbdEcho => self.reply(byte, false),
            Pending::AuxEcho => self.reply(byte, true),
            Pending::AuxCommand => {
                // Talking to the mouse enables its port again, as QEMU.
                self.ctr &= !CTR_AUX_DISABLE;
                self.mouse.write(byte);
                self.fill();
            }
            Pending::None => {
                // And talking to the keyboard enables its port.
                self.ctr &= !CTR_KBD_DISABLE;
                self.kbd.write(byte);
                self.fill();
            }
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        let Some(first) = data.first_mut() else {
            return;
        };
        *first = match offset {
            DATA => {
                if let Some((b, _)) = self.out.take() {
                    self.last = b;
                }
                let b = self.last;
                self.fill();
                b
            }
            COMMAND => self.status(),
            _ => 0xff,
        };
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&byte) = data.first() else { return };
        match offset {
            DATA => self.data(byte),
            COMMAND => self.command(byte),
            _ => {}
        }
    }
}

/// The DSDT node of the keyboard controller (PNP0303) at `data`/`command`
/// on `irq`.
pub fn acpi_device(data: u16, command: u16, irq: u32) -> AcpiDevice {
    AcpiDevice {
        name: "PS2K".into(),
        hid: HardwareId::Eisa("PNP0303"),
        uid: 0,
        resources: vec![
            Resource::Io { base: data, len: 1 },
            Resource::Io {
                base: command,
                len: 1,
            },
            Resource::EdgeIrq(irq),
        ],
    }
}

/// The DSDT node of the PS/2 mouse port (PNP0F13) on `irq`: Linux's
/// i8042 driver takes a controller without it to have no aux port.
pub fn acpi_mouse_device(irq: u32) -> AcpiDevice {
    AcpiDevice {
        name: "PS2M".into(),
        hid: HardwareId::Eisa("PNP0F13"),
        uid: 0,
        resources: vec![Resource::EdgeIrq(irq)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const KBD_ACK: u8 = 0xfa;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl InterruptLine for Count {
        fn trigger_mode(&self) -> rvirt_platform::TriggerMode {
            rvirt_platform::TriggerMode::Edge
        }
        fn raise(&self) -> std::io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[derive(Default)]
    struct Requests(Mutex<Vec<VmRequest>>);
    impl VmControl for Requests {
        fn request(&self, r: VmRequest) {
            self.0.lock().unwrap().push(r);
        }
    }

    fn dev() -> (I8042, Arc<Requests>) {
        let r = Arc::new(Requests::default());
        (I8042::new(None, None, r.clone()), r)
    }

    fn rd(d: &mut I8042, off: u64) -> u8 {
        let mut b = [0];
        d.read(off, &mut b);
        b[0]
    }

    #[test]
    fn reset_through_port_0x64() {
        let (mut d, r) = dev();
        d.write(COMMAND, &[0xfe]);
        assert_eq!(*r.0.lock().unwrap(), vec![VmRequest::Reset]);
        // Other pulse commands leave the reset line alone.
        d.write(COMMAND, &[0xff]);
        assert_eq!(r.0.lock().unwrap().len(), 1);
        // Writing the output port with bit 0 clear also resets.
        d.write(COMMAND, &[0xd1]);
        d.write(DATA, &[0xfe]);
        assert_eq!(r.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn probe_sequence_answers_like_hardware() {
        let (mut d, _) = dev();
        assert_eq!(rd(&mut d, COMMAND) & STS_OBF, 0);
        d.write(COMMAND, &[0xaa]);
        assert_eq!(rd(&mut d, COMMAND) & STS_OBF, STS_OBF);
        assert_eq!(rd(&mut d, DATA), 0x55);
        d.write(COMMAND, &[0x20]);
        let ctr = rd(&mut d, DATA);
        d.write(COMMAND, &[0x60]);
        d.write(DATA, &[ctr & !CTR_KBD_INT]);
        d.write(COMMAND, &[0x20]);
        assert_eq!(rd(&mut d, DATA), ctr & !CTR_KBD_INT);
        // Aux loopback comes back flagged as aux data.
        d.write(COMMAND, &[0xd3]);
        d.write(DATA, &[0x5a]);
        assert_eq!(rd(&mut d, COMMAND) & STS_AUX, STS_AUX);
        assert_eq!(rd(&mut d, DATA), 0x5a);
        // Keyboard reset and identify.
        d.write(DATA, &[0xff]);
        assert_eq!((rd(&mut d, DATA), rd(&mut d, DATA)), (KBD_ACK, 0xaa));
        d.write(DATA, &[0xed]);
        d.write(DATA, &[0x07]);
        assert_eq!((rd(&mut d, DATA), rd(&mut d, DATA)), (KBD_ACK, KBD_ACK));
    }

    #[test]
    fn output_queue_is_bounded() {
        let (mut d, _) = dev();
        for _ in 0..1000 {
            d.write(DATA, &[0xf2]);
            d.write(COMMAND, &[0x20]);
            d.key(0x1e, true);
        }
        assert!(d.replies.len() <= CONTROLLER_QUEUE);
        let mut n = 0;
        while rd(&mut d, COMMAND) & STS_OBF != 0 {
            rd(&mut d, DATA);
            n += 1;
        }
        assert!(
            n <= 1 + CONTROLLER_QUEUE + crate::ps2::QUEUE_SIZE + crate::ps2::HEADROOM,
            "{n}"
        );
    }

    fn drain(d: &mut I8042) -> Vec<(u8, bool)> {
        let mut v = Vec::new();
        while rd(d, COMMAND) & STS_OBF != 0 {
            let aux = rd(d, COMMAND) & STS_AUX != 0;
            v.push((rd(d, DATA), aux));
        }
        v
    }

    #[test]
    fn keys_translated_to_set_1_on_irq_1() {
        let kbd = Arc::new(Count::default());
        let aux = Arc::new(Count::default());
        let mut d = I8042::new(
            Some(kbd.clone()),
            Some(aux.clone()),
            Arc::new(Requests::default()),
        );
        d.key(0x1e, true);
        d.key(0x1e, false);
        d.key(0x9d, true);
        assert_eq!(
            drain(&mut d),
            [(0x1e, false), (0x9e, false), (0xe0, false), (0x1d, false)]
        );
        assert_eq!(kbd.0.load(Ordering::SeqCst), 4);
        assert_eq!(aux.0.load(Ordering::SeqCst), 0);
        // Translation off: set 2 as the keyboard sends it.
        d.write(COMMAND, &[0x60]);
        d.write(DATA, &[POWER_ON_CTR & !CTR_XLATE]);
        d.key(0x1e, false);
        assert_eq!(drain(&mut d), [(0xf0, false), (0x1c, false)]);
        // The keyboard port disabled: keys wait in the keyboard.
        d.write(COMMAND, &[0xad]);
        d.key(0x1e, true);
        assert!(drain(&mut d).is_empty());
        d.write(COMMAND, &[0xae]);
        assert_eq!(drain(&mut d), [(0x1c, false)]);
        // An empty register reads the last byte again.
        assert_eq!(rd(&mut d, DATA), 0x1c);
    }

    #[test]
    fn mouse_on_the_aux_port_and_irq_12() {
        let kbd = Arc::new(Count::default());
        let aux = Arc::new(Count::default());
        let mut d = I8042::new(
            Some(kbd.clone()),
            Some(aux.clone()),
            Arc::new(Requests::default()),
        );
        // Linux: enable the aux port, its interrupt, then the mouse.
        d.write(COMMAND, &[0xa8]);
        d.write(COMMAND, &[0x60]);
        d.write(DATA, &[(POWER_ON_CTR | CTR_AUX_INT) & !CTR_AUX_DISABLE]);
        d.write(COMMAND, &[0xd4]);
        d.write(DATA, &[0xf2]);
        assert_eq!(drain(&mut d), [(KBD_ACK, true), (0x00, true)]);
        d.write(COMMAND, &[0xd4]);
        d.write(DATA, &[0xf4]);
        assert_eq!(drain(&mut d), [(KBD_ACK, true)]);
        d.mouse(10, 20, 0, 0b001);
        assert_eq!(
            drain(&mut d),
            [(0x29, true), (10, true), ((-20i8) as u8, true)]
        );
        assert_eq!(aux.0.load(Ordering::SeqCst), 6);
        assert_eq!(kbd.0.load(Ordering::SeqCst), 0);
        // The aux port disabled: packets wait in the mouse.
        d.write(COMMAND, &[0xa7]);
        d.mouse(1, 0, 0, 0);
        assert!(drain(&mut d).is_empty());
        d.write(COMMAND, &[0xa8]);
        assert_eq!(drain(&mut d), [(0x08, true), (1, true), (0, true)]);
    }

    #[test]
    fn reset_restores_power_on_state() {
        let (mut d, _) = dev();
        d.write(COMMAND, &[0x60]);
        d.write(DATA, &[0]);
        d.key(0x1e, true);
        d.reset();
        d.write(COMMAND, &[0x20]);
        assert_eq!(rd(&mut d, DATA), POWER_ON_CTR);
        assert_eq!(rd(&mut d, COMMAND) & STS_OBF, 0);
    }
}
