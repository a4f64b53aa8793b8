//! Domain states and lifecycle events with libvirt's numbers
//! (libvirt-domain.h) and the words virsh prints for them.

/// `virDomainState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainState {
    NoState = 0,
    Running = 1,
    Blocked = 2,
    Paused = 3,
    Shutdown = 4,
    Shutoff = 5,
    Crashed = 6,
    PmSuspended = 7,
}

impl DomainState {
    /// The state with this number.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::NoState,
            1 => Self::Running,
            2 => Self::Blocked,
            3 => Self::Paused,
            4 => Self::Shutdown,
            5 => Self::Shutoff,
            6 => Self::Crashed,
            7 => Self::PmSuspended,
            _ => return None,
        })
    }

    /// As `virsh domstate` and `virsh list` print it.
    pub fn virsh_name(self) -> &'static str {
        match self {
            Self::NoState => "no state",
            Self::Running => "running",
            Self::Blocked => "idle",
            Self::Paused => "paused",
            Self::Shutdown => "in shutdown",
            Self::Shutoff => "shut off",
            Self::Crashed => "crashed",
            Self::PmSuspended => "pmsuspended",
        }
    }

    /// The reason words virsh uses for this state, indexed by reason code
    /// (`virDomainRunningReason`, `virDomainPausedReason`, ...).
    fn reason_names(self) -> &'static [&'static str] {
        match self {
            Self::NoState | Self::Blocked | Self::PmSuspended => &["unknown"],
            Self::Running => &[
                "unknown",
                "booted",
                "migrated",
                "restored",
                "from snapshot",
                "unpaused",
                "migration canceled",
                "save canceled",
                "event wakeup",
                "crashed",
                "post-copy",
                "post-copy failed",
            ],
            Self::Paused => &[
                "unknown",
                "user",
                "migrating",
                "saving",
                "dumping",
                "I/O error",
                "watchdog",
                "from snapshot",
                "shutting down",
                "creating snapshot",
                "crashed",
                "starting up",
                "post-copy",
                "post-copy failed",
                "api error",
            ],
            Self::Shutdown => &["unknown", "user"],
            Self::Shutoff => &[
                "unknown",
                "shutdown",
                "destroyed",
                "crashed",
                "migrated",
                "saved",
                "failed",
                "from snapshot",
                "daemon",
            ],
            Self::Crashed => &["unknown", "panicked"],
        }
    }

    /// The reason as `virsh domstate --reason` prints it in parentheses;
    /// unknown codes print as `unknown`, as virsh does.
    pub fn reason_name(self, reason: i32) -> &'static str {
        usize::try_from(reason)
            .ok()
            .and_then(|i| self.reason_names().get(i).copied())
            .unwrap_or("unknown")
    }
}

/// `virDomainRunningReason` codes rvirt uses.
pub mod running_reason {
    pub const UNKNOWN: i32 = 0;
    pub const BOOTED: i32 = 1;
    pub const MIGRATED: i32 = 2;
    pub const RESTORED: i32 = 3;
    pub const FROM_SNAPSHOT: i32 = 4;
    pub const UNPAUSED: i32 = 5;
    pub const WAKEUP: i32 = 8;
    pub const CRASHED: i32 = 9;
}

/// `virDomainPausedReason` codes rvirt uses.
pub mod paused_reason {
    pub const UNKNOWN: i32 = 0;
    pub const USER: i32 = 1;
    pub const IOERROR: i32 = 5;
    pub const WATCHDOG: i32 = 6;
    pub const SHUTTING_DOWN: i32 = 8;
    pub const CRASHED: i32 = 10;
    pub const STARTING_UP: i32 = 11;
}

/// `virDomainShutdownReason`.
pub mod shutdown_reason {
    pub const UNKNOWN: i32 = 0;
    pub const USER: i32 = 1;
}

