//! Parsing what the guests print: lines of `KEY value...`.

/// The rest of every line that starts with `key` followed by a space (or
/// that is exactly `key`), in order. Carriage returns are dropped.
pub fn values<'a>(output: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    output.lines().filter_map(move |line| {
        let line = line.trim_end_matches('\r');
        match line.strip_prefix(key)? {
            "" => Some(""),
            rest => rest.strip_prefix(' '),
        }
    })
}

/// The value of the first line starting with `key`.
pub fn value<'a>(output: &'a str, key: &'a str) -> Option<&'a str> {
    values(output, key).next()
}

/// A number as the guests print it: `0x` hex or decimal.
pub fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The numeric value of the first `key` line.
pub fn number_of(output: &str, key: &str) -> Option<u64> {
    value(output, key).and_then(number)
}

/// Every `key` line parsed as whitespace-separated numbers (for `MEMMAP` and
/// `E820` lines: address, size, type). Lines that do not parse are skipped.
pub fn rows(output: &str, key: &str) -> Vec<Vec<u64>> {
    values(output, key)
        .filter_map(|rest| rest.split_whitespace().map(number).collect())
        .collect()
}

/// Whether the guest finished its checks (printed `DONE`).
pub fn done(output: &str) -> bool {
    values(output, "DONE").next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MEMMAP_ENTRIES 2\r\nMEMMAP 0x0 0x9fc00 1\nMEMMAP 0x100000 0x7f00000 1\n\
        MEMMAP_X 5\nRAM_BYTES 133823488\nCMDLINE \nDONE\n";

    #[test]
    fn values_match_whole_keys_only() {
        assert_eq!(values(SAMPLE, "MEMMAP").count(), 2);
        assert_eq!(value(SAMPLE, "MEMMAP_ENTRIES"), Some("2"));
        assert_eq!(value(SAMPLE, "CMDLINE"), Some(""));
        assert_eq!(value(SAMPLE, "RAM"), None);
    }

    #[test]
    fn numbers_parse_hex_and_decimal() {
        assert_eq!(number("0x9fc00"), Some(0x9fc00));
        assert_eq!(number("133823488"), Some(133_823_488));
        assert_eq!(number("0xzz"), None);
        assert_eq!(number_of(SAMPLE, "RAM_BYTES"), Some(133_823_488));
    }

    #[test]
    fn rows_parse_memmap_lines() {
        assert_eq!(
            rows(SAMPLE, "MEMMAP"),
            vec![vec![0, 0x9fc00, 1], vec![0x10_0000, 0x7f0_0000, 1]]
        );
        assert!(done(SAMPLE));
        assert!(!done("DONEX\n"));
    }
}
