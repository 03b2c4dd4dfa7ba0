//! Numbers read the way the C tools read them.

/// glibc's `atoi`: `(int) strtol(s, NULL, 10)`. Leading white space, an
/// optional sign, then decimal digits up to the first other character;
/// nothing numeric gives 0; past the range of `long` it sticks at
/// LONG_MIN/LONG_MAX, and the cast to int keeps the low 32 bits. repquota
/// takes its uids this way, so `repquota / abc` asks for uid 0 as the C
/// tool does.
pub fn atoi(text: impl AsRef<[u8]>) -> i32 {
    let bytes = text.as_ref();
    let mut i = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(bytes.len());
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    // Accumulate as a negative number, whose range includes LONG_MIN.
    let mut value: i64 = 0;
    for &b in bytes[i..].iter().take_while(|b| b.is_ascii_digit()) {
        let digit = i64::from(b - b'0');
        value = match value.checked_mul(10).and_then(|v| v.checked_sub(digit)) {
            Some(v) => v,
            None => {
                value = i64::MIN;
                break;
            }
        };
    }
    let long = if negative {
        value
    } else if value == i64::MIN {
        i64::MAX
    } else {
        -value
    };
    long as i32
}

#[cfg(test)]
mod tests {
    use super::atoi;

    #[test]
    fn reads_like_glibc() {
        assert_eq!(atoi("10001"), 10001);
        assert_eq!(atoi("  \t42abc"), 42);
        assert_eq!(atoi("+7"), 7);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("-"), 0);
        assert_eq!(atoi("2147483647"), i32::MAX);
        // (int) of a long: the low 32 bits.
        assert_eq!(atoi("4294967295"), -1);
        assert_eq!(atoi("2147483648"), i32::MIN);
        // strtol saturates at LONG_MAX (low 32 bits all ones) / LONG_MIN (zero).
        assert_eq!(atoi("99999999999999999999999"), -1);
        assert_eq!(atoi("-99999999999999999999999"), 0);
        assert_eq!(atoi("-9223372036854775808"), 0);
    }
}
