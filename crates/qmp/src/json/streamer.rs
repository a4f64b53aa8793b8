//! Cuts the token stream into messages, as QEMU's json-streamer.c does: a
//! message ends when its braces and brackets balance (or go negative), and
//! a lexical error discards the message in progress.

use super::lexer::{Lexed, Lexer, TokenKind};
use super::parser::{parse, Token};
use super::{MAX_MESSAGE_SIZE, MAX_NESTING};
use serde_json::Value;
use std::collections::VecDeque;

/// One complete input message, or the error that replaced it.
#[derive(Debug, PartialEq)]
pub enum Framed {
    /// A well-formed JSON value (not necessarily an object).
    Message(Value),
    /// The description of a JSON error, in QEMU's words.
    Error(String),
}

/// Input the connection cannot continue after.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamerError {
    /// A message grew past the size limit before it ended.
    #[error("message exceeds the {limit}-byte limit")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
}

/// Incremental QMP input framer.
pub struct Streamer {
    lexer: Lexer,
    tokens: Vec<Token>,
    brace: i64,
    bracket: i64,
    message_bytes: usize,
    limit: usize,
    ready: VecDeque<Framed>,
}

impl Default for Streamer {
    fn default() -> Self {
        Self::new(MAX_MESSAGE_SIZE)
    }
}

impl Streamer {
    /// A framer refusing messages longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            lexer: Lexer::new(),
            tokens: Vec::new(),
            brace: 0,
            bracket: 0,
            message_bytes: 0,
            limit,
            ready: VecDeque::new(),
        }
    }

    /// Feeds a whole buffer. On error the framer has been reset and the
    /// caller is expected to close the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), StreamerError> {
        bytes.iter().try_for_each(|&b| self.feed_byte(b))
    }

    /// Feeds one byte; finished messages queue up for [`Streamer::next`].
    pub fn feed_byte(&mut self, b: u8) -> Result<(), StreamerError> {
        let was_in_message = !self.tokens.is_empty() || !self.lexer.idle();
        loop {
            match self.lexer.feed(b) {
                Lexed::Nothing => break,
                Lexed::Token { kind, reprocess } => {
                    let text = std::mem::take(&mut self.lexer.text);
                    self.token(kind, text);
                    if !reprocess {
                        break;
                    }
                }
            }
        }
        // Bytes skipped between messages or during error recovery are never
        // stored, so only bytes of a message in progress count.
        if was_in_message || !self.tokens.is_empty() || !self.lexer.idle() {
            self.message_bytes += 1;
            if self.message_bytes > self.limit {
                self.reset();
                self.lexer = Lexer::new();
                return Err(StreamerError::TooLarge { limit: self.limit });
            }
        }
        if self.tokens.is_empty() && self.lexer.idle() {
            self.message_bytes = 0;
        }
        Ok(())
    }

    /// The next finished message, oldest first.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Framed> {
        self.ready.pop_front()
    }

    /// Number of finished messages not yet taken.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    fn token(&mut self, kind: TokenKind, text: Vec<u8>) {
        match kind {
            TokenKind::LCurly => self.brace += 1,
            TokenKind::RCurly => self.brace -= 1,
            TokenKind::LSquare => self.bracket += 1,
            TokenKind::RSquare => self.bracket -= 1,
            TokenKind::Error => {
                let desc = format!(
                    "JSON parse error, stray '{}'",
                    String::from_utf8_lossy(&text)
                );
                self.emit(Framed::Error(desc));
                return;
            }
            _ => {}
        }
        if self.brace + self.bracket > MAX_NESTING {
            self.emit(Framed::Error("JSON nesting depth limit exceeded".into()));
            return;
        }
        self.tokens.push(Token { kind, text });
        let open = self.brace > 0 || self.bracket > 0;
        if open && self.brace >= 0 && self.bracket >= 0 {
            return;
        }
        let framed = match parse(&self.tokens) {
            Ok(v) => Framed::Message(v),
            Err(e) => Framed::Error(e),
        };
        self.emit(framed);
    }

    fn emit(&mut self, framed: Framed) {
        self.reset();
        self.ready.push_back(framed);
    }

    fn reset(&mut self) {
        self.tokens.clear();
        self.brace = 0;
        self.bracket = 0;
        self.message_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(input: &[u8]) -> Vec<Framed> {
        let mut s = Streamer::default();
        s.feed(input).unwrap();
        std::iter::from_fn(|| s.next()).collect()
    }

    fn err(s: &str) -> Framed {
        Framed::Error(s.into())
    }

    #[test]
    fn several_messages_in_one_buffer_and_across_lines() {
        let got = frame(b"{\"a\":\n 1}{\"b\": [2,\n3]}\n");
        assert_eq!(
            got,
            [
                Framed::Message(json!({"a": 1})),
                Framed::Message(json!({"b": [2, 3]}))
            ]
        );
    }

    #[test]
    fn message_split_over_feeds() {
        let mut s = Streamer::default();
        let text = br#"{"execute": "query-status", "id": "x"}"#;
        for b in text {
            assert!(s.next().is_none());
            s.feed_byte(*b).unwrap();
        }
        assert_eq!(
            s.next(),
            Some(Framed::Message(
                json!({"execute": "query-status", "id": "x"})
            ))
        );
    }

    #[test]
    fn stray_byte_then_recovery_matches_qemu() {
        // QEMU 7.2 answers `{"execute": @}` with these two errors.
        assert_eq!(
            frame(b"{\"execute\": @}\n"),
            [
                err("JSON parse error, stray '@'"),
                err("JSON parse error, expecting value")
            ]
        );
        assert_eq!(
            frame(b"\xff{\"a\": 1}"),
            [
                err("JSON parse error, stray '\u{fffd}'"),
                Framed::Message(json!({"a": 1}))
            ]
        );
    }

    #[test]
    fn scalars_at_top_level_are_messages() {
        assert_eq!(
            frame(b"42\n\"x\""),
            [Framed::Message(json!(42)), Framed::Message(json!("x"))]
        );
        // A number still open at the end of input waits for its terminator.
        assert!(frame(b"42").is_empty());
    }

    #[test]
    fn nesting_limit() {
        let mut input = vec![b'['; 1100];
        input.extend(vec![b']'; 1100]);
        let got = frame(&input);
        assert_eq!(got[0], err("JSON nesting depth limit exceeded"));
    }

    #[test]
    fn size_limit_is_fatal_but_whitespace_is_free() {
        let mut s = Streamer::new(16);
        s.feed(&[b' '; 100]).unwrap();
        s.feed(br#"{"a": "0123"}"#).unwrap();
        assert_eq!(s.next(), Some(Framed::Message(json!({"a": "0123"}))));
        assert_eq!(
            s.feed(br#"{"a": "0123456789abcdef"}"#),
            Err(StreamerError::TooLarge { limit: 16 })
        );
    }
}
