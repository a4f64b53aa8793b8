use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct Signals {
    gpe: Mutex<u32>,
    ejected: Mutex<Vec<u8>>,
}

impl HotplugSignal for Signals {
    fn raise_gpe(&self) {
        *self.gpe.lock().unwrap() += 1;
    }
    fn eject(&self, slot: u8) {
        self.ejected.lock().unwrap().push(slot);
    }
}

/// pc's chipset in slots 0 and 1.
fn block() -> (PciHotplug, Arc<Signals>) {
    let s = Arc::new(Signals::default());
    (PciHotplug::new(0b11, s.clone()), s)
}

fn rd(b: &mut PciHotplug, reg: u64) -> u32 {
    let mut d = [0u8; 4];
    b.read(reg, &mut d);
    u32::from_le_bytes(d)
}

fn wr(b: &mut PciHotplug, reg: u64, v: u32) {
    b.write(reg, &v.to_le_bytes());
}

#[test]
fn plug_sets_up_once_and_raises_the_gpe() {
    let (mut b, s) = block();
    assert_eq!(rd(&mut b, PCI_RMV), !0b11, "all slots but the chipset's");
    b.plug(5).unwrap();
    assert_eq!(*s.gpe.lock().unwrap(), 1);
    assert_eq!(rd(&mut b, PCI_UP), 1 << 5);
    assert_eq!(rd(&mut b, PCI_UP), 0, "cleared on read, as QEMU's PIIX4");
    assert_eq!(b.plug(1), Err(HotplugError::NotHotpluggable(1)));
    assert_eq!(b.plug(40), Err(HotplugError::NotHotpluggable(40)));
}

#[test]
fn unplug_is_a_request_the_guest_grants_through_pci_ej() {
    let (mut b, s) = block();
    b.request_unplug(4).unwrap();
    b.request_unplug(6).unwrap();
    assert_eq!(*s.gpe.lock().unwrap(), 2);
    assert_eq!(rd(&mut b, PCI_DOWN), (1 << 4) | (1 << 6));
    assert_eq!(
        rd(&mut b, PCI_DOWN),
        (1 << 4) | (1 << 6),
        "not cleared on read"
    );
    // One slot per write, the lowest.
    wr(&mut b, PCI_EJ, (1 << 4) | (1 << 6));
    assert_eq!(*s.ejected.lock().unwrap(), [4]);
    assert_eq!(rd(&mut b, PCI_DOWN), 1 << 6);
    wr(&mut b, PCI_EJ, 1 << 6);
    assert_eq!(rd(&mut b, PCI_DOWN), 0);
    // A chipset slot is never ejected; zero ejects nothing.
    wr(&mut b, PCI_EJ, 1 << 1);
    wr(&mut b, PCI_EJ, 0);
    assert_eq!(*s.ejected.lock().unwrap(), [4, 6]);
    assert_eq!(rd(&mut b, PCI_EJ), 0);
}

#[test]
fn another_bus_selected_reads_nothing_and_ejects_nothing() {
    let (mut b, s) = block();
    b.plug(3).unwrap();
    wr(&mut b, PCI_SEL, 1);
    assert_eq!(rd(&mut b, PCI_SEL), 1);
    assert_eq!((rd(&mut b, PCI_UP), rd(&mut b, PCI_RMV)), (0, 0));
    wr(&mut b, PCI_EJ, 1 << 3);
    assert!(s.ejected.lock().unwrap().is_empty());
    wr(&mut b, PCI_SEL, 0);
    assert_eq!(rd(&mut b, PCI_UP), 1 << 3, "bus 0's state kept");
}

#[test]
fn odd_accesses_do_nothing() {
    let (mut b, s) = block();
    b.request_unplug(7).unwrap();
    // Misaligned, too wide, or past the registers.
    b.write(PCI_EJ + 1, &[0x80]);
    b.write(PCI_EJ, &[0; 8]);
    b.write(0x40, &[0xff; 4]);
    assert!(s.ejected.lock().unwrap().is_empty());
    let mut d = [0xffu8; 2];
    b.read(PCI_DOWN + 2, &mut d);
    assert_eq!(d, [0, 0]);
    // A byte read of a register gives its low byte.
    let mut d = [0u8; 1];
    b.read(PCI_DOWN, &mut d);
    assert_eq!(d, [0x80]);
}

/// The DSDT part: the block's regions, PCEJ, every slot device named as
/// QEMU names them (`S` and devfn in hex), `_SUN`/`_EJ0` only where the
/// slot hot-plugs, DVNT/PCNT and `\_GPE._E01`.
#[test]
fn the_aml_has_qemus_names() {
    let node = HotplugAml {
        removable: !0b11,
        fixed: 0b11,
    };
    let mut b = Vec::new();
    node.to_aml_bytes(&mut b);
    let has = |n: &[u8]| b.windows(n.len()).any(|w| w == n);
    for name in [
        &b"PCST"[..],
        b"PCIU",
        b"PCID",
        b"B0EJ",
        b"BNUM",
        b"BLCK",
        b"PCEJ",
        b"BSEL",
        b"S00_",
        b"S08_",
        b"S10_",
        b"SF8_",
        b"DVNT",
        b"PCNT",
        b"_GPE",
        b"_E01",
    ] {
        assert!(has(name), "{}", String::from_utf8_lossy(name));
    }
    let count = |n: &[u8]| b.windows(n.len()).filter(|w| *w == n).count();
    assert_eq!(count(b"_EJ0"), 30, "slots 2-31");
    assert_eq!(count(b"_ADR"), 32);
    // SystemIO region at 0xae00: OpRegionOp "PCST" SystemIO(1) DWordPrefix 0xae00.
    assert!(has(&[
        0x5b, 0x80, b'P', b'C', b'S', b'T', 0x01, 0x0b, 0x00, 0xae
    ]));
}
