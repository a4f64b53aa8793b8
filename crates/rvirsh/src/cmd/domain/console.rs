//! `console`: the domain's serial console over a DOMAIN_OPEN_CONSOLE
//! stream, the terminal in raw mode, `Ctrl+]` to leave.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rvirt_remote::calls::DomainFlagsArgs;
use rvirt_remote::consts::VIR_DOMAIN_CONSOLE_FORCE;
use rvirt_remote::event::DomainState;
use rvirt_remote::{procs, Async, MessageStatus, NonnullDomain};

use crate::error::CmdError;
use crate::out::Out;
use crate::session::{By, Session};
use crate::term::{stdin_is_tty, RawMode};

/// `VIR_DOMAIN_CONSOLE_SAFE`.
const CONSOLE_SAFE: u32 = 1 << 1;

pub fn console_cmd(
    s: &mut Session,
    out: &Out,
    arg: &str,
    devname: Option<String>,
    force: bool,
    safe: bool,
) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let mut flags = 0;
    if force {
        flags |= VIR_DOMAIN_CONSOLE_FORCE;
    }
    if safe {
        flags |= CONSOLE_SAFE;
    }
    run_console(s, out, &dom, devname, flags)
}

/// Splits typed input at the escape character: what to send, and whether
/// the user asked to leave.
pub fn split_escape(input: &[u8], escape: u8) -> (&[u8], bool) {
    match input.iter().position(|&b| b == escape) {
        Some(i) => (&input[..i], true),
        None => (input, false),
    }
}

/// Attaches to the console of a running domain until `Ctrl+]` or the
/// end of the stream.
pub fn run_console(
    s: &mut Session,
    out: &Out,
    dom: &NonnullDomain,
    devname: Option<String>,
    flags: u32,
) -> Result<(), CmdError> {
    let state = s
        .call::<procs::DomainGetState>(&DomainFlagsArgs {
            dom: dom.clone(),
            flags: 0,
        })
        .map_err(|_| CmdError::msg("Unable to get domain status"))?;
    if state.state == DomainState::Shutoff as i32 {
        return Err(CmdError::msg("The domain is not running"));
    }
    if !stdin_is_tty() {
        return Err(CmdError::msg(
            "Cannot run interactive console without a controlling TTY",
        ));
    }
    out.extra(&format!("Connected to domain '{}'\n", dom.name));
    let mut greeting = format!("Escape character is {}", out.escape_text);
    if let [b'^', c] = out.escape_text.as_bytes() {
        greeting.push_str(&format!(" (Ctrl + {})", char::from(*c)));
    }
    out.extra(&format!("{greeting}\n"));
    let sender = s.client.open_console(dom.clone(), devname, flags)?;
    let raw = RawMode::stdin();
    let quit = Arc::new(AtomicBool::new(false));
    let escape = out.escape;
    {
        let quit = Arc::clone(&quit);
        let sender = sender.clone();
        // Blocking reads of stdin; the thread is left behind when the
        // console ends, and dies with the process.
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let mut stdin = std::io::stdin();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (data, leave) = split_escape(&buf[..n], escape);
                if !data.is_empty() && sender.send(data).is_err() {
                    break;
                }
                if leave {
                    break;
                }
            }
            quit.store(true, Ordering::SeqCst);
        });
    }
    let result = pump(s, &quit, sender.serial());
    let _ = sender.finish();
    drop(raw);
    result
}

/// Copies console output to stdout until the user leaves or the stream ends.
fn pump(s: &mut Session, quit: &AtomicBool, serial: u32) -> Result<(), CmdError> {
    let mut stdout = std::io::stdout();
    while !quit.load(Ordering::SeqCst) {
        // A short wait, so that the user's escape is noticed soon.
        let Some(a) = s
            .client
            .next_stream(serial, Some(Duration::from_millis(100)))?
        else {
            continue;
        };
        if let Some(e) = a.stream_error() {
            let e = e.map_err(|e| CmdError::msg(format!("invalid stream error: {e}")))?;
            return Err(CmdError::msg(e.to_string()));
        }
        match a {
            Async::Stream {
                status: MessageStatus::Continue,
                data,
                ..
            } if !data.is_empty() => {
                let _ = stdout.write_all(&data);
                let _ = stdout.flush();
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ctrl+]`, virsh's default escape character.
    const ESCAPE: u8 = 0x1d;

    #[test]
    fn escape_ends_input() {
        assert_eq!(split_escape(b"ls\r", ESCAPE), (&b"ls\r"[..], false));
        assert_eq!(split_escape(b"ab\x1dcd", ESCAPE), (&b"ab"[..], true));
        assert_eq!(split_escape(b"\x1d", ESCAPE), (&b""[..], true));
        assert_eq!(split_escape(b"ab\x01", 0x01), (&b"ab"[..], true));
    }
}
