use std::sync::Mutex;

use super::*;
use crate::caps::PCIE_CAP_ID;

/// Counts the raises of the port's vector.
#[derive(Default)]
struct Recorder(Mutex<u32>);

impl MsiVectors for Recorder {
    fn count(&self) -> u16 {
        1
    }
    fn route(&self, _: u16, _: Option<MsiMessage>) -> io::Result<()> {
        Ok(())
    }
    fn raise(&self, _: u16) -> io::Result<()> {
        *self.0.lock().unwrap() += 1;
        Ok(())
    }
}

fn port(occupied: bool) -> (RootPort, Arc<Recorder>, u16) {
    let rec = Arc::new(Recorder::default());
    let p = RootPort::new(16, 1, occupied).wire(rec.clone(), IntxPin::unconnected());
    let exp = p.config().find_capability(PCIE_CAP_ID).unwrap();
    (p, rec, exp)
}

fn w16(p: &mut RootPort, at: u16, v: u16) {
    p.write_config(at, &v.to_le_bytes());
}

fn r16(p: &mut RootPort, at: u16) -> u16 {
    let mut b = [0; 2];
    p.read_config(at, &mut b);
    u16::from_le_bytes(b)
}

/// MSI-X on, its one vector unmasked.
fn enable_msix(p: &mut RootPort) {
    let cap = p.config().find_capability(0x11).unwrap();
    w16(p, cap + 2, 0x8000);
    p.write_bar(MSIX_BAR, 0, &0xfee0_0000u32.to_le_bytes());
    p.write_bar(MSIX_BAR, 8, &0x41u32.to_le_bytes());
    p.write_bar(MSIX_BAR, 12, &0u32.to_le_bytes());
}

#[test]
fn slot_registers_as_qemus_port() {
    let (mut p, _, exp) = port(false);
    let caps = p.config().read_u32(exp + slot::CAPABILITIES);
    assert_eq!(caps & 0x7f, 0x7b, "ABP PCP AIP PIP HPS HPC");
    assert_eq!(caps >> 19, 1, "physical slot number");
    assert!(p.hotplug_capable());
    let ctl = r16(&mut p, exp + slot::CONTROL);
    assert_eq!(ctl, slot::AIC_OFF | slot::PIC_OFF | slot::PCC, "empty: off");
    assert_eq!(r16(&mut p, exp + slot::STATUS) & slot::PDS, 0);
    let (mut full, _, exp) = port(true);
    assert_eq!(
        r16(&mut full, exp + slot::CONTROL),
        slot::AIC_OFF | slot::PIC_ON
    );
    assert_ne!(r16(&mut full, exp + slot::STATUS) & slot::PDS, 0);
    full.set_hotplug(false);
    assert!(!full.hotplug_capable());
}

/// Plug, the events it signals, and the interrupt: one MSI-X message per
/// rising edge of "an enabled event is pending", none while HPIE is off.
#[test]
fn plug_signals_presence_and_the_button() {
    let (mut p, rec, exp) = port(false);
    enable_msix(&mut p);
    p.plug();
    assert_eq!(*rec.0.lock().unwrap(), 0, "hot-plug interrupts are off");
    let st = r16(&mut p, exp + slot::STATUS);
    assert_eq!(
        st & (slot::PDS | slot::PDC | slot::ABP),
        slot::PDS | slot::PDC | slot::ABP
    );
    assert_ne!(r16(&mut p, exp + slot::LINK_STATUS) & slot::DLLLA, 0);
    // Enabling them with events pending sends the message (6.7.3.4).
    let ctl = r16(&mut p, exp + slot::CONTROL);
    w16(
        &mut p,
        exp + slot::CONTROL,
        ctl | slot::HPIE | slot::PDCE | slot::ABPE | slot::CCIE,
    );
    assert_eq!(*rec.0.lock().unwrap(), 1);
    // Command completed is now pending too; clearing everything drops
    // the state, and a new event sends a new message.
    let st = r16(&mut p, exp + slot::STATUS);
    assert_ne!(st & slot::CC, 0, "a Slot Control write completes at once");
    w16(&mut p, exp + slot::STATUS, slot::EVENTS);
    assert_eq!(r16(&mut p, exp + slot::STATUS) & slot::EVENTS, 0);
    p.push_attention_button();
    assert_eq!(*rec.0.lock().unwrap(), 2);
    assert_ne!(r16(&mut p, exp + slot::STATUS) & slot::ABP, 0);
}

/// A write of 1 to an event that was not pending clears nothing (QEMU's
/// workaround for guests that clear all at init).
#[test]
fn clearing_events_not_pending_keeps_those_that_are() {
    let (mut p, _, exp) = port(false);
    p.plug();
    p.config_mut()
        .set_u16(exp + slot::STATUS, slot::PDS | slot::PDC);
    w16(&mut p, exp + slot::STATUS, slot::EVENTS);
    assert_ne!(r16(&mut p, exp + slot::STATUS) & slot::PDC, 0);
    w16(&mut p, exp + slot::STATUS, slot::PDC);
    assert_eq!(r16(&mut p, exp + slot::STATUS) & slot::PDC, 0);
}

/// Power and power indicator off on an occupied slot ejects once; power
/// controller off alone, or on an empty slot, does not.
#[test]
fn powering_off_an_occupied_slot_ejects() {
    let (mut p, _, exp) = port(true);
    w16(&mut p, exp + slot::CONTROL, slot::PCC | slot::PIC_ON);
    assert!(!p.take_ejected(), "indicator still on");
    w16(&mut p, exp + slot::CONTROL, slot::PCC | slot::PIC_OFF);
    assert!(p.take_ejected());
    assert!(!p.take_ejected(), "once");
    let st = r16(&mut p, exp + slot::STATUS);
    assert_eq!(st & slot::PDS, 0);
    assert_ne!(st & slot::PDC, 0);
    assert_eq!(r16(&mut p, exp + slot::LINK_STATUS) & slot::DLLLA, 0);
    w16(&mut p, exp + slot::CONTROL, slot::PCC | slot::PIC_OFF);
    assert!(!p.take_ejected(), "empty now");
    // EIC reads 0 and toggles EIS.
    w16(&mut p, exp + slot::CONTROL, slot::EIC);
    assert_eq!(r16(&mut p, exp + slot::CONTROL) & slot::EIC, 0);
    assert_ne!(r16(&mut p, exp + slot::STATUS) & slot::EIS, 0);
}

/// Without MSI-X the events hold INTA high until cleared.
#[test]
fn intx_follows_pending_events() {
    let mut p = RootPort::new(16, 1, false);
    let exp = p.config().find_capability(PCIE_CAP_ID).unwrap();
    let ctl = r16(&mut p, exp + slot::CONTROL);
    w16(&mut p, exp + slot::CONTROL, ctl | slot::HPIE | slot::PDCE);
    p.plug();
    assert_ne!(r16(&mut p, reg::STATUS) & status::INTERRUPT, 0);
    w16(&mut p, exp + slot::STATUS, slot::PDC | slot::ABP | slot::CC);
    assert_eq!(r16(&mut p, reg::STATUS) & status::INTERRUPT, 0);
}
