//! XDR (RFC 4506) as libvirt's remote protocol uses it.
//!
//! Written by hand instead of with a serde-based XDR crate: libvirt needs a
//! maximum per field (`remote_nonnull_domain domains<16384>`), sends `char`
//! and `unsigned char`/`unsigned short` as 4-byte integers, fixed opaque
//! UUIDs, and nullable pointers as `u32 0|1` followed by the value. Serde's
//! data model has no place for per-field maxima, and hostile input must be
//! checked against the bytes actually left before anything is allocated,
//! which is easiest to guarantee in one small reader we own.

use thiserror::Error;

use crate::consts::REMOTE_STRING_MAX;

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XdrError {
    /// The data ended before the value did.
    #[error("message truncated: {needed} bytes needed, {left} left")]
    Truncated { needed: usize, left: usize },
    /// A length prefix is larger than the field's maximum.
    #[error("length {len} exceeds the limit of {max}")]
    TooLong { len: u32, max: u32 },
    /// A string is not UTF-8.
    #[error("string is not valid UTF-8")]
    BadUtf8,
    /// A discriminant or a narrow integer is out of range.
    #[error("invalid value {value} for {what}")]
    BadValue { what: &'static str, value: i64 },
    /// Bytes are left after the value was decoded.
    #[error("{0} unexpected bytes after the payload")]
    TrailingBytes(usize),
}

/// A value with an XDR encoding.
pub trait Xdr: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one value from `r`.
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError>;
}

/// A variable-length value whose maximum length depends on the field
/// (`string x<N>`, `opaque x<N>`, `T x<N>`, `char x<N>`).
pub trait XdrBounded: Xdr {
    /// Decodes one value, refusing lengths above `max` elements.
    fn decode_max(r: &mut Reader<'_>, max: u32) -> Result<Self, XdrError>;
}

/// A cursor over a received payload. Every length is checked against the
/// bytes left before anything is allocated.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), XdrError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(XdrError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let left = self.remaining();
        if n > left {
            return Err(XdrError::Truncated { needed: n, left });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a big-endian `unsigned int`.
    pub fn read_u32(&mut self) -> Result<u32, XdrError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian `unsigned hyper`.
    pub fn read_u64(&mut self) -> Result<u64, XdrError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a length prefix for `elem_min`-byte elements: at most `max`, and
    /// never more elements than the bytes left could hold, so a hostile
    /// 0xffffffff is an error rather than an allocation.
    pub fn read_len(&mut self, max: u32, elem_min: usize) -> Result<usize, XdrError> {
        let len = self.read_u32()?;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        let len = len as usize;
        let left = self.remaining();
        if len.saturating_mul(elem_min.max(1)) > left {
            return Err(XdrError::Truncated {
                needed: len.saturating_mul(elem_min.max(1)),
                left,
            });
        }
        Ok(len)
    }

    /// Reads `n` bytes of opaque data and its padding to a multiple of 4.
    /// The padding's content is ignored, as libvirt's decoder ignores it.
    pub fn read_padded(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let data = self.take(n)?;
        self.take(pad_len(n))?;
        Ok(data)
    }
}

/// Elements reserved up front for a counted array.
const PREALLOC_MAX: usize = 1024;

/// Padding after `n` bytes of opaque data.
pub fn pad_len(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Appends `data` and its zero padding.
pub fn put_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len() + pad_len(data.len()), 0);
}

/// Encodes `v` into a new buffer.
pub fn to_bytes<T: Xdr>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Decodes a whole payload as one `T`; trailing bytes are an error.
pub fn from_bytes<T: Xdr>(buf: &[u8]) -> Result<T, XdrError> {
    let mut r = Reader::new(buf);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

impl Xdr for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(())
    }
}

impl Xdr for u32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        r.read_u32()
    }
}

impl Xdr for i32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(r.read_u32()? as i32)
    }
}

impl Xdr for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        r.read_u64()
    }
}

impl Xdr for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(r.read_u64()? as i64)
    }
}

impl Xdr for f64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Ok(f64::from_bits(r.read_u64()?))
    }
}

/// `unsigned char`: one byte carried in 4 (libvirt's `domain_get_info_ret.state`).
impl Xdr for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let v = r.read_u32()?;
        u8::try_from(v).map_err(|_| XdrError::BadValue {
            what: "unsigned char",
            value: i64::from(v),
        })
    }
}

