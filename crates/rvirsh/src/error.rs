//! How a command fails: the `error: ...` lines virsh prints on stderr.
//!
//! virsh reports a failed command in up to two lines: its own sentence
//! (`Failed to destroy domain 'x'`) and then libvirt's error
//! (`Requested operation is not valid: domain is not running`). Some
//! failures have only one of them.

use std::fmt;

use rvirt_remote::ClientError;
use thiserror::Error;

/// A command's failure, printed as one or two `error: ` lines.
#[derive(Debug, Error)]
pub struct CmdError {
    /// virsh's own sentence, printed first.
    pub context: Option<String>,
    /// The daemon's (or the system's) error, printed second.
    pub cause: Option<String>,
}

impl CmdError {
    /// A failure with only virsh's sentence.
    pub fn msg(m: impl Into<String>) -> Self {
        CmdError {
            context: Some(m.into()),
            cause: None,
        }
    }

    /// Puts virsh's sentence in front of this error's cause.
    pub fn context(self, m: impl Into<String>) -> Self {
        CmdError {
            context: Some(m.into()),
            cause: self.cause.or(self.context),
        }
    }

    /// The lines to print, without the `error: ` prefix.
    pub fn lines(&self) -> Vec<&str> {
        self.context
            .iter()
            .chain(self.cause.iter())
            .map(String::as_str)
            .collect()
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join(": "))
    }
}

/// An I/O error worded as libvirt words `strerror`: without Rust's
/// ` (os error N)` suffix.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// An error and its sources as one line, `what: why: ...`: each message
/// leaves its source out, so the chain is printed once, here.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        next = cause.source();
    }
    s
}

/// A client error as the cause line virsh would show.
pub fn client_cause(e: &ClientError) -> String {
    match e {
        ClientError::Remote(r) => r.to_string(),
        ClientError::Connect { path, source } => format!(
            "Failed to connect socket to '{}': {}",
            path.display(),
            strerror(source)
        ),
        ClientError::Closed => "End of file while reading data: Input/output error".to_string(),
        other => chain(other),
    }
}

impl From<ClientError> for CmdError {
    fn from(e: ClientError) -> Self {
        CmdError {
            context: None,
            cause: Some(client_cause(&e)),
        }
    }
}

/// Is this the daemon saying "not supported" (VIR_ERR_NO_SUPPORT)?
pub fn is_no_support(e: &ClientError) -> bool {
    matches!(e, ClientError::Remote(r) if r.code == rvirt_remote::error::code::NO_SUPPORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_moves_the_cause_down() {
        let e = CmdError::from(ClientError::Closed).context("Failed to start domain 'x'");
        assert_eq!(
            e.lines(),
            vec![
                "Failed to start domain 'x'",
                "End of file while reading data: Input/output error"
            ]
        );
        let only = CmdError::msg("failed to get domain 'x'");
        assert_eq!(only.lines(), vec!["failed to get domain 'x'"]);
        let twice = CmdError::msg("a").context("b");
        assert_eq!(twice.lines(), vec!["b", "a"]);
    }

    #[test]
    fn causes_are_printed_once() {
        let e = ClientError::Frame(rvirt_remote::FrameError::Io(std::io::Error::other("reset")));
        assert_eq!(client_cause(&e), "socket I/O failed: reset");
        let lost = ClientError::Lost(std::sync::Arc::new(e));
        assert_eq!(client_cause(&lost), "socket I/O failed: reset");
    }

    #[test]
    fn strerror_drops_the_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(strerror(&e), "No such file or directory");
    }
}
