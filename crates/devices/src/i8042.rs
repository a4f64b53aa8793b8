//! The i8042 keyboard controller: the guest's reset line and the basics that
//! Linux's i8042 and atkbd drivers probe. There is no keyboard input source
//! yet; the point is that probing answers like real hardware and that a reset
//! request through port 0x64 reaches the machine.

use std::collections::VecDeque;
use std::sync::Arc;

use rvirt_bus::BusDevice;
use rvirt_platform::acpi::{AcpiDevice, HardwareId, Resource};
use rvirt_platform::{InterruptLine, VmControl, VmRequest};

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

const KBD_ACK: u8 = 0xfa;

/// What the next byte written to the data port means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    WriteCtr,
    WriteOutputPort,
    KbdEcho,
    AuxEcho,
    AuxCommand,
    /// A keyboard command that takes one argument (LEDs, scan set, rate).
    KbdArgument,
}

/// The controller and a keyboard with no keys pressed.
pub struct I8042 {
    ctr: u8,
    status_cmd: bool,
    pending: Pending,
    /// Output buffer: bytes for the guest, with whether each came from the
    /// aux (mouse) port.
    out: VecDeque<(u8, bool)>,
    kbd_irq: Option<Arc<dyn InterruptLine>>,
    aux_irq: Option<Arc<dyn InterruptLine>>,
    control: Arc<dyn VmControl>,
}

impl I8042 {
    /// Creates the controller; `control` receives reset requests.
    pub fn new(
        kbd_irq: Option<Arc<dyn InterruptLine>>,
        aux_irq: Option<Arc<dyn InterruptLine>>,
        control: Arc<dyn VmControl>,
    ) -> Self {
        I8042 {
            ctr: CTR_KBD_INT | CTR_SYS | CTR_XLATE | CTR_AUX_DISABLE,
            status_cmd: false,
            pending: Pending::None,
            out: VecDeque::new(),
            kbd_irq,
            aux_irq,
            control,
        }
    }

    fn status(&self) -> u8 {
        let mut s = STS_SYS | STS_UNLOCKED;
        if let Some(&(_, aux)) = self.out.front() {
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

    fn push(&mut self, byte: u8, aux: bool) {
        // Real controllers hold a single byte; a short queue keeps multi-byte
        // replies (identify, reset) in order. Bound it so a guest writing
        // commands in a loop cannot grow it.
        if self.out.len() >= 16 {
            return;
        }
        self.out.push_back((byte, aux));
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

    fn command(&mut self, cmd: u8) {
        self.status_cmd = true;
        match cmd {
            0x20 => self.push(self.ctr, false),
            0x60 => self.pending = Pending::WriteCtr,
            0xa7 => self.ctr |= CTR_AUX_DISABLE,
            0xa8 => self.ctr &= !CTR_AUX_DISABLE,
            // Aux interface test, keyboard interface test: no error.
            0xa9 | 0xab => self.push(0x00, false),
            // Controller self-test passed.
            0xaa => self.push(0x55, false),
            0xad => self.ctr |= CTR_KBD_DISABLE,
            0xae => self.ctr &= !CTR_KBD_DISABLE,
            // Output port: reset line high (not in reset), A20 enabled.
            0xd0 => self.push(0x03, false),
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
            Pending::WriteCtr => self.ctr = byte,
            Pending::WriteOutputPort if byte & 1 == 0 => self.control.request(VmRequest::Reset),
            Pending::WriteOutputPort => {}
            Pending::KbdEcho => self.push(byte, false),
            Pending::AuxEcho => self.push(byte, true),
            // No mouse is attached: the byte goes nowhere and the guest's
            // wait for an answer times out, as with an empty PS/2 port.
            Pending::AuxCommand => {}
            Pending::KbdArgument => self.push(KBD_ACK, false),
            Pending::None => self.keyboard(byte),
        }
    }

    fn keyboard(&mut self, cmd: u8) {
        match cmd {
            // Reset: ACK, then self-test passed.
            0xff => {
                self.push(KBD_ACK, false);
                self.push(0xaa, false);
            }
            // Identify: an MF2 keyboard (translated).
            0xf2 => {
                self.push(KBD_ACK, false);
                self.push(0xab, false);
                self.push(0x41, false);
            }
            0xee => self.push(0xee, false),
            // Set LEDs, scan code set, typematic rate: ACK now and after the
            // argument.
            0xed | 0xf0 | 0xf3 => {
                self.push(KBD_ACK, false);
                self.pending = Pending::KbdArgument;
            }
            _ => self.push(KBD_ACK, false),
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
            DATA => self.out.pop_front().map_or(0, |(b, _)| b),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
        }
        assert!(d.out.len() <= 16);
    }
}
