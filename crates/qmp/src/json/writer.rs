//! Output in QEMU's exact layout: `": "` and `", "` separators, one message
//! per line ending in CRLF. Clients do not depend on it, but byte-for-byte
//! sameness makes captured traces from QEMU and rvirt diff cleanly.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

struct QmpFormatter;

impl Formatter for QmpFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// Serialises one QMP message as a CRLF-terminated line.
pub fn to_qmp_line<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, QmpFormatter);
    // Our message types only hold strings, numbers, maps with string keys
    // and JSON values, none of which can fail to serialise.
    if let Err(e) = value.serialize(&mut ser) {
        tracing::error!("cannot serialise a QMP message: {e}");
        out.clear();
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_qemu_layout() {
        let v = json!({"return": [{"a": 1}, {"b": [true, null]}], "id": "x"});
        assert_eq!(
            String::from_utf8(to_qmp_line(&v)).unwrap(),
            "{\"id\": \"x\", \"return\": [{\"a\": 1}, {\"b\": [true, null]}]}\r\n"
        );
    }
}
