//! Length-prefixed framing over a byte stream: a push-style decoder for
//! servers that read whatever the socket has, and blocking helpers for the
//! client.

use std::io::{self, Read, Write};

use thiserror::Error;

use crate::consts::{VIR_NET_MESSAGE_MAX, VIR_NET_MESSAGE_MIN};
use crate::message::Message;
use crate::xdr::XdrError;

/// Why a byte stream could not be cut into messages. Every variant except
/// `Io` means the peer broke the protocol: drop the connection.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The length word is below 28 or above `VIR_NET_MESSAGE_MAX`.
    #[error("message length {0} is outside 28..=16777216")]
    BadLength(u32),
    /// The message to send would exceed `VIR_NET_MESSAGE_MAX`.
    #[error("message of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
    /// The header words are invalid.
    #[error("invalid message header")]
    Header(#[source] XdrError),
    /// The stream ended inside a message.
    #[error("connection closed in the middle of a message")]
    Truncated,
    /// Reading or writing the socket failed.
    #[error("socket I/O failed")]
    Io(#[from] io::Error),
}

/// Checks a length word against libvirt's limits before anything is
/// allocated for the message.
pub fn check_length(len: u32) -> Result<(), FrameError> {
    if (VIR_NET_MESSAGE_MIN..=VIR_NET_MESSAGE_MAX).contains(&len) {
        Ok(())
    } else {
        Err(FrameError::BadLength(len))
    }
}

/// Cuts a byte stream into frames. Feed it whatever each read returned;
/// it only ever holds bytes that arrived, so a peer that announces 16 MiB
/// and stalls costs nothing but what it actually sent.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes still to drop from what arrives (see [`FrameDecoder::skip`]).
    skip: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        let drop = self.skip.min(data.len());
        self.skip -= drop;
        self.buf.extend_from_slice(&data[drop..]);
    }

    /// Drops the next `n` bytes, buffered or yet to come: the one byte
    /// each descriptor of a `*_WITH_FDS` message arrives with after it.
    pub fn skip(&mut self, n: usize) {
        let now = n.min(self.buf.len());
        self.buf.drain(..now);
        self.skip += n - now;
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame (length word included), `None` while one
    /// is still incomplete, an error as soon as a length word is invalid.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        check_length(len)?;
        let len = len as usize;
        if self.buf.len() < len {
            return Ok(None);
        }
        let rest = self.buf.split_off(len);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// The next complete message with its header decoded.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        match self.next_frame()? {
            Some(f) => Message::from_frame(&f).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads one message from a blocking stream; `Ok(None)` at a clean end of
/// stream between messages.
pub fn read_message<R: Read>(r: &mut R) -> Result<Option<Message>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = u32::from_be_bytes(len);
    check_length(n)?;
    let mut frame = len.to_vec();
    // `take` + `read_to_end` grows the buffer with the data actually read.
    r.take(u64::from(n) - 4).read_to_end(&mut frame)?;
    if frame.len() != n as usize {
        return Err(FrameError::Truncated);
    }
    Message::from_frame(&frame).map(Some)
}

/// Writes one message to a blocking stream.
pub fn write_message<W: Write>(w: &mut W, m: &Message) -> Result<(), FrameError> {
    w.write_all(&m.to_bytes()?)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Header, MessageStatus, MessageType};

    fn msg(serial: u32, payload: Vec<u8>) -> Message {
        Message {
            header: Header::remote(60, MessageType::Call, serial, MessageStatus::Ok),
            payload,
        }
    }

    #[test]
    fn partial_reads_byte_by_byte() {
        let a = msg(1, vec![0, 0, 0, 10]);
        let b = msg(2, vec![]);
        let mut bytes = a.to_bytes().unwrap();
        bytes.extend(b.to_bytes().unwrap());
        let mut d = FrameDecoder::new();
        let mut out = vec![];
        for byte in bytes {
            d.push(&[byte]);
            while let Some(m) = d.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out, vec![a, b]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn skips_the_descriptor_bytes_buffered_or_still_to_come() {
        let a = msg(1, vec![0, 0, 0, 2]);
        let b = msg(2, vec![]);
        // Two descriptor bytes after `a`, one already here, one later.
        for split in 0..3 {
            let mut d = FrameDecoder::new();
            let mut first = a.to_bytes().unwrap();
            first.extend(vec![0u8; split]);
            d.push(&first);
            assert_eq!(d.next_message().unwrap(), Some(a.clone()));
            d.skip(2);
            let mut rest = vec![0u8; 2 - split];
            rest.extend(b.to_bytes().unwrap());
            d.push(&rest);
            assert_eq!(d.next_message().unwrap(), Some(b.clone()));
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn refuses_short_and_oversized_lengths() {
        for len in [0u32, 4, 27, VIR_NET_MESSAGE_MAX + 1, u32::MAX] {
            let mut d = FrameDecoder::new();
            d.push(&len.to_be_bytes());
            assert!(matches!(d.next_frame(), Err(FrameError::BadLength(l)) if l == len));
            assert!(read_message(&mut &len.to_be_bytes()[..]).is_err());
        }
    }

    #[test]
    fn blocking_reader_handles_eof() {
        let bytes = msg(3, vec![1, 2, 3, 4]).to_bytes().unwrap();
        let mut r = &bytes[..];
        assert!(read_message(&mut r).unwrap().is_some());
        assert!(read_message(&mut r).unwrap().is_none());
        let mut cut = &bytes[..bytes.len() - 1];
        assert!(matches!(read_message(&mut cut), Err(FrameError::Truncated)));
    }
}
