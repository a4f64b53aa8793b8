//! Where the console's keys and pointer go, as QEMU routes them: keys to
//! the virtio keyboard once its driver runs, else to the PS/2 keyboard;
//! the pointer to the virtio tablet once its driver runs (absolute), else
//! to a running virtio mouse, else to the PS/2 mouse (both relative: the
//! motion between the VNC client's absolute positions, as QEMU does
//! without an absolute device).
//!
//! QEMU moves the handler a virtio-input driver activates to the head of
//! its list; "active first, PS/2 last" is the same order for the one
//! device of each kind a VM has. USB HID devices (`usb-kbd`, `usb-tablet`,
//! `usb-mouse`) come after the running virtio ones: QEMU activates a USB
//! keyboard when it is created (before any driver runs) and a USB pointer
//! when the guest first polls it, so a USB tablet takes the pointer from
//! the PS/2 mouse once its driver runs.
//!
//! Locks: the router's pointer state, then one device's mutex (the i8042
//! or a virtio-input device); the device's interrupt line after that
//! (docs/vmm-threads.md). A USB device's queue is released before its
//! controller is locked (`UsbHid::feed`).

use std::sync::{Arc, Mutex, MutexGuard};

use rvirt_devices::I8042;
use rvirt_input::{buttons, evdev::*};
use rvirt_usb::hid::HidKind;
use rvirt_virtio::input::{Input, InputEvent, InputKind};
use rvirt_vnc::{InputSink, KeyEvent, PointerEvent};

use crate::device_manager::UsbHid;

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the router remembers of the pointer between events.
#[derive(Default)]
struct Pointer {
    /// The last position, for relative motion (none before the first).
    last: Option<(u16, u16)>,
    buttons: u8,
}

/// The console's input sink of rvirt-vmm.
pub(crate) struct InputRouter {
    ps2: Arc<Mutex<I8042>>,
    keyboard: Option<Arc<Mutex<Input>>>,
    mouse: Option<Arc<Mutex<Input>>>,
    tablet: Option<Arc<Mutex<Input>>>,
    /// The first USB keyboard, tablet and mouse.
    usb_keyboard: Option<UsbHid>,
    usb_tablet: Option<UsbHid>,
    usb_mouse: Option<UsbHid>,
    pointer: Mutex<Pointer>,
}

/// RFB's button mask (left, middle, right) in PS/2's order (left, right,
/// middle).
fn ps2_buttons(rfb: u8) -> u8 {
    (rfb & buttons::LEFT)
        | u8::from(rfb & buttons::RIGHT != 0) << 1
        | u8::from(rfb & buttons::MIDDLE != 0) << 2
}

/// The evdev button events for the buttons that changed, as QEMU's
/// virtio-input sends them: a wheel press is a REL_WHEEL step, its
/// release a BTN_GEAR key release.
fn button_events(old: u8, new: u8) -> Vec<InputEvent> {
    let map = [
        (buttons::LEFT, BTN_LEFT),
        (buttons::MIDDLE, BTN_MIDDLE),
        (buttons::RIGHT, BTN_RIGHT),
        (buttons::WHEEL_UP, BTN_GEAR_UP),
        (buttons::WHEEL_DOWN, BTN_GEAR_DOWN),
    ];
    let mut out = Vec::new();
    for (bit, code) in map {
        if (old ^ new) & bit == 0 {
            continue;
        }
        let down = new & bit != 0;
        match (bit, down) {
            (buttons::WHEEL_UP, true) => out.push(InputEvent::new(EV_REL, REL_WHEEL, 1)),
            (buttons::WHEEL_DOWN, true) => out.push(InputEvent::new(EV_REL, REL_WHEEL, -1)),
            _ => out.push(InputEvent::new(EV_KEY, code, i32::from(down))),
        }
    }
    out
}

impl InputRouter {
    /// The i8042, the virtio-input and the USB HID devices of the VM (the
    /// first of each kind takes the console's input).
    pub(crate) fn new(
        ps2: Arc<Mutex<I8042>>,
        virtio: &[Arc<Mutex<Input>>],
        usb: &[UsbHid],
    ) -> Self {
        let first = |kind| virtio.iter().find(|d| lock(d).kind() == kind).cloned();
        let first_usb = |kind| usb.iter().find(|d| d.kind() == kind).cloned();
        InputRouter {
            ps2,
            keyboard: first(InputKind::Keyboard),
            mouse: first(InputKind::Mouse),
            tablet: first(InputKind::Tablet),
            usb_keyboard: first_usb(HidKind::Keyboard),
            usb_tablet: first_usb(HidKind::Tablet),
            usb_mouse: first_usb(HidKind::Mouse),
            pointer: Mutex::new(Pointer::default()),
        }
    }

