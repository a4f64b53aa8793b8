//! QMP's JSON dialect, as QEMU reads and writes it.
//!
//! QEMU does not read QMP input with a generic JSON library: a lexer splits
//! the byte stream into tokens, a streamer cuts a message as soon as its
//! braces and brackets balance, and only then is the message parsed. That is
//! what lets QMP messages span lines, several arrive in one read, and the
//! monitor recover from garbage (it skips to the next `{`, `}`, `[`, `]` or
//! control character) instead of waiting forever. We rebuild those three
//! stages so that errors come out in the same number and with the same
//! words as QEMU's, which matters to clients that match on them.
//!
//! A brace-counting splitter was chosen over `serde_json::StreamDeserializer`
//! because the latter must re-parse an incomplete message from its start on
//! every read (quadratic on a slow 1 MiB message), cannot say where the next
//! message begins after a syntax error, and reports errors in its own words.

mod lexer;
mod parser;
mod streamer;
mod writer;

pub use streamer::{Framed, Streamer, StreamerError};
pub use writer::to_qmp_line;

/// The largest message the monitor accepts, in bytes. QEMU's own limit is
/// 64 MiB per token; no real QMP command comes near 1 MiB, and a smaller cap
/// bounds what one client can make the VMM allocate.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Deepest nesting QEMU accepts (`MAX_NESTING` in json-streamer.c).
pub const MAX_NESTING: i64 = 1024;
