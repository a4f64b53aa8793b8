//! Legacy PCI interrupts (INTx): from a function's pin, through the PIRQ
//! wires of the chipset, to the interrupt controllers.
//!
//! Each function with an interrupt pin gets an [`IntxPin`]: a level the
//! function sets (the virtio ISR, say), gated by COMMAND's Interrupt
//! Disable. The pin drives one PIRQ wire, chosen by the chipset's swizzle
//! of the slot and pin (through any bridges on the way). A wire is the
//! wired-OR of the pins on it, and drives:
//! - its IOAPIC pin (GSI 16 + wire), which the DSDT's `_PRT` names, so an
//!   APIC guest needs nothing else;
//! - and the ISA IRQ its PIRQ routing register selects (PIIX3 0x60-0x63,
//!   ICH9 0x60-0x63 and 0x68-0x6b; bit 7 disables), for the 8259 path
//!   firmware and PIC-mode guests use. Only ISA lines the machine offers
//!   (those no legacy device holds) can be selected; others route nowhere.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_platform::{InterruptLine, TriggerMode};

/// The first GSI of the PIRQ wires.
pub const PIRQ_GSI_BASE: u32 = 16;
/// A PIRQ routing register's value at reset: routed nowhere.
pub const ROUTE_DISABLED: u8 = 0x80;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Wire {
    /// One bit per pin on the wire that holds it high.
    sources: u64,
    /// The pins handed out.
    count: u32,
    /// The ISA IRQ the routing register selects.
    isa: Option<u8>,
}

/// The chipset's PIRQ wires.
pub struct PirqRouter {
    wires: Vec<Mutex<Wire>>,
    gsi_lines: Vec<Arc<dyn InterruptLine>>,
    isa_lines: Vec<Option<Arc<dyn InterruptLine>>>,
}

impl PirqRouter {
    /// Wires, one per entry of `gsi_lines` (their IOAPIC pins, level
    /// lines), and the ISA lines a routing register may pick (indexed by
    /// IRQ; `None` where a legacy device holds the IRQ).
    pub fn new(
        gsi_lines: Vec<Arc<dyn InterruptLine>>,
        isa_lines: Vec<Option<Arc<dyn InterruptLine>>>,
    ) -> Arc<Self> {
        Arc::new(PirqRouter {
            wires: gsi_lines
                .iter()
                .map(|_| {
                    Mutex::new(Wire {
                        sources: 0,
                        count: 0,
                        isa: None,
                    })
                })
                .collect(),
            gsi_lines,
            isa_lines,
        })
    }

    /// How many wires.
    pub fn wires(&self) -> usize {
        self.wires.len()
    }

    /// A new pin on `wire` (at most 64 per wire; more share the last
    /// source bit, which only costs precision when they overlap).
    pub fn source(self: &Arc<Self>, wire: usize) -> Arc<IntxPin> {
        let wire = wire % self.wires.len().max(1);
        let bit = {
            let mut w = lock(&self.wires[wire]);
            let bit = 1u64 << w.count.min(63);
            w.count += 1;
            bit
        };
        Arc::new(IntxPin {
            router: Some((self.clone(), wire, bit)),
            state: Mutex::new(PinState::default()),
        })
    }

    /// The guest wrote `value` to wire `wire`'s routing register.
    pub fn set_route(&self, wire: usize, value: u8) {
        let Some(m) = self.wires.get(wire) else {
            return;
        };
        let irq = (value & ROUTE_DISABLED == 0).then_some(value & 0x0f);
        let irq = irq.filter(|&i| self.isa_line(i).is_some());
        let mut w = lock(m);
        if w.isa == irq {
            return;
        }
        if w.sources != 0 {
            self.drive_isa(w.isa, false);
            self.drive_isa(irq, true);
        }
        w.isa = irq;
    }

    fn isa_line(&self, irq: u8) -> Option<&Arc<dyn InterruptLine>> {
        self.isa_lines
            .get(usize::from(irq))
            .and_then(|l| l.as_ref())
    }

    fn drive_isa(&self, irq: Option<u8>, high: bool) {
        if let Some(line) = irq.and_then(|i| self.isa_line(i)) {
            if let Err(error) = line.set_level(high) {
                tracing::warn!(%error, "cannot drive an ISA interrupt from a PIRQ");
            }
        }
    }

    fn set(&self, wire: usize, bit: u64, high: bool) -> io::Result<()> {
        let mut w = lock(&self.wires[wire]);
        let was = w.sources != 0;
        if high {
            w.sources |= bit;
        } else {
            w.sources &= !bit;
        }
        let now = w.sources != 0;
        if was == now {
            return Ok(());
        }
        self.drive_isa(w.isa, now);
        self.gsi_lines[wire].set_level(now)
    }

