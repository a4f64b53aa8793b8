//! Requests a device makes of the machine as a whole.

/// What a device can ask of the machine as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmRequest {
    /// The guest powered itself off (ACPI S5).
    PowerOff,
    /// The guest asked for a reset (i8042 pulse, triple fault).
    Reset,
    /// The guest reported a panic (pvpanic).
    Panic,
    /// A watchdog ran out: the machine takes its watchdog action
    /// (`-watchdog-action`), which may be to do nothing.
    Watchdog,
}

/// Receives [`VmRequest`]s from devices. Implementations must return at once:
/// they are called on vCPU threads in the middle of an exit.
pub trait VmControl: Send + Sync {
    /// Posts a request; the machine acts on it outside the device's lock.
    fn request(&self, request: VmRequest);
}