/// `virDomainShutoffReason`.
pub mod shutoff_reason {
    pub const UNKNOWN: i32 = 0;
    pub const SHUTDOWN: i32 = 1;
    pub const DESTROYED: i32 = 2;
    pub const CRASHED: i32 = 3;
    pub const MIGRATED: i32 = 4;
    pub const SAVED: i32 = 5;
    pub const FAILED: i32 = 6;
    pub const FROM_SNAPSHOT: i32 = 7;
    pub const DAEMON: i32 = 8;
}

/// `virDomainCrashedReason`.
pub mod crashed_reason {
    pub const UNKNOWN: i32 = 0;
    pub const PANICKED: i32 = 1;
}

/// `virDomainEventType`: the `event` of a lifecycle message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Suspended = 3,
    Resumed = 4,
    Stopped = 5,
    Shutdown = 6,
    PmSuspended = 7,
    Crashed = 8,
}

impl LifecycleEvent {
    /// The event with this number.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Defined,
            1 => Self::Undefined,
            2 => Self::Started,
            3 => Self::Suspended,
            4 => Self::Resumed,
            5 => Self::Stopped,
            6 => Self::Shutdown,
            7 => Self::PmSuspended,
            8 => Self::Crashed,
            _ => return None,
        })
    }

    /// As `virsh event` prints it (`event 'lifecycle' for domain 'x': Started Booted`).
    pub fn virsh_name(self) -> &'static str {
        match self {
            Self::Defined => "Defined",
            Self::Undefined => "Undefined",
            Self::Started => "Started",
            Self::Suspended => "Suspended",
            Self::Resumed => "Resumed",
            Self::Stopped => "Stopped",
            Self::Shutdown => "Shutdown",
            Self::PmSuspended => "PMSuspended",
            Self::Crashed => "Crashed",
        }
    }

    fn detail_names(self) -> &'static [&'static str] {
        match self {
            Self::Defined => &["Added", "Updated", "Renamed", "Snapshot"],
            Self::Undefined => &["Removed", "Renamed"],
            Self::Started => &["Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"],
            Self::Suspended => &[
                "Paused",
                "Migrated",
                "I/O Error",
                "Watchdog",
                "Restored",
                "Snapshot",
                "API error",
                "Post-copy",
                "Post-copy Error",
            ],
            Self::Resumed => &[
                "Unpaused",
                "Migrated",
                "Snapshot",
                "Post-copy",
                "Post-copy Error",
            ],
            Self::Stopped => &[
                "Shutdown",
                "Destroyed",
                "Crashed",
                "Migrated",
                "Saved",
                "Failed",
                "Snapshot",
            ],
            Self::Shutdown => &[
                "Finished",
                "Finished after guest request",
                "Finished after host request",
            ],
            Self::PmSuspended => &["Memory", "Disk"],
            Self::Crashed => &["Panicked", "Crashloaded"],
        }
    }

    /// The detail as `virsh event` prints it; unknown codes print `unknown`.
    pub fn detail_name(self, detail: i32) -> &'static str {
        usize::try_from(detail)
            .ok()
            .and_then(|i| self.detail_names().get(i).copied())
            .unwrap_or("unknown")
    }
}

/// `virDomainEventDefinedDetailType`.
pub mod defined_detail {
    pub const ADDED: i32 = 0;
    pub const UPDATED: i32 = 1;
    pub const RENAMED: i32 = 2;
    pub const FROM_SNAPSHOT: i32 = 3;
}

/// `virDomainEventUndefinedDetailType`.
pub mod undefined_detail {
    pub const REMOVED: i32 = 0;
    pub const RENAMED: i32 = 1;
}

/// `virDomainEventStartedDetailType`.
pub mod started_detail {
    pub const BOOTED: i32 = 0;
    pub const MIGRATED: i32 = 1;
    pub const RESTORED: i32 = 2;
    pub const FROM_SNAPSHOT: i32 = 3;
    pub const WAKEUP: i32 = 4;
}

