//! RFB's wire format (RFC 6143): the client's messages, parsed from a byte
//! buffer without trusting any length in them, and the server's headers.

use crate::framebuffer::{PixelFormat, Rect};
use crate::input::KeyEvent;

/// The longest ClientCutText accepted, as QEMU (1 MiB); a longer one
/// disconnects the client before anything is allocated.
pub const MAX_CUT_TEXT: u32 = 1 << 20;

/// The longest client message: a ClientCutText at the limit. Input
/// buffers never need more.
pub const MAX_MESSAGE: usize = 8 + MAX_CUT_TEXT as usize;

/// The server's version line.
pub const SERVER_VERSION: &[u8; 12] = b"RFB 003.008\n";

/// Encodings and pseudo-encodings (RFC 6143 §7.7, §7.8).
pub mod encoding {
    /// Pixels as they are.
    pub const RAW: i32 = 0;
    /// A copy of another area of the client's screen.
    pub const COPY_RECT: i32 = 1;
    /// Raw pixels through the connection's zlib stream.
    pub const ZLIB: i32 = 6;
    /// 64x64 tiles (solid or raw) through a second zlib stream.
    pub const ZRLE: i32 = 16;
    /// The framebuffer changed size.
    pub const DESKTOP_SIZE: i32 = -223;
    /// zlib compression levels 0-9 (as the tight pseudo-encodings).
    pub const COMPRESS_LEVEL_0: i32 = -256;
    /// The highest level's pseudo-encoding.
    pub const COMPRESS_LEVEL_9: i32 = -247;
}

/// Security types.
pub mod security {
    /// No authentication.
    pub const NONE: u8 = 1;
    /// VNC's DES challenge.
    pub const VNC: u8 = 2;
}

/// The protocol version a client chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 3.3: the server picks the security type.
    V3_3,
    /// 3.7: a list of types; no result after None.
    V3_7,
    /// 3.8: a result after every type, a reason on failure.
    V3_8,
}

/// Why a client's bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// The version line is not `RFB xxx.yyy\n`.
    #[error("malformed version line")]
    BadVersionLine,
    /// A version no RFB 3.x server speaks.
    #[error("unsupported protocol version {0}.{1}")]
    UnsupportedVersion(u32, u32),
    /// A message type this server does not know.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// QEMU's client message with an unknown subtype.
    #[error("unknown qemu message subtype {0}")]
    UnknownQemuSubtype(u8),
    /// ClientCutText over [`MAX_CUT_TEXT`].
    #[error("cut text of {0} bytes over the limit of 1 MiB")]
    CutTextTooLong(u32),
    /// SetPixelFormat with a format that cannot be served.
    #[error("bad pixel format: {0}")]
    PixelFormat(&'static str),
}

/// One message from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// Pixels from now on in this format (validated).
    SetPixelFormat(PixelFormat),
    /// The encodings the client decodes, preferred first.
    SetEncodings(Vec<i32>),
    /// Send what changed (`incremental`) or everything in `rect`
    /// (unclipped: the framebuffer may have changed size since).
    UpdateRequest {
        /// Only what changed.
        incremental: bool,
        /// The area wanted.
        rect: Rect,
    },
    /// A key.
    Key(KeyEvent),
    /// The pointer (unclipped).
    Pointer {
        /// Button mask.
        buttons: u8,
        /// Column.
        x: u16,
        /// Row.
        y: u16,
    },
    /// The client's clipboard.
    CutText(Vec<u8>),
}

