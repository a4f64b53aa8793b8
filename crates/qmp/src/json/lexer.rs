//! Byte-level tokenizer with QEMU's token set and error recovery.

/// Kinds of token the streamer sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    /// A string token, quotes included, escapes not yet decoded.
    String,
    Integer,
    Float,
    /// `[a-z]+`: the parser accepts only `true`, `false` and `null`.
    Keyword,
    /// Bytes that cannot start or continue a token; the text includes the
    /// offending byte.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    /// After an error: skip to a byte where a new token may plausibly begin.
    Recovery,
    DqString,
    DqEscape,
    SqString,
    SqEscape,
    /// `-` seen.
    Minus,
    Zero,
    Digits,
    /// `.` seen, a digit must follow.
    Point,
    Fraction,
    /// `e`/`E` seen.
    Exp,
    /// Exponent sign seen, a digit must follow.
    ExpSign,
    ExpDigits,
    Keyword,
}

/// What feeding one byte produced.
pub(crate) enum Lexed {
    /// Nothing complete yet (or the byte was whitespace / skipped).
    Nothing,
    /// A token ended; `reprocess` means the byte that ended it was not part
    /// of it and must be fed again.
    Token { kind: TokenKind, reprocess: bool },
}

/// The tokenizer. The current token's text accumulates in `text`.
pub(crate) struct Lexer {
    state: State,
    pub(crate) text: Vec<u8>,
}