    /// Whether wire `wire` is high (for tests and the monitor).
    pub fn level(&self, wire: usize) -> bool {
        self.wires.get(wire).is_some_and(|w| lock(w).sources != 0)
    }
}

#[derive(Default)]
struct PinState {
    level: bool,
    disabled: bool,
}

/// A function's interrupt pin: the level it asserts, gated by COMMAND's
/// Interrupt Disable, on its PIRQ wire.
pub struct IntxPin {
    router: Option<(Arc<PirqRouter>, usize, u64)>,
    state: Mutex<PinState>,
}

impl IntxPin {
    /// A pin connected to nothing (a function whose INTx the machine does
    /// not route).
    pub fn unconnected() -> Arc<Self> {
        Arc::new(IntxPin {
            router: None,
            state: Mutex::new(PinState::default()),
        })
    }

    /// The level the function asserts (STATUS's Interrupt Status).
    pub fn level(&self) -> bool {
        lock(&self.state).level
    }

    /// COMMAND's Interrupt Disable changed.
    pub fn set_disabled(&self, disabled: bool) {
        let mut st = lock(&self.state);
        let before = st.level && !st.disabled;
        st.disabled = disabled;
        let after = st.level && !st.disabled;
        if before != after {
            self.drive(after);
        }
    }

    fn drive(&self, high: bool) {
        if let Some((router, wire, bit)) = &self.router {
            if let Err(error) = router.set(*wire, *bit, high) {
                tracing::warn!(%error, "cannot drive a PCI interrupt");
            }
        }
    }

    fn set_level(&self, level: bool) {
        let mut st = lock(&self.state);
        let before = st.level && !st.disabled;
        st.level = level;
        let after = st.level && !st.disabled;
        if before != after {
            self.drive(after);
        }
    }
}

impl InterruptLine for IntxPin {
    fn trigger_mode(&self) -> TriggerMode {
        TriggerMode::Level
    }

    fn raise(&self) -> io::Result<()> {
        self.set_level(true);
        Ok(())
    }

    fn lower(&self) -> io::Result<()> {
        self.set_level(false);
        Ok(())
    }
}

/// The standard swizzle across a PCI-to-PCI bridge: pin `pin` (0 = INTA)
/// of the device in `slot` behind the bridge arrives on the bridge's pin
/// `(pin + slot) % 4`.
pub fn swizzle(slot: u8, pin: u8) -> u8 {
    (pin + slot) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Line(Mutex<Vec<bool>>);
    impl InterruptLine for Line {
        fn trigger_mode(&self) -> TriggerMode {
            TriggerMode::Level
        }
        fn raise(&self) -> io::Result<()> {
            self.0.lock().unwrap().push(true);
            Ok(())
        }
        fn lower(&self) -> io::Result<()> {
            self.0.lock().unwrap().push(false);
            Ok(())
        }
    }

    #[test]
    fn a_wire_is_the_or_of_its_pins_and_follows_its_route() {
        let gsi = Arc::new(Line::default());
        let irq10 = Arc::new(Line::default());
        let mut isa: Vec<Option<Arc<dyn InterruptLine>>> = vec![None; 16];
        isa[10] = Some(irq10.clone());
        let router = PirqRouter::new(vec![gsi.clone()], isa);
        let a = router.source(0);
        let b = router.source(0);
        a.raise().unwrap();
        b.raise().unwrap();
        a.lower().unwrap();
        assert!(router.level(0), "b still holds it");
        router.set_route(0, 10);
        b.lower().unwrap();
        assert_eq!(*gsi.0.lock().unwrap(), [true, false]);
        assert_eq!(*irq10.0.lock().unwrap(), [true, false], "routed while high");
        // An ISA IRQ the machine does not offer, or a disabled route,
        // drives nothing.
        router.set_route(0, 4);
        router.set_route(0, 0x8a);
        a.raise().unwrap();
        assert_eq!(irq10.0.lock().unwrap().len(), 2);
        router.set_route(7, 10);
    }

    #[test]
    fn interrupt_disable_gates_the_pin() {
        let gsi = Arc::new(Line::default());
        let router = PirqRouter::new(vec![gsi.clone()], vec![]);
        let pin = router.source(0);
        pin.set_disabled(true);
        pin.raise().unwrap();
        assert!(pin.level() && !router.level(0));
        pin.set_disabled(false);
        assert!(router.level(0));
        pin.lower().unwrap();
        assert_eq!(*gsi.0.lock().unwrap(), [true, false]);
        IntxPin::unconnected().raise().unwrap();
        assert_eq!(swizzle(3, 2), 1);
    }
}
