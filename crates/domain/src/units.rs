//! libvirt's memory size units (`unit='…'` on memory elements).

/// Bytes per unit, or `None` for a unit libvirt does not know. Follows
/// libvirt's rule: `b`/`byte`/`bytes`, or a power letter (k, m, g, t, p, e;
/// either case) alone or followed by `iB` (binary) or `B` (decimal).
pub fn unit_scale(unit: &str) -> Option<u64> {
    if ["b", "byte", "bytes"]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(unit))
    {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()?.to_ascii_lowercase() {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let rest = chars.as_str();
    let base: u64 = if rest.is_empty() || rest.eq_ignore_ascii_case("iB") {
        1024
    } else if rest.eq_ignore_ascii_case("B") {
        1000
    } else {
        return None;
    };
    base.checked_pow(power)
}

/// Why a memory size could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    UnknownUnit,
    NotANumber,
    TooLarge,
}

/// Converts `value` in `unit` (default KiB) to KiB, rounding up to a whole
/// KiB as libvirt does.
pub fn to_kib(value: &str, unit: Option<&str>) -> Result<u64, SizeError> {
    // An empty unit attribute means the default, as in libvirt.
    let unit = unit.filter(|u| !u.is_empty()).unwrap_or("KiB");
    let scale = unit_scale(unit).ok_or(SizeError::UnknownUnit)?;
    let n: u64 = value.trim().parse().map_err(|_| SizeError::NotANumber)?;
    let bytes = n.checked_mul(scale).ok_or(SizeError::TooLarge)?;
    let kib = bytes.div_ceil(1024);
    // libvirt caps sizes so that bytes still fit in a signed 64-bit value.
    if kib > (i64::MAX as u64) / 1024 {
        return Err(SizeError::TooLarge);
    }
    Ok(kib)
}

/// Converts `value` in `unit` (default bytes, as storage sizes have it)
/// to bytes.
pub fn to_bytes(value: &str, unit: Option<&str>) -> Result<u64, SizeError> {
    let unit = unit.filter(|u| !u.is_empty()).unwrap_or("bytes");
    let scale = unit_scale(unit).ok_or(SizeError::UnknownUnit)?;
    let n: u64 = value.trim().parse().map_err(|_| SizeError::NotANumber)?;
    n.checked_mul(scale).ok_or(SizeError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_each_unit_family() {
        assert_eq!(to_kib("1048576", None), Ok(1048576));
        assert_eq!(to_kib("512", Some("MiB")), Ok(524288));
        assert_eq!(to_kib("1", Some("G")), Ok(1048576));
        assert_eq!(to_kib("1", Some("GB")), Ok(976563));
        assert_eq!(to_kib("1000", Some("KB")), Ok(977));
        assert_eq!(to_kib("1", Some("b")), Ok(1));
        assert_eq!(to_kib("2048", Some("bytes")), Ok(2));
        assert_eq!(to_kib("1", Some("TiB")), Ok(1 << 30));
        assert_eq!(to_bytes("10", None), Ok(10));
        assert_eq!(to_bytes("2", Some("M")), Ok(2 << 20));
        assert_eq!(to_bytes("1", Some("GB")), Ok(1_000_000_000));
        assert_eq!(to_bytes("17", Some("EiB")), Err(SizeError::TooLarge));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(to_kib("1", Some("kb2")), Err(SizeError::UnknownUnit));
        assert_eq!(to_kib("1", Some("MiBs")), Err(SizeError::UnknownUnit));
        assert_eq!(to_kib("1", Some("")), Ok(1));
        assert_eq!(to_kib("x", None), Err(SizeError::NotANumber));
        assert_eq!(to_kib("-1", None), Err(SizeError::NotANumber));
        assert_eq!(to_kib("99999999999", Some("EiB")), Err(SizeError::TooLarge));
    }
}
