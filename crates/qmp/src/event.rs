//! Asynchronous events (qapi/run-state.json) and their wire form.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why the guest was shut down or reset (QAPI `ShutdownCause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownCause {
    /// No shutdown or reset requested.
    None,
    /// An error prevents further use of the guest.
    HostError,
    /// The `quit` command.
    HostQmpQuit,
    /// The `system_reset` command.
    HostQmpSystemReset,
    /// SIGINT, SIGTERM or SIGHUP.
    HostSignal,
    /// The user interface (no UI in rvirt; kept for completeness).
    HostUi,
    /// The guest powered off (e.g. ACPI S5).
    GuestShutdown,
    /// The guest reset itself.
    GuestReset,
    /// The guest panicked and the panic action is shutdown.
    GuestPanic,
    /// A partial reset from a subsystem.
    SubsystemReset,
    /// A snapshot was loaded.
    SnapshotLoad,
}

impl ShutdownCause {
    /// QEMU's `guest` field: true when the guest asked for it.
    pub fn is_guest(self) -> bool {
        matches!(
            self,
            Self::GuestShutdown | Self::GuestReset | Self::GuestPanic
        )
    }
}

/// What the VMM did about a guest panic (QAPI `GuestPanicAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestPanicAction {
    /// The vCPUs were paused (`-action panic=pause`, the default).
    Pause,
    /// The VM is being powered off.
    Poweroff,
    /// The guest keeps running.
    Run,
}

/// What the VMM does when a watchdog runs out (QAPI `WatchdogAction`,
/// `-watchdog-action`, `-action watchdog=`, `watchdog-set-action`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchdogAction {
    /// A guest reset (the default).
    #[default]
    Reset,
    /// The ACPI power button.
    Shutdown,
    /// The VMM exits.
    Poweroff,
    /// The vCPUs stop in state `watchdog`.
    Pause,
    /// A line on stderr.
    Debug,
    /// Nothing but the event.
    None,
    /// An NMI to the vCPUs.
    InjectNmi,
}

impl WatchdogAction {
    /// Every action, with its QAPI name.
    pub const ALL: [(&'static str, WatchdogAction); 7] = [
        ("reset", WatchdogAction::Reset),
        ("shutdown", WatchdogAction::Shutdown),
        ("poweroff", WatchdogAction::Poweroff),
        ("pause", WatchdogAction::Pause),
        ("debug", WatchdogAction::Debug),
        ("none", WatchdogAction::None),
        ("inject-nmi", WatchdogAction::InjectNmi),
    ];

    /// The action QAPI names `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, a)| a)
    }

    /// Its QAPI name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("reset", |(n, _)| n)
    }
}

/// An event the VMM posts to the monitors.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The vCPUs stopped.
    Stop,
    /// The vCPUs resumed.
    Resume,
    /// The VM was reset.
    Reset {
        /// True when the guest asked for it.
        guest: bool,
        /// Why.
        reason: ShutdownCause,
    },
    /// The ACPI power button was pressed (`system_powerdown`).
    Powerdown,
    /// The VM is shutting down (or, with `-no-shutdown`, has stopped).
    Shutdown {
        /// True when the guest asked for it.
        guest: bool,
        /// Why.
        reason: ShutdownCause,
    },
    /// The guest reported a panic.
    GuestPanicked {
        /// What the VMM did about it.
        action: GuestPanicAction,
        /// Optional `GuestPanicInformation` (hyper-v or s390 details).
        info: Option<Value>,
    },
    /// A watchdog ran out; posted before its action is taken, as QEMU.
    Watchdog {
        /// The action taken.
        action: WatchdogAction,
    },
    /// The guest's balloon driver changed how much memory it gave back:
    /// `actual` is the guest's memory in bytes.
    BalloonChange {
        /// RAM minus the balloon, in bytes.
        actual: i64,
    },
    /// A removable medium's tray opened or closed (the guest's eject, or
    /// the monitor's).
    DeviceTrayMoved {
        /// The drive's block backend name (empty for a `-blockdev` one).
        device: String,
        /// The guest device's id.
        id: String,
        tray_open: bool,
    },
    /// A VNC client connected (before authentication).
    VncConnected {
        /// The listener.
        server: crate::types::VncServerInfo,
        /// The client.
        client: crate::types::VncBasicInfo,
    },
    /// A VNC client finished its handshake.
    VncInitialized {
        /// The listener.
        server: crate::types::VncServerInfo,
        /// The client.
        client: crate::types::VncBasicInfo,
    },
    /// A VNC client is gone.
    VncDisconnected {
        /// The listener.
        server: crate::types::VncServerInfo,
        /// The client.
        client: crate::types::VncBasicInfo,
    },
    /// A device is gone from the guest (after `device_del`, once the
    /// guest let it go).
    DeviceDeleted {
        /// Its id, if it had one.
        device: Option<String>,
        /// Its QOM path (`/machine/peripheral/ID`).
        path: String,
    },
    /// A job moved to `status` (QAPI `JobStatus`: created, running,
    /// ready, waiting, pending, concluded, null, ...).
    JobStatusChange {
        /// The job's id.
        id: String,
        /// Its new status.
        status: String,
    },
    /// A block job can be completed (`block-job-complete`).
    BlockJobReady(crate::types::BlockJobEvent),
    /// A block job ended, with `error` if it failed.
    BlockJobCompleted(crate::types::BlockJobEvent),
    /// A block job was cancelled before it was ready.
    BlockJobCancelled(crate::types::BlockJobEvent),
}