/// `unsigned short`: carried in 4 bytes (`domain_get_info_ret.nrVirtCpu`).
impl Xdr for u16 {
    fn encode(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let v = r.read_u32()?;
        u16::try_from(v).map_err(|_| XdrError::BadValue {
            what: "unsigned short",
            value: i64::from(v),
        })
    }
}

/// `string x<N>` (`remote_nonnull_string`): length, bytes, padding; no NUL.
impl Xdr for String {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        put_padded(out, self.as_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Self::decode_max(r, REMOTE_STRING_MAX)
    }
}

impl XdrBounded for String {
    fn decode_max(r: &mut Reader<'_>, max: u32) -> Result<Self, XdrError> {
        let n = r.read_len(max, 1)?;
        let bytes = r.read_padded(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| XdrError::BadUtf8)
    }
}

/// `T *`: libvirt's nullable pointers (`remote_string`, `remote_domain`).
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => 0u32.encode(out),
            Some(v) => {
                1u32.encode(out);
                v.encode(out);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        match r.read_u32()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            v => Err(XdrError::BadValue {
                what: "pointer flag",
                value: i64::from(v),
            }),
        }
    }
}

/// A boxed value encodes as the value.
impl<T: Xdr> Xdr for Box<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        T::decode(r).map(Box::new)
    }
}

/// `T x<N>`: count, then the elements. Without a field maximum, the count
/// is bounded only by the bytes left (every XDR item is at least 4 bytes).
impl<T: Xdr> Xdr for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        for v in self {
            v.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Self::decode_max(r, u32::MAX)
    }
}

impl<T: Xdr> XdrBounded for Vec<T> {
    fn decode_max(r: &mut Reader<'_>, max: u32) -> Result<Self, XdrError> {
        let n = r.read_len(max, 4)?;
        // Grow past the first elements only as they actually decode, so a
        // message that lies about its count costs little before failing.
        let mut v = Vec::with_capacity(n.min(PREALLOC_MAX));
        for _ in 0..n {
            v.push(T::decode(r)?);
        }
        Ok(v)
    }
}

/// `opaque x<N>`: length, raw bytes, padding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opaque(pub Vec<u8>);

impl Xdr for Opaque {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.0.len() as u32).encode(out);
        put_padded(out, &self.0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Self::decode_max(r, u32::MAX)
    }
}

impl XdrBounded for Opaque {
    fn decode_max(r: &mut Reader<'_>, max: u32) -> Result<Self, XdrError> {
        let n = r.read_len(max, 1)?;
        Ok(Opaque(r.read_padded(n)?.to_vec()))
    }
}

/// Encodes one C `char` the way `xdr_char` does: as a sign-extended int.
fn put_char(out: &mut Vec<u8>, c: u8) {
    i32::from(c as i8).encode(out);
}

/// Decodes one `xdr_char`: accepts the signed and the unsigned spelling.
fn get_char(r: &mut Reader<'_>) -> Result<u8, XdrError> {
    let v = r.read_u32()? as i32;
    if (-128..=255).contains(&v) {
        Ok(v as u8)
    } else {
        Err(XdrError::BadValue {
            what: "char",
            value: i64::from(v),
        })
    }
}

/// `char x<N>`: a count, then **one 4-byte int per character** (libvirt's
/// security model and label fields, which include the C string's NUL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CharList(pub Vec<u8>);

impl CharList {
    /// The bytes of `s` followed by a NUL, as libvirt sends C strings here.
    pub fn from_c_str(s: &str) -> Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        CharList(v)
    }

    /// The text up to the first NUL.
    pub fn to_string_lossy(&self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        String::from_utf8_lossy(&self.0[..end]).into_owned()
    }
}

impl Xdr for CharList {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.0.len() as u32).encode(out);
        for &c in &self.0 {
            put_char(out, c);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        Self::decode_max(r, u32::MAX)
    }
}

impl XdrBounded for CharList {
    fn decode_max(r: &mut Reader<'_>, max: u32) -> Result<Self, XdrError> {
        let n = r.read_len(max, 4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(get_char(r)?);
        }
        Ok(CharList(v))
    }
}

/// `char x[N]`: exactly N characters, one 4-byte int each, no count
/// (`node_get_info_ret.model`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharArray<const N: usize>(pub [u8; N]);

