//! `event`: registers domain event callbacks and prints each event as
//! virsh does, until the first event, `--timeout`, or Ctrl+C with `--loop`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvirt_remote::calls::{CallbackIdArgs, ConnectDomainEventCallbackRegisterAnyArgs};
use rvirt_remote::event::LifecycleEvent;
use rvirt_remote::{procs, Args, NonnullDomain};

use crate::cli::EventOpts;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::{By, Session};

/// The domain event names virsh knows, in `VIR_DOMAIN_EVENT_ID_*` order.
pub const EVENT_NAMES: &[&str] = &[
    "lifecycle",
    "reboot",
    "rtc-change",
    "watchdog",
    "io-error",
    "graphics",
    "io-error-reason",
    "control-error",
    "block-job",
    "disk-change",
    "tray-change",
    "pm-wakeup",
    "pm-suspend",
    "balloon-change",
    "pm-suspend-disk",
    "device-removed",
    "block-job-2",
    "tunable",
    "agent-lifecycle",
    "device-added",
    "migration-iteration",
    "job-completed",
    "device-removal-failed",
    "metadata-change",
    "block-threshold",
    "memory-failure",
    "memory-device-size-change",
];

/// The events rvirsh can print: lifecycle (0) and reboot (1).
const SUPPORTED: &[i32] = &[0, 1];

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Through libc: rustix installs no signal handlers (its `runtime`
/// module is for programs without libc), and one flag needs no crate.
pub(crate) fn catch_sigint() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; `signal` has no other preconditions.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// Whether Ctrl+C was pressed since [`catch_sigint`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `YYYY-MM-DD HH:MM:SS.mmm+0000`, libvirt's timestamp, in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The line virsh prints for an event, without timestamp.
pub fn event_line(a: &Args, ids: &[i32]) -> Option<String> {
    match a {
        Args::DomainEventCallbackLifecycle(m) if ids.contains(&m.callback_id) => {
            let (ev, detail) = match LifecycleEvent::from_i32(m.msg.event) {
                Some(e) => (e.virsh_name(), e.detail_name(m.msg.detail)),
                None => ("unknown", "unknown"),
            };
            Some(format!(
                "event 'lifecycle' for domain '{}': {ev} {detail}\n",
                m.msg.dom.name
            ))
        }
        Args::DomainEventCallbackReboot(m) if ids.contains(&m.callback_id) => {
            Some(format!("event 'reboot' for domain '{}'\n", m.msg.dom.name))
        }
        _ => None,
    }
}

pub fn event(s: &mut Session, out: &Out, o: &EventOpts) -> Result<(), CmdError> {
    if o.list {
        for n in EVENT_NAMES {
            out.print(&format!("{n}\n"));
        }
        return Ok(());
    }
    let wanted: Vec<i32> = match (&o.event, o.all) {
        (Some(_), true) => {
            return Err(CmdError::msg(
                "Options --all and --event are mutually exclusive",
            ))
        }
        (None, false) => {
            return Err(CmdError::msg(
                "one of --list, --all, or --event <type> is required",
            ))
        }
        (None, true) => SUPPORTED.to_vec(),
        (Some(name), false) => match EVENT_NAMES.iter().position(|n| n == name) {
            Some(i) if SUPPORTED.contains(&(i as i32)) => vec![i as i32],
            Some(_) => {
                return Err(CmdError::msg(format!(
                    "event type '{name}' is not supported by rvirsh"
                )))
            }
            None => return Err(CmdError::msg(format!("unknown event type {name}"))),
        },
    };
    let dom: Option<NonnullDomain> = match &o.domain {
        Some(d) => Some(s.lookup(d, By::ANY)?),
        None => None,
    };
    let mut ids = Vec::new();
    for event_id in wanted {
        let r = s.call::<procs::ConnectDomainEventCallbackRegisterAny>(
            &ConnectDomainEventCallbackRegisterAnyArgs {
                event_id,
                dom: dom.clone(),
            },
        );
        match r {
            Ok(r) => ids.push(r.callback_id),
            // With --all, an event the daemon cannot send is simply not
            // waited for; one asked for by name is an error.
            Err(_) if o.all => {}
            Err(e) => {
                return Err(CmdError::from(e).context(format!(
                    "failed to register event '{}'",
                    EVENT_NAMES[event_id as usize]
                )))
            }
        }
    }
    catch_sigint();
    let deadline = o.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut count = 0u64;
    let outcome = loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break Some("event loop interrupted\n");
        }
        let mut wait = Duration::from_millis(200);
        if let Some(d) = deadline {
            match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => wait = wait.min(left),
                _ => break Some("event loop timed out\n"),
            }
        }
        match s.client.next_event(Some(wait)) {
            Ok(Some(a)) => {
                if let Some(line) = event_line(&a, &ids) {
                    let prefix = if o.timestamp {
                        format!("{}: ", timestamp(SystemTime::now()))
                    } else {
                        String::new()
                    };
                    out.print(&format!("{prefix}{line}"));
                    count += 1;
                    if !o.loop_ {
                        break None;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(msg) = outcome {
        out.print(msg);
    }
    for callback_id in ids {
        let _ = s.call::<procs::ConnectDomainEventCallbackDeregisterAny>(&CallbackIdArgs {
            callback_id,
        });
    }
    out.print(&format!("events received: {count}\n"));
    if count == 0 {
        // virsh's cmdEvent succeeds when an event came, however the loop
        // ended (timed out, interrupted), and fails silently otherwise.
        return Err(CmdError {
            context: None,
            cause: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvirt_remote::calls::{DomainEventCallbackLifecycleMsg, DomainEventLifecycleMsg};

    #[test]
    fn timestamps_in_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_475_930_191);
        assert_eq!(timestamp(t), "2026-11-23 23:18:50.191+0000");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00.000+0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29 00:00:00.000+0000");
    }

    #[test]
    fn lifecycle_lines() {
        let msg = |cb, event, detail| {
            Args::DomainEventCallbackLifecycle(DomainEventCallbackLifecycleMsg {
                callback_id: cb,
                msg: DomainEventLifecycleMsg {
                    dom: NonnullDomain {
                        name: "rvx1".into(),
                        uuid: Default::default(),
                        id: 2,
                    },
                    event,
                    detail,
                },
            })
        };
        assert_eq!(
            event_line(&msg(4, 2, 0), &[4]).as_deref(),
            Some("event 'lifecycle' for domain 'rvx1': Started Booted\n")
        );
        assert_eq!(
            event_line(&msg(4, 5, 1), &[4]).as_deref(),
            Some("event 'lifecycle' for domain 'rvx1': Stopped Destroyed\n")
        );
        assert_eq!(event_line(&msg(9, 2, 0), &[4]), None);
    }
}