impl Event {
    /// A `RESET` whose `guest` field follows from the cause.
    pub fn reset(reason: ShutdownCause) -> Self {
        Self::Reset {
            guest: reason.is_guest(),
            reason,
        }
    }

    /// A `SHUTDOWN` whose `guest` field follows from the cause.
    pub fn shutdown(reason: ShutdownCause) -> Self {
        Self::Shutdown {
            guest: reason.is_guest(),
            reason,
        }
    }

    /// The event's QMP name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Stop => "STOP",
            Self::Resume => "RESUME",
            Self::Reset { .. } => "RESET",
            Self::Powerdown => "POWERDOWN",
            Self::Shutdown { .. } => "SHUTDOWN",
            Self::GuestPanicked { .. } => "GUEST_PANICKED",
            Self::Watchdog { .. } => "WATCHDOG",
            Self::BalloonChange { .. } => "BALLOON_CHANGE",
            Self::DeviceTrayMoved { .. } => "DEVICE_TRAY_MOVED",
            Self::VncConnected { .. } => "VNC_CONNECTED",
            Self::VncInitialized { .. } => "VNC_INITIALIZED",
            Self::VncDisconnected { .. } => "VNC_DISCONNECTED",
            Self::DeviceDeleted { .. } => "DEVICE_DELETED",
            Self::JobStatusChange { .. } => "JOB_STATUS_CHANGE",
            Self::BlockJobReady(_) => "BLOCK_JOB_READY",
            Self::BlockJobCompleted(_) => "BLOCK_JOB_COMPLETED",
            Self::BlockJobCancelled(_) => "BLOCK_JOB_CANCELLED",
        }
    }

    /// The `data` member; events without data omit it, as QEMU does.
    pub fn data(&self) -> Option<Value> {
        match self {
            Self::Stop | Self::Resume | Self::Powerdown => None,
            Self::Reset { guest, reason } | Self::Shutdown { guest, reason } => {
                Some(json!({"guest": guest, "reason": reason}))
            }
            Self::GuestPanicked { action, info } => {
                let mut data = Map::new();
                data.insert("action".into(), json!(action));
                if let Some(info) = info {
                    data.insert("info".into(), info.clone());
                }
                Some(Value::Object(data))
            }
            Self::Watchdog { action } => Some(json!({ "action": action })),
            Self::BalloonChange { actual } => Some(json!({ "actual": actual })),
            Self::DeviceTrayMoved {
                device,
                id,
                tray_open,
            } => Some(json!({ "device": device, "id": id, "tray-open": tray_open })),
            Self::VncConnected { server, client }
            | Self::VncInitialized { server, client }
            | Self::VncDisconnected { server, client } => {
                Some(json!({ "server": server, "client": client }))
            }
            Self::DeviceDeleted { device, path } => {
                let mut data = Map::new();
                if let Some(d) = device {
                    data.insert("device".into(), json!(d));
                }
                data.insert("path".into(), json!(path));
                Some(Value::Object(data))
            }
            Self::JobStatusChange { id, status } => Some(json!({"id": id, "status": status})),
            Self::BlockJobReady(e) | Self::BlockJobCompleted(e) | Self::BlockJobCancelled(e) => {
                serde_json::to_value(e).ok()
            }
        }
    }
}

/// Wall-clock time of an event, split as QMP sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            microseconds: i64::from(d.subsec_micros()),
        }
    }
}

/// An event as sent on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The event name, e.g. `STOP`.
    pub event: String,
    /// The event's data, absent for events without any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<Value>,
    /// When the event was posted.
    pub timestamp: Timestamp,
}

impl EventMessage {
    /// Stamps `event` with `timestamp`.
    pub fn new(event: &Event, timestamp: Timestamp) -> Self {
        Self {
            event: event.name().into(),
            data: event.data(),
            timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let ts = Timestamp {
            seconds: 5,
            microseconds: 7,
        };
        let v = serde_json::to_value(EventMessage::new(&Event::Stop, ts)).unwrap();
        assert_eq!(
            v,
            json!({"event": "STOP", "timestamp": {"seconds": 5, "microseconds": 7}})
        );
        let v = serde_json::to_value(EventMessage::new(
            &Event::shutdown(ShutdownCause::HostQmpQuit),
            ts,
        ))
        .unwrap();
        assert_eq!(
            v["data"],
            json!({"guest": false, "reason": "host-qmp-quit"})
        );
        let v = Event::reset(ShutdownCause::GuestReset).data().unwrap();
        assert_eq!(v, json!({"guest": true, "reason": "guest-reset"}));
        let p = Event::GuestPanicked {
            action: GuestPanicAction::Pause,
            info: None,
        };
        assert_eq!(p.data().unwrap(), json!({"action": "pause"}));
    }

    #[test]
    fn timestamp_is_now() {
        let t = Timestamp::now();
        assert!(t.seconds > 1_600_000_000);
        assert!((0..1_000_000).contains(&t.microseconds));
    }
}