impl Lexer {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Start,
            text: Vec::new(),
        }
    }

    /// True when no token is half-read (whitespace between messages).
    pub(crate) fn idle(&self) -> bool {
        matches!(self.state, State::Start | State::Recovery)
    }

    /// Starts a new token; the caller takes `text` after each `Token`.
    fn emit(&mut self, kind: TokenKind, reprocess: bool) -> Lexed {
        self.state = State::Start;
        Lexed::Token { kind, reprocess }
    }

    fn error(&mut self, b: u8) -> Lexed {
        self.text.push(b);
        self.state = State::Recovery;
        Lexed::Token {
            kind: TokenKind::Error,
            reprocess: false,
        }
    }

    fn keep(&mut self, b: u8, state: State) -> Lexed {
        self.text.push(b);
        self.state = state;
        Lexed::Nothing
    }

    /// Feeds one byte. Number and keyword tokens end on the first byte that
    /// cannot continue them, which is then reprocessed; a non-ASCII byte
    /// there is an error, as in QEMU's table.
    pub(crate) fn feed(&mut self, b: u8) -> Lexed {
        use State::*;
        let ends_token = b < 0x80;
        match self.state {
            Start => match b {
                b' ' | b'\t' | b'\r' | b'\n' => Lexed::Nothing,
                b'{' => self.single(b, TokenKind::LCurly),
                b'}' => self.single(b, TokenKind::RCurly),
                b'[' => self.single(b, TokenKind::LSquare),
                b']' => self.single(b, TokenKind::RSquare),
                b':' => self.single(b, TokenKind::Colon),
                b',' => self.single(b, TokenKind::Comma),
                b'"' => self.keep(b, DqString),
                b'\'' => self.keep(b, SqString),
                b'-' => self.keep(b, Minus),
                b'0' => self.keep(b, Zero),
                b'1'..=b'9' => self.keep(b, Digits),
                b'a'..=b'z' => self.keep(b, Keyword),
                _ => self.error(b),
            },
            Recovery => match b {
                b'{' | b'}' | b'[' | b']' | 0xFE | 0xFF => self.restart(b),
                b'\t' => Lexed::Nothing,
                0..=0x1F => self.restart(b),
                _ => Lexed::Nothing,
            },
            DqString | SqString => {
                let quote = if self.state == DqString { b'"' } else { b'\'' };
                match b {
                    _ if b == quote => {
                        self.text.push(b);
                        self.emit(TokenKind::String, false)
                    }
                    b'\\' => {
                        let esc = if self.state == DqString {
                            DqEscape
                        } else {
                            SqEscape
                        };
                        self.keep(b, esc)
                    }
                    0x20..=0xFD => self.keep(b, self.state),
                    _ => self.error(b),
                }
            }
            DqEscape | SqEscape => match b {
                0x20..=0xFD => {
                    let back = if self.state == DqEscape {
                        DqString
                    } else {
                        SqString
                    };
                    self.keep(b, back)
                }
                _ => self.error(b),
            },
            Minus => match b {
                b'0' => self.keep(b, Zero),
                b'1'..=b'9' => self.keep(b, Digits),
                _ => self.error(b),
            },
            Zero => match b {
                b'0'..=b'9' => self.error(b),
                b'.' => self.keep(b, Point),
                _ if ends_token => self.emit(TokenKind::Integer, true),
                _ => self.error(b),
            },
            Digits => match b {
                b'0'..=b'9' => self.keep(b, Digits),
                b'.' => self.keep(b, Point),
                b'e' | b'E' => self.keep(b, Exp),
                _ if ends_token => self.emit(TokenKind::Integer, true),
                _ => self.error(b),
            },
            Point => match b {
                b'0'..=b'9' => self.keep(b, Fraction),
                _ => self.error(b),
            },
            Fraction => match b {
                b'0'..=b'9' => self.keep(b, Fraction),
                b'e' | b'E' => self.keep(b, Exp),
                _ if ends_token => self.emit(TokenKind::Float, true),
                _ => self.error(b),
            },
            Exp => match b {
                b'+' | b'-' => self.keep(b, ExpSign),
                b'0'..=b'9' => self.keep(b, ExpDigits),
                _ => self.error(b),
            },
            ExpSign => match b {
                b'0'..=b'9' => self.keep(b, ExpDigits),
                _ => self.error(b),
            },
            ExpDigits => match b {
                b'0'..=b'9' => self.keep(b, ExpDigits),
                _ if ends_token => self.emit(TokenKind::Float, true),
                _ => self.error(b),
            },
            Keyword => match b {
                b'a'..=b'z' => self.keep(b, Keyword),
                _ if ends_token => self.emit(TokenKind::Keyword, true),
                _ => self.error(b),
            },
        }
    }

    fn single(&mut self, b: u8, kind: TokenKind) -> Lexed {
        self.text.push(b);
        self.emit(kind, false)
    }

    /// Leaves recovery; the byte is lexed again from the start state.
    fn restart(&mut self, b: u8) -> Lexed {
        self.state = State::Start;
        self.feed(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: &[u8]) -> Vec<(TokenKind, String)> {
        let mut lx = Lexer::new();
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            match lx.feed(input[i]) {
                Lexed::Nothing => i += 1,
                Lexed::Token { kind, reprocess } => {
                    out.push((kind, String::from_utf8_lossy(&lx.text).into_owned()));
                    lx.text.clear();
                    if !reprocess {
                        i += 1;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn splits_structural_strings_numbers_keywords() {
        use TokenKind::*;
        let t = tokens(br#"{"a": [1, -2.5e3, true]} "#);
        let kinds: Vec<_> = t.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                LCurly, String, Colon, LSquare, Integer, Comma, Float, Comma, Keyword, RSquare,
                RCurly
            ]
        );
        assert_eq!(t[6].1, "-2.5e3");
        assert_eq!(t[1].1, "\"a\"");
    }

    #[test]
    fn error_includes_offending_byte_and_recovers_at_structure() {
        let t = tokens(b"\"ab\tcd\"}x");
        assert_eq!(t[0], (TokenKind::Error, "\"ab\t".to_string()));
        assert_eq!(t[1].0, TokenKind::RCurly);
        // `x` begins a keyword that is still open at the end of input.
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn leading_zero_is_an_error() {
        assert_eq!(tokens(b"01 ")[0], (TokenKind::Error, "01".to_string()));
    }

    #[test]
    fn single_quoted_strings_are_tokens() {
        assert_eq!(
            tokens(b"'a\"b'")[0],
            (TokenKind::String, "'a\"b'".to_string())
        );
    }
}