/// Parses the client's version line.
pub fn parse_version(line: &[u8; 12]) -> Result<Version, ProtoError> {
    let digits = |b: &[u8]| -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if &line[..4] != b"RFB " || line[7] != b'.' || line[11] != b'\n' {
        return Err(ProtoError::BadVersionLine);
    }
    let (Some(major), Some(minor)) = (digits(&line[4..7]), digits(&line[8..11])) else {
        return Err(ProtoError::BadVersionLine);
    };
    // As QEMU: 3.4 and 3.5 (other servers' names for 3.3 variants) and
    // Apple's 3.889 speak 3.3.
    match (major, minor) {
        (3, 3..=5) | (3, 889) => Ok(Version::V3_3),
        (3, 7) => Ok(Version::V3_7),
        (3, 8) => Ok(Version::V3_8),
        _ => Err(ProtoError::UnsupportedVersion(major, minor)),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses the first message in `buf`: `Ok(None)` if it is not complete
/// yet, else the message and the bytes it took. Lengths are checked before
/// anything is allocated, so a buffer never needs more than
/// [`MAX_MESSAGE`] bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(ClientMessage, usize)>, ProtoError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let need = |n: usize| buf.len() >= n;
    let msg = match kind {
        0 => {
            if !need(20) {
                return Ok(None);
            }
            let mut raw = [0u8; 16];
            raw.copy_from_slice(&buf[4..20]);
            let format = PixelFormat::from_bytes(&raw);
            let format = if format.true_colour {
                format.validate(false).map_err(ProtoError::PixelFormat)?;
                format
            } else {
                // A colour map: the server fixes its entries (3-3-2).
                if format.bits_per_pixel != 8 {
                    return Err(ProtoError::PixelFormat("colour map not 8 bits per pixel"));
                }
                PixelFormat {
                    true_colour: false,
                    ..PixelFormat::PALETTE_332
                }
            };
            (ClientMessage::SetPixelFormat(format), 20)
        }
        2 => {
            if !need(4) {
                return Ok(None);
            }
            let count = usize::from(u16_at(buf, 2));
            let len = 4 + 4 * count;
            if !need(len) {
                return Ok(None);
            }
            let list = (0..count).map(|i| u32_at(buf, 4 + 4 * i) as i32).collect();
            (ClientMessage::SetEncodings(list), len)
        }
        3 => {
            if !need(10) {
                return Ok(None);
            }
            let rect = Rect::new(
                u16_at(buf, 2),
                u16_at(buf, 4),
                u16_at(buf, 6),
                u16_at(buf, 8),
            );
            let incremental = buf[1] != 0;
            (ClientMessage::UpdateRequest { incremental, rect }, 10)
        }
        4 => {
            if !need(8) {
                return Ok(None);
            }
            let key = KeyEvent {
                keysym: u32_at(buf, 4),
                down: buf[1] != 0,
                keycode: None,
            };
            (ClientMessage::Key(key), 8)
        }
        5 => {
            if !need(6) {
                return Ok(None);
            }
            let msg = ClientMessage::Pointer {
                buttons: buf[1],
                x: u16_at(buf, 2),
                y: u16_at(buf, 4),
            };
            (msg, 6)
        }
        6 => {
            if !need(8) {
                return Ok(None);
            }
            // A negative length (the extended clipboard) is never
            // announced by this server, so it is just too long.
            let len = u32_at(buf, 4);
            if len > MAX_CUT_TEXT {
                return Err(ProtoError::CutTextTooLong(len));
            }
            let end = 8 + len as usize;
            if !need(end) {
                return Ok(None);
            }
            (ClientMessage::CutText(buf[8..end].to_vec()), end)
        }
        255 => {
            if !need(2) {
                return Ok(None);
            }
            if buf[1] != 0 {
                return Err(ProtoError::UnknownQemuSubtype(buf[1]));
            }
            // QEMU's extended key event: keysym and XT scancode.
            if !need(12) {
                return Ok(None);
            }
            let key = KeyEvent {
                keysym: u32_at(buf, 4),
                down: u16_at(buf, 2) != 0,
                keycode: Some(u32_at(buf, 8)),
            };
            (ClientMessage::Key(key), 12)
        }
        other => return Err(ProtoError::UnknownType(other)),
    };
    Ok(Some(msg))
}

/// Appends a FramebufferUpdate header for `rects` rectangles.
pub fn update_header(out: &mut Vec<u8>, rects: u16) {
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&rects.to_be_bytes());
}

/// Appends a rectangle header.
pub fn rect_header(out: &mut Vec<u8>, rect: Rect, encoding: i32) {
    for v in [rect.x, rect.y, rect.w, rect.h] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&encoding.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version(b"RFB 003.008\n"), Ok(Version::V3_8));
        assert_eq!(parse_version(b"RFB 003.007\n"), Ok(Version::V3_7));
        assert_eq!(parse_version(b"RFB 003.003\n"), Ok(Version::V3_3));
        assert_eq!(parse_version(b"RFB 003.889\n"), Ok(Version::V3_3));
        assert_eq!(
            parse_version(b"RFB 004.001\n"),
            Err(ProtoError::UnsupportedVersion(4, 1))
        );
        assert_eq!(
            parse_version(b"RFB 003.0x8\n"),
            Err(ProtoError::BadVersionLine)
        );
        assert_eq!(
            parse_version(b"GET / HTTP/1"),
            Err(ProtoError::BadVersionLine)
        );
    }

    #[test]
    fn messages_and_partial_input() {
        let req = [3, 1, 0, 1, 0, 2, 0, 3, 0, 4];
        for n in 0..req.len() {
            assert_eq!(parse(&req[..n]), Ok(None));
        }
        let expect = ClientMessage::UpdateRequest {
            incremental: true,
            rect: Rect::new(1, 2, 3, 4),
        };
        assert_eq!(parse(&req), Ok(Some((expect, 10))));
        let enc = [2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21];
        assert_eq!(
            parse(&enc),
            Ok(Some((ClientMessage::SetEncodings(vec![0, -223]), 12)))
        );
        let key = [4, 1, 0, 0, 0, 0, 0xff, 0x0d];
        let (msg, _) = parse(&key).unwrap().unwrap();
        assert_eq!(
            msg,
            ClientMessage::Key(KeyEvent {
                keysym: 0xff0d,
                down: true,
                keycode: None
            })
        );
    }

    #[test]
    fn refusals_allocate_nothing() {
        assert_eq!(
            parse(&[6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
            Err(ProtoError::CutTextTooLong(u32::MAX))
        );
        assert_eq!(
            parse(&[6, 0, 0, 0, 0, 0x10, 0, 1]),
            Err(ProtoError::CutTextTooLong(MAX_CUT_TEXT + 1))
        );
        assert_eq!(parse(&[6, 0, 0, 0, 0, 0x10, 0, 0]), Ok(None));
        assert_eq!(parse(&[7]), Err(ProtoError::UnknownType(7)));
        assert_eq!(parse(&[255, 1]), Err(ProtoError::UnknownQemuSubtype(1)));
        let mut pf = [0u8; 20];
        pf[4..20].copy_from_slice(&PixelFormat::XRGB8888.to_bytes());
        pf[4] = 24;
        assert!(matches!(parse(&pf), Err(ProtoError::PixelFormat(_))));
    }
}