/// `virDomainEventSuspendedDetailType`.
pub mod suspended_detail {
    pub const PAUSED: i32 = 0;
    pub const MIGRATED: i32 = 1;
    pub const IOERROR: i32 = 2;
    pub const WATCHDOG: i32 = 3;
    pub const RESTORED: i32 = 4;
    pub const FROM_SNAPSHOT: i32 = 5;
    pub const API_ERROR: i32 = 6;
}

/// `virDomainEventWatchdogAction`: what the hypervisor did when the
/// watchdog ran out.
pub mod watchdog_action {
    pub const NONE: i32 = 0;
    pub const PAUSE: i32 = 1;
    pub const RESET: i32 = 2;
    pub const POWEROFF: i32 = 3;
    pub const SHUTDOWN: i32 = 4;
    pub const DEBUG: i32 = 5;
    pub const INJECTNMI: i32 = 6;

    /// The action QEMU's WATCHDOG event names (`-watchdog-action`'s
    /// spelling), as libvirt's qemuMonitorJSONHandleWatchdog maps it.
    pub fn from_qemu(action: &str) -> Option<i32> {
        Some(match action {
            "none" => NONE,
            "pause" => PAUSE,
            "reset" => RESET,
            "poweroff" => POWEROFF,
            "shutdown" => SHUTDOWN,
            "debug" => DEBUG,
            "inject-nmi" => INJECTNMI,
            _ => return None,
        })
    }
}

/// `virDomainEventResumedDetailType`.
pub mod resumed_detail {
    pub const UNPAUSED: i32 = 0;
    pub const MIGRATED: i32 = 1;
    pub const FROM_SNAPSHOT: i32 = 2;
}

/// `virDomainEventStoppedDetailType`.
pub mod stopped_detail {
    pub const SHUTDOWN: i32 = 0;
    pub const DESTROYED: i32 = 1;
    pub const CRASHED: i32 = 2;
    pub const MIGRATED: i32 = 3;
    pub const SAVED: i32 = 4;
    pub const FAILED: i32 = 5;
    pub const FROM_SNAPSHOT: i32 = 6;
}

/// `virDomainEventShutdownDetailType`.
pub mod shutdown_detail {
    pub const FINISHED: i32 = 0;
    pub const GUEST: i32 = 1;
    pub const HOST: i32 = 2;
}

/// `virDomainEventPMSuspendedDetailType`.
pub mod pmsuspended_detail {
    pub const MEMORY: i32 = 0;
    pub const DISK: i32 = 1;
}

/// `virDomainEventCrashedDetailType`.
pub mod crashed_detail {
    pub const PANICKED: i32 = 0;
    pub const CRASHLOADED: i32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virsh_words() {
        let s = DomainState::from_i32(5).unwrap();
        assert_eq!(s.virsh_name(), "shut off");
        assert_eq!(s.reason_name(shutoff_reason::DESTROYED), "destroyed");
        assert_eq!(s.reason_name(99), "unknown");
        assert_eq!(s.reason_name(-1), "unknown");
        assert_eq!(
            DomainState::Running.reason_name(running_reason::BOOTED),
            "booted"
        );
        assert_eq!(DomainState::Paused.reason_name(paused_reason::USER), "user");
        assert_eq!(DomainState::from_i32(8), None);
    }

    #[test]
    fn event_words_match_the_capture() {
        // The four events of summary/33: (4,0) (2,0) (6,2) (5,1).
        let e = |n, d| {
            let ev = LifecycleEvent::from_i32(n).unwrap();
            format!("{} {}", ev.virsh_name(), ev.detail_name(d))
        };
        assert_eq!(e(4, 0), "Resumed Unpaused");
        assert_eq!(e(2, 0), "Started Booted");
        assert_eq!(e(6, 2), "Shutdown Finished after host request");
        assert_eq!(e(5, 1), "Stopped Destroyed");
    }
}
