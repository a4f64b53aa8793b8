//! Writing to stdout as virsh does: plain output always, "extra" output
//! (messages, table headers, the blank line after each command) only when
//! not quiet. Write errors (a closed pipe) are ignored: nothing useful can
//! be reported about them.

use std::io::Write;

/// The command's stdout, and the global options that shape output.
#[derive(Debug, Clone)]
pub struct Out {
    pub quiet: bool,
    /// The console's escape byte (`-e`, default `Ctrl+]`).
    pub escape: u8,
    /// The escape as given (`^]`), for the console's greeting.
    pub escape_text: String,
}

impl Default for Out {
    fn default() -> Self {
        Out {
            quiet: false,
            escape: 0x1d,
            escape_text: "^]".to_string(),
        }
    }
}

impl Out {
    /// Output that `-q` keeps.
    pub fn print(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        let _ = o.flush();
    }

    /// Output that `-q` drops (virsh's `vshPrintExtra`).
    pub fn extra(&self, s: &str) {
        if !self.quiet {
            self.print(s);
        }
    }

    /// A `%-15s %s` line, as `dominfo` and `vcpuinfo` print them.
    pub fn field(&self, label: &str, value: impl std::fmt::Display) {
        self.print(&format!("{label:<15} {value}\n"));
    }
}