    fn active_usb(dev: &Option<UsbHid>) -> Option<&UsbHid> {
        dev.as_ref().filter(|d| d.is_active())
    }

    fn active(dev: &Option<Arc<Mutex<Input>>>) -> Option<MutexGuard<'_, Input>> {
        dev.as_ref().map(|d| lock(d)).filter(|d| d.is_active())
    }
}

impl InputSink for InputRouter {
    fn key(&self, event: KeyEvent) {
        let Some(qnum) = rvirt_input::qnum(event.keysym, event.keycode) else {
            tracing::debug!(keysym = event.keysym, "vnc: no key for this keysym");
            return;
        };
        if let Some(mut kbd) = Self::active(&self.keyboard) {
            let Some(key) = rvirt_input::key(qnum) else {
                tracing::debug!(qnum, "virtio-keyboard: no key code");
                return;
            };
            kbd.send(&[InputEvent::new(EV_KEY, key.linux, i32::from(event.down))]);
            return;
        }
        if let Some(kbd) = Self::active_usb(&self.usb_keyboard) {
            kbd.feed(|h| h.key(qnum, event.down));
            return;
        }
        lock(&self.ps2).key(qnum, event.down);
    }

    fn pointer(&self, event: PointerEvent) {
        let mut p = lock(&self.pointer);
        let old = std::mem::replace(&mut p.buttons, event.buttons);
        let last = p.last.replace((event.x, event.y));
        if let Some(mut tablet) = Self::active(&self.tablet) {
            let mut events = button_events(old, event.buttons);
            events.push(InputEvent::new(
                EV_ABS,
                ABS_X,
                rvirt_input::scale_abs(event.x, event.width) as i32,
            ));
            events.push(InputEvent::new(
                EV_ABS,
                ABS_Y,
                rvirt_input::scale_abs(event.y, event.height) as i32,
            ));
            tablet.send(&events);
            return;
        }
        // HID's buttons are PS/2's order; a wheel press is one step.
        let pressed = event.buttons & !old;
        let wheel = i32::from(pressed & buttons::WHEEL_UP != 0)
            - i32::from(pressed & buttons::WHEEL_DOWN != 0);
        if let Some(tablet) = Self::active_usb(&self.usb_tablet) {
            let x = rvirt_input::scale_abs(event.x, event.width);
            let y = rvirt_input::scale_abs(event.y, event.height);
            let b = ps2_buttons(event.buttons);
            tablet.feed(|h| h.pointer_abs(x, y, b, wheel));
            return;
        }
        // Relative: the first position is no motion; QEMU then has nothing
        // to report unless a button changed.
        let motion = last.map(|(x, y)| {
            (
                i32::from(event.x) - i32::from(x),
                i32::from(event.y) - i32::from(y),
            )
        });
        if motion.is_none() && old == event.buttons {
            return;
        }
        let (dx, dy) = motion.unwrap_or((0, 0));
        if let Some(mut mouse) = Self::active(&self.mouse) {
            let mut events = button_events(old, event.buttons);
            if motion.is_some() {
                events.push(InputEvent::new(EV_REL, REL_X, dx));
                events.push(InputEvent::new(EV_REL, REL_Y, dy));
            }
            mouse.send(&events);
            return;
        }
        if let Some(mouse) = Self::active_usb(&self.usb_mouse) {
            let b = ps2_buttons(event.buttons);
            mouse.feed(|h| h.pointer_rel(dx, dy, b, wheel));
            return;
        }
        // QEMU's PS/2 mouse: the wheel up is a step towards negative.
        let dz = i32::from(pressed & buttons::WHEEL_DOWN != 0)
            - i32::from(pressed & buttons::WHEEL_UP != 0);
        lock(&self.ps2).mouse(dx, dy, dz, ps2_buttons(event.buttons));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_in_ps2_order() {
        assert_eq!(ps2_buttons(buttons::LEFT), 1);
        assert_eq!(ps2_buttons(buttons::RIGHT), 2);
        assert_eq!(ps2_buttons(buttons::MIDDLE), 4);
        assert_eq!(ps2_buttons(buttons::WHEEL_UP), 0);
    }

    #[test]
    fn wheel_as_qemu_virtio() {
        assert_eq!(
            button_events(0, buttons::WHEEL_UP | buttons::LEFT),
            [
                InputEvent::new(EV_KEY, BTN_LEFT, 1),
                InputEvent::new(EV_REL, REL_WHEEL, 1)
            ]
        );
        assert_eq!(
            button_events(buttons::WHEEL_DOWN, 0),
            [InputEvent::new(EV_KEY, BTN_GEAR_DOWN, 0)]
        );
    }
}
