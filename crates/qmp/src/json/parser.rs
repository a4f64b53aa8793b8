//! Turns one message's tokens into a JSON value, failing with the words of
//! QEMU's json-parser.c (the first error wins, as there).

use super::lexer::TokenKind;
use serde_json::{Map, Number, Value};

pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) text: Vec<u8>,
}

/// Parses a complete message. Errors are already prefixed with
/// "JSON parse error, ".
pub(crate) fn parse(tokens: &[Token]) -> Result<Value, String> {
    let mut p = Parser { tokens, pos: 0 };
    let value = p.value().map_err(|e| format!("JSON parse error, {e}"))?;
    if p.pos != tokens.len() {
        // The streamer cuts a message where its value ends, so this only
        // happens after unbalanced closers, which QEMU reports like this.
        return Err("JSON parse error, expecting value".into());
    }
    Ok(value)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<&Token, String> {
        self.tokens
            .get(self.pos)
            .ok_or_else(|| "premature EOI".into())
    }

    fn pop(&mut self) -> Result<&Token, String> {
        let t = self.tokens.get(self.pos).ok_or("premature EOI")?;
        self.pos += 1;
        Ok(t)
    }

    fn value(&mut self) -> Result<Value, String> {
        let t = self.peek()?;
        match t.kind {
            TokenKind::LCurly => self.object(),
            TokenKind::LSquare => self.array(),
            TokenKind::String => {
                let s = decode_string(&t.text)?;
                self.pos += 1;
                Ok(Value::String(s))
            }
            TokenKind::Integer | TokenKind::Float => {
                let n = number(t.kind, &t.text)?;
                self.pos += 1;
                Ok(Value::Number(n))
            }
            TokenKind::Keyword => {
                let v = match t.text.as_slice() {
                    b"true" => Value::Bool(true),
                    b"false" => Value::Bool(false),
                    b"null" => Value::Null,
                    other => {
                        return Err(format!(
                            "invalid keyword '{}'",
                            String::from_utf8_lossy(other)
                        ))
                    }
                };
                self.pos += 1;
                Ok(v)
            }
            _ => Err("expecting value".into()),
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.pop()?; // `{`
        let mut map = Map::new();
        if self.peek()?.kind == TokenKind::RCurly {
            self.pop()?;
            return Ok(Value::Object(map));
        }
        self.pair(&mut map)?;
        loop {
            match self.pop()?.kind {
                TokenKind::RCurly => return Ok(Value::Object(map)),
                TokenKind::Comma => self.pair(&mut map)?,
                _ => return Err("expected separator in dict".into()),
            }
        }
    }

    fn pair(&mut self, map: &mut Map<String, Value>) -> Result<(), String> {
        let key = match self.value()? {
            Value::String(s) => s,
            _ => return Err("key is not a string in object".into()),
        };
        if self.pop()?.kind != TokenKind::Colon {
            return Err("missing : in object pair".into());
        }
        let value = self.value()?;
        if map.contains_key(&key) {
            return Err("duplicate key".into());
        }
        map.insert(key, value);
        Ok(())
    }

    fn array(&mut self) -> Result<Value, String> {
        self.pop()?; // `[`
        let mut list = Vec::new();
        if self.peek()?.kind == TokenKind::RSquare {
            self.pop()?;
            return Ok(Value::Array(list));
        }
        list.push(self.value()?);
        loop {
            match self.pop()?.kind {
                TokenKind::RSquare => return Ok(Value::Array(list)),
                TokenKind::Comma => list.push(self.value()?),
                _ => return Err("expected separator in list".into()),
            }
        }
    }
}

/// Integers that fit i64 stay i64, then u64, else they become doubles, as
/// in QEMU (`parse_literal`).
fn number(kind: TokenKind, text: &[u8]) -> Result<Number, String> {
    // The lexer only lets ASCII digits, signs, `.` and `e` through.
    let s = std::str::from_utf8(text).map_err(|_| "expecting value".to_string())?;
    if kind == TokenKind::Integer {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(i.into());
        }
        if let Ok(u) = s.parse::<u64>() {
            return Ok(u.into());
        }
    }
    let f: f64 = s.parse().map_err(|_| "expecting value".to_string())?;
    // JSON cannot carry infinity; QEMU would print it as `inf`, which is not
    // JSON either. Refuse it here instead.
    Number::from_f64(f).ok_or_else(|| format!("number {s} out of range"))
}