impl<const N: usize> CharArray<N> {
    /// `s` truncated to N-1 bytes and NUL-padded, as `virStrcpy` would fill it.
    pub fn from_str_truncated(s: &str) -> Self {
        let mut a = [0u8; N];
        let n = s.len().min(N.saturating_sub(1));
        a[..n].copy_from_slice(&s.as_bytes()[..n]);
        CharArray(a)
    }

    /// The text up to the first NUL.
    pub fn to_string_lossy(&self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(N);
        String::from_utf8_lossy(&self.0[..end]).into_owned()
    }
}

impl<const N: usize> Default for CharArray<N> {
    fn default() -> Self {
        CharArray([0u8; N])
    }
}

impl<const N: usize> Xdr for CharArray<N> {
    fn encode(&self, out: &mut Vec<u8>) {
        for &c in &self.0 {
            put_char(out, c);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, XdrError> {
        let mut a = [0u8; N];
        for c in a.iter_mut() {
            *c = get_char(r)?;
        }
        Ok(CharArray(a))
    }
}

/// Declares a struct and its XDR encoding in field order. A field may carry
/// its XDR maximum in brackets: `pub names: Vec<String> [16384]`.
macro_rules! xdr_struct {
    ($(
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $f:ident : $t:ty $([$max:expr])? ),* $(,)?
        }
    )*) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )*
        }

        impl $crate::xdr::Xdr for $name {
            #[allow(unused_variables)]
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::xdr::Xdr::encode(&self.$f, out); )*
            }
            #[allow(unused_variables)]
            fn decode(r: &mut $crate::xdr::Reader<'_>) -> Result<Self, $crate::xdr::XdrError> {
                // Struct expression fields are evaluated in source order,
                // which is the wire order.
                Ok(Self { $( $f: xdr_struct!(@field r, $t $(, $max)?), )* })
            }
        }
    )*};
    (@field $r:ident, $t:ty) => { <$t as $crate::xdr::Xdr>::decode($r)? };
    (@field $r:ident, $t:ty, $max:expr) => {
        <$t as $crate::xdr::XdrBounded>::decode_max($r, $max)?
    };
}
pub(crate) use xdr_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_is_padded_without_nul() {
        let b = to_bytes(&"rpcdemo".to_string());
        assert_eq!(b, b"\0\0\0\x07rpcdemo\0");
        assert_eq!(from_bytes::<String>(&b).unwrap(), "rpcdemo");
    }

    #[test]
    fn huge_length_is_an_error_not_an_allocation() {
        let b = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(matches!(
            from_bytes::<String>(&b),
            Err(XdrError::TooLong { .. })
        ));
        assert!(matches!(
            from_bytes::<Vec<u32>>(&b),
            Err(XdrError::Truncated { .. })
        ));
        assert!(from_bytes::<Opaque>(&b).is_err());
        assert!(from_bytes::<CharList>(&b).is_err());
    }

    #[test]
    fn bounded_vec_refuses_more_than_max() {
        let mut r = Reader::new(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(
            Vec::<u32>::decode_max(&mut r, 2),
            Err(XdrError::TooLong { len: 3, max: 2 })
        );
    }

    #[test]
    fn chars_are_four_bytes_each() {
        let b = to_bytes(&CharList::from_c_str("0"));
        assert_eq!(b, [0, 0, 0, 2, 0, 0, 0, 0x30, 0, 0, 0, 0]);
        let c: CharList = from_bytes(&b).unwrap();
        assert_eq!(c.to_string_lossy(), "0");
        // A high byte is sign-extended like glibc's xdr_char.
        assert_eq!(
            to_bytes(&CharList(vec![0xe9])),
            [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xe9]
        );
    }

    #[test]
    fn nullable_pointer_flags() {
        assert_eq!(to_bytes(&None::<String>), [0, 0, 0, 0]);
        assert!(from_bytes::<Option<u32>>(&[0, 0, 0, 2, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn narrow_ints_take_four_bytes_and_are_range_checked() {
        assert_eq!(to_bytes(&5u8), [0, 0, 0, 5]);
        assert!(from_bytes::<u8>(&[0, 0, 1, 0]).is_err());
        assert!(from_bytes::<u16>(&[0, 1, 0, 0]).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            from_bytes::<u32>(&[0, 0, 0, 1, 0]),
            Err(XdrError::TrailingBytes(1))
        );
    }
}
