//! Where the console's keys and pointer go: rvirt-vmm implements
//! [`InputSink`] over the i8042 and virtio-input.

/// A key pressed or released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// The X keysym (RFC 6143 §7.5.4).
    pub keysym: u32,
    /// Pressed (true) or released.
    pub down: bool,
    /// The XT scancode, when the client sent QEMU's extended key event.
    pub keycode: Option<u32>,
}

/// The pointer's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointerEvent {
    /// Column, absolute, within `width`.
    pub x: u16,
    /// Row, absolute, within `height`.
    pub y: u16,
    /// Buttons held: bit 0 left, 1 middle, 2 right, 3/4 wheel up/down.
    pub buttons: u8,
    /// The framebuffer's width when the event arrived (to scale to a
    /// tablet's range).
    pub width: u16,
    /// The framebuffer's height.
    pub height: u16,
}

/// Receives input from VNC clients (from their threads; several clients
/// may send at once).
pub trait InputSink: Send + Sync {
    /// A key event.
    fn key(&self, event: KeyEvent);
    /// A pointer event (position clamped to the framebuffer).
    fn pointer(&self, event: PointerEvent);
    /// Text the client put on its clipboard (Latin-1, at most
    /// [`crate::proto::MAX_CUT_TEXT`] bytes).
    fn cut_text(&self, text: &[u8]) {
        let _ = text;
    }
}

/// An input sink that drops everything (a server without input devices,
/// the tests').
#[derive(Debug, Default)]
pub struct NoInput;

impl InputSink for NoInput {
    fn key(&self, _event: KeyEvent) {}
    fn pointer(&self, _event: PointerEvent) {}
}
