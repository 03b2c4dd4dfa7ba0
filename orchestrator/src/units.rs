//! Sizes and rates as people write them on a command line.
//!
//! A size in bytes (`create --disk-limit`, `--job-output-limit`,
//! `--shm-size`, `limit-memory`, `limit-disk --byte-*`, `limit-bandwidth
//! --burst`) is a number with an optional unit, case-insensitive: none or
//! `B` (bytes), `K`, `M`, `G`, `T`, each also spelt `KiB`/`KB` etc., all
//! powers of 1024 (`10M` is 10485760; `KB` means 1024 as in Docker, not
//! 1000). A fraction is taken when it comes to a whole number of bytes
//! (`1.5G` is 1610612736; `1.1K` and `0.5` are refused). No sign, no space
//! between number and unit, nothing past the range of u64.
//!
//! A rate in bit/s (`limit-bandwidth --rate`) is a number with an optional
//! `K`, `M`, `G` or `T`, powers of 1000 as rates conventionally are (and as
//! tc prints them: `8M` and `8Mbit` are 8000000 bit/s); a trailing `bit` is
//! allowed. A byte unit (`B`, `KiB`) is refused there, being bytes.

use crate::errors::{Error, Result};

/// Bytes in `arg`, with 1024-based units.
pub fn parse_size(arg: &str) -> Result<u64> {
    let bad = |why: &str| Error::BadArgument(format!("invalid size {arg:?}: {why}"));
    let (number, unit) = split_number(arg).ok_or_else(|| {
        bad("want a number of bytes, optionally followed by K, M, G or T (powers of 1024)")
    })?;
    let unit = unit.to_ascii_lowercase();
    let prefix = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match prefix {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(bad(
                "unknown unit (B, K, M, G or T; KiB etc. mean the same)",
            ))
        }
    };
    if unit == "ib" {
        return Err(bad("\"iB\" needs K, M, G or T before it"));
    }
    scale(number, 1u64 << shift, "bytes").map_err(|why| bad(&why))
}

/// Bits per second in `arg`, with 1000-based units.
pub fn parse_rate(arg: &str) -> Result<u64> {
    let bad = |why: &str| Error::BadArgument(format!("invalid rate {arg:?}: {why}"));
    let (number, unit) = split_number(arg).ok_or_else(|| {
        bad("want a number of bit/s, optionally followed by K, M, G or T (powers of 1000)")
    })?;
    let unit = unit.to_ascii_lowercase();
    let prefix = unit.strip_suffix("bit").unwrap_or(&unit);
    let multiplier: u64 = match prefix {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        _ => {
            return Err(bad(
                "unknown unit (K, M, G or T: powers of 1000 bit/s; bytes are not a rate)",
            ))
        }
    };
    scale(number, multiplier, "bit/s").map_err(|why| bad(&why))
}

/// The number at the start (digits, at most one '.') and the rest.
fn split_number(arg: &str) -> Option<(&str, &str)> {
    let end = arg
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(arg.len());
    let (number, unit) = arg.split_at(end);
    let digits = number.bytes().filter(u8::is_ascii_digit).count();
    let dots = number.len() - digits;
    (digits > 0 && dots <= 1 && !number.starts_with('.')).then_some((number, unit))
}

/// `number` (digits with an optional fraction) times `multiplier`, exactly.
fn scale(number: &str, multiplier: u64, unit: &str) -> std::result::Result<u64, String> {
    let too_large = || "too large".to_string();
    let fractional = || format!("not a whole number of {unit}");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let mut total = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    let fraction = fraction.trim_end_matches('0');
    if !fraction.is_empty() {
        // fraction / 10^len of the multiplier must be whole; u128 holds
        // 19 digits times any u64 multiplier.
        if fraction.len() > 19 {
            return Err(fractional());
        }
        let digits: u128 = fraction.parse().map_err(|_| too_large())?;
        let scaled = digits * u128::from(multiplier);
        let denominator = 10u128.pow(fraction.len() as u32);
        if !scaled.is_multiple_of(denominator) {
            return Err(fractional());
        }
        let part = u64::try_from(scaled / denominator).map_err(|_| too_large())?;
        total = total.checked_add(part).ok_or_else(too_large)?;
    }
    Ok(total)
}

/// [`parse_size`] as a clap value parser (a bad size is a usage error).
pub fn size_arg(arg: &str) -> std::result::Result<u64, String> {
    parse_size(arg).map_err(|e| e.to_string())
}

/// [`parse_rate`] as a clap value parser.
pub fn rate_arg(arg: &str) -> std::result::Result<u64, String> {
    parse_rate(arg).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_in_any_case() {
        for (arg, want) in [
            ("0", 0),
            ("4096", 4096),
            ("10B", 10),
            ("10M", 10 << 20),
            ("10m", 10 << 20),
            ("10MiB", 10 << 20),
            ("10mib", 10 << 20),
            ("10MB", 10 << 20),
            ("1K", 1024),
            ("1KiB", 1024),
            ("2G", 2 << 30),
            ("2gib", 2 << 30),
            ("1T", 1 << 40),
            ("1.5G", 3 << 29),
            ("0.5K", 512),
            ("1.0", 1),
            ("1.50M", 3 << 19),
            ("16777216", 16 << 20),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(arg).unwrap(), want, "{arg}");
        }
    }

    #[test]
    fn sizes_refuse_garbage_fractions_and_overflow() {
        for bad in [
            "",
            "M",
            "-5",
            "+5",
            " 5",
            "5 M",
            "5M ",
            "1.1K",
            "0.5",
            "1..5M",
            ".5M",
            "1.5.1M",
            "10X",
            "10iB",
            "10MM",
            "10Mbit",
            "18446744073709551616",
            "16777216T",
            "99999999999999999999",
            "0x10",
            "1e6",
            // More fraction digits than the arithmetic holds: refused, not
            // misread.
            "1.00000000000000000001K",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert_eq!(e.exit_code(), 5, "{bad}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn rates_take_decimal_units() {
        for (arg, want) in [
            ("8", 8),
            ("8000000", 8_000_000),
            ("8M", 8_000_000),
            ("8m", 8_000_000),
            ("8Mbit", 8_000_000),
            ("1.5K", 1500),
            ("100kbit", 100_000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
        ] {
            assert_eq!(parse_rate(arg).unwrap(), want, "{arg}");
        }
        for bad in [
            "",
            "8MB",
            "8MiB",
            "8B",
            "1.0001K",
            "-8",
            "8 M",
            "x",
            "99999999T",
        ] {
            assert_eq!(parse_rate(bad).unwrap_err().exit_code(), 5, "{bad}");
        }
    }

    #[test]
    fn clap_parsers_give_the_message() {
        assert_eq!(size_arg("10M"), Ok(10 << 20));
        assert!(size_arg("ten")
            .unwrap_err()
            .contains("invalid size \"ten\""));
        assert!(rate_arg("8MB").unwrap_err().contains("invalid rate"));
    }
}