/// Decodes a quoted string token (either quote style).
fn decode_string(text: &[u8]) -> Result<String, String> {
    let body = &text[1..text.len() - 1];
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            let run_end = body[i..]
                .iter()
                .position(|&b| b == b'\\')
                .map_or(body.len(), |p| i + p);
            let run = std::str::from_utf8(&body[i..run_end])
                .map_err(|_| "invalid UTF-8 sequence in string".to_string())?;
            out.push_str(run);
            i = run_end;
            continue;
        }
        let start = i;
        i += 1;
        let c = body.get(i).copied().unwrap_or(0);
        i += 1;
        match c {
            b'"' => out.push('"'),
            b'\'' => out.push('\''),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let (ch, used) = unicode_escape(&body[i..]);
                i += used;
                match ch {
                    Some(ch) => out.push(ch),
                    None => {
                        return Err(format!(
                            "{} is not a valid Unicode character",
                            String::from_utf8_lossy(&body[start..i])
                        ))
                    }
                }
            }
            _ => return Err("invalid escape sequence in string".into()),
        }
    }
    Ok(out)
}

fn hex4(b: &[u8]) -> Option<u32> {
    let digits = b.get(..4)?;
    let s = std::str::from_utf8(digits).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Decodes the XXXX of `\uXXXX` (and a following low surrogate). Returns the
/// character, if valid, and how many bytes after `\u` were used.
fn unicode_escape(rest: &[u8]) -> (Option<char>, usize) {
    let Some(cp) = hex4(rest) else {
        return (None, rest.len().min(4));
    };
    if (0xD800..=0xDBFF).contains(&cp) && rest.get(4..6) == Some(b"\\u") {
        return match hex4(&rest[6..]) {
            Some(lo @ 0xDC00..=0xDFFF) => {
                let full = 0x10000 + ((cp & 0x3FF) << 10) + (lo & 0x3FF);
                (char::from_u32(full), 10)
            }
            _ => (None, 4),
        };
    }
    (char::from_u32(cp), 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(kind: TokenKind, text: &str) -> Token {
        Token {
            kind,
            text: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn decodes_escapes_and_surrogates() {
        assert_eq!(
            decode_string(br#""a\"\n\u00e9\ud83d\ude00'""#).unwrap(),
            "a\"\n\u{e9}\u{1F600}'"
        );
        assert_eq!(
            decode_string(br#""\x""#).unwrap_err(),
            "invalid escape sequence in string"
        );
        assert_eq!(
            decode_string(br#""\ud800""#).unwrap_err(),
            "\\ud800 is not a valid Unicode character"
        );
        assert_eq!(
            decode_string(b"\"\xff\"").unwrap_err(),
            "invalid UTF-8 sequence in string"
        );
    }

    #[test]
    fn numbers_follow_qemu_widening() {
        use TokenKind::*;
        assert_eq!(number(Integer, b"-5").unwrap(), Number::from(-5));
        assert_eq!(
            number(Integer, b"18446744073709551615").unwrap(),
            Number::from(u64::MAX)
        );
        assert!(number(Integer, b"123456789012345678901234567890")
            .unwrap()
            .is_f64());
        assert!(number(Float, b"1e999").is_err());
    }

    #[test]
    fn errors_use_qemu_words() {
        use TokenKind::*;
        let cases: &[(&[Token], &str)] = &[
            (
                &[
                    tok(LCurly, "{"),
                    tok(Integer, "1"),
                    tok(Colon, ":"),
                    tok(Integer, "2"),
                    tok(RCurly, "}"),
                ],
                "JSON parse error, key is not a string in object",
            ),
            (
                &[
                    tok(LCurly, "{"),
                    tok(String, "\"a\""),
                    tok(String, "\"b\""),
                    tok(RCurly, "}"),
                ],
                "JSON parse error, missing : in object pair",
            ),
            (
                &[
                    tok(LSquare, "["),
                    tok(Integer, "1"),
                    tok(Integer, "2"),
                    tok(RSquare, "]"),
                ],
                "JSON parse error, expected separator in list",
            ),
            (&[tok(RCurly, "}")], "JSON parse error, expecting value"),
            (
                &[tok(Keyword, "nul")],
                "JSON parse error, invalid keyword 'nul'",
            ),
            (&[tok(LCurly, "{")], "JSON parse error, premature EOI"),
            (
                &[
                    tok(LCurly, "{"),
                    tok(String, "\"a\""),
                    tok(Colon, ":"),
                    tok(Integer, "1"),
                    tok(Comma, ","),
                    tok(String, "\"a\""),
                    tok(Colon, ":"),
                    tok(Integer, "1"),
                    tok(RCurly, "}"),
                ],
                "JSON parse error, duplicate key",
            ),
        ];
        for (tokens, want) in cases {
            assert_eq!(parse(tokens).unwrap_err(), *want);
        }
    }
}
