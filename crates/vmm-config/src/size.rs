//! Sizes as QEMU writes them: a number with an optional binary suffix.

/// Parses `512`, `512M`, `4G`, `5242880k`, `1T`, `4096B`. A plain number
/// is in `default_unit` bytes (MiB for `-m`).
pub fn parse_size(s: &str, default_unit: u64) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let unit: u64 = match suffix {
        "" => default_unit,
        "b" | "B" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    if let Some((whole, frac)) = num.split_once('.') {
        // QEMU accepts fractions ("1.5G"); keep it exact for the common
        // cases by working in the unit's integer arithmetic.
        let w: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let f: u64 = frac.parse().ok()?;
        let scale = 10u64.checked_pow(frac.len() as u32)?;
        return w
            .checked_mul(unit)?
            .checked_add(f.checked_mul(unit)? / scale);
    }
    num.parse::<u64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_sizes() {
        const M: u64 = 1 << 20;
        assert_eq!(parse_size("5000", M), Some(5000 * M));
        assert_eq!(parse_size("512M", M), Some(512 * M));
        assert_eq!(parse_size("4G", M), Some(4 << 30));
        assert_eq!(parse_size("5120000k", M), Some(5_120_000 << 10));
        assert_eq!(parse_size("1.5G", M), Some(3 << 29));
        assert_eq!(parse_size("lots", M), None);
        assert_eq!(parse_size("", M), None);
        assert_eq!(parse_size("12X", M), None);
        assert_eq!(parse_size("99999999999999999999", M), None);
        assert_eq!(parse_size("99999999999T", M), None);
    }
}
