//! The terminal: raw mode for `console` and `edit`'s question, restored
//! when the guard drops (also on errors).

use rustix::termios::{self, OptionalActions, Termios};

/// Is standard input a terminal?
pub fn stdin_is_tty() -> bool {
    termios::isatty(std::io::stdin())
}

/// Puts standard input's terminal into raw mode until dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on standard input; `None` when it is not a terminal.
    pub fn stdin() -> Option<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(&stdin, OptionalActions::Flush, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Flush, &self.saved);
    }
}
