//! Splitting a command line into words, as Ruby's `Shellwords.shellsplit`
//! (which the upstream REPL uses) does:
//!
//! - words are separated by whitespace;
//! - `'...'` is taken literally;
//! - inside `"..."` a backslash escapes only `$`, `` ` ``, `"`, `\` and a
//!   newline, and is kept before anything else;
//! - outside quotes a backslash escapes any character (backslash-newline
//!   disappears);
//! - quoted and unquoted pieces next to each other make one word
//!   (`a"b c"d` is `ab cd`);
//! - an unmatched quote is an error.

use std::fmt;

/// Why a line could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A `'` without its closing `'`.
    UnmatchedSingleQuote,
    /// A `"` without its closing `"`.
    UnmatchedDoubleQuote,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::UnmatchedSingleQuote => write!(f, "Unmatched single quote"),
            SplitError::UnmatchedDoubleQuote => write!(f, "Unmatched double quote"),
        }
    }
}

impl std::error::Error for SplitError {}

/// Whitespace as Ruby's `\s`: space, tab, newline, vertical tab, form
/// feed, carriage return.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The words of `line`. Works on bytes: a word may hold any bytes (a
/// script given as bytes), only the quoting characters are ASCII.
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    // Whether a word has begun (so `""` gives an empty word).
    let mut in_word = false;
    let mut chars = line.iter().copied();
    while let Some(c) = chars.next() {
        match c {
            c if is_space(c) => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            b'\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(b'\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnmatchedSingleQuote),
                    }
                }
            }
            b'"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(b'"') => break,
                        Some(b'\\') => match chars.next() {
                            Some(b'\n') => {}
                            Some(c @ (b'$' | b'`' | b'"' | b'\\')) => word.push(c),
                            Some(c) => {
                                word.push(b'\\');
                                word.push(c);
                            }
                            None => return Err(SplitError::UnmatchedDoubleQuote),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnmatchedDoubleQuote),
                    }
                }
            }
            b'\\' => {
                in_word = true;
                match chars.next() {
                    Some(b'\n') => {}
                    Some(c) => word.push(c),
                    // A trailing backslash stands for itself.
                    None => word.push(b'\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Vec<String> {
        split(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn any_bytes_pass_through() {
        assert_eq!(
            split(b"echo --message \"\xff\xfe x\"").unwrap(),
            [&b"echo"[..], b"--message", b"\xff\xfe x"]
        );
    }

    #[test]
    fn whitespace_separates_words() {
        assert_eq!(s("  run  --handle\th \n"), ["run", "--handle", "h"]);
        assert!(s("").is_empty());
        assert!(s("   ").is_empty());
    }

    #[test]
    fn double_quotes_keep_spaces() {
        assert_eq!(
            s(r#"run --script "echo hi; exit 3""#),
            ["run", "--script", "echo hi; exit 3"]
        );
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(s(r#"'a \" b' 'x\y'"#), [r#"a \" b"#, r"x\y"]);
    }

    #[test]
    fn backslash_inside_double_quotes() {
        assert_eq!(
            s(r#""a\"b" "c\\d" "e\$f" "g\nh""#),
            [r#"a"b"#, r"c\d", "e$f", r"g\nh"]
        );
    }

    #[test]
    fn backslash_outside_quotes() {
        assert_eq!(s(r"a\ b c\\d \'x"), ["a b", r"c\d", "'x"]);
        assert_eq!(s("a\\\nb"), ["ab"]);
        assert_eq!(s(r"end\"), [r"end\"]);
    }

    #[test]
    fn adjacent_pieces_join() {
        assert_eq!(s(r#"a"b c"'d e'f"#), ["ab cd ef"]);
        assert_eq!(s(r#"x "" ''"#), ["x", "", ""]);
    }

    #[test]
    fn unmatched_quotes() {
        assert_eq!(split(br#"echo "hi"#), Err(SplitError::UnmatchedDoubleQuote));
        assert_eq!(split(b"echo 'hi"), Err(SplitError::UnmatchedSingleQuote));
        assert_eq!(
            split(br#"echo "hi\"#),
            Err(SplitError::UnmatchedDoubleQuote)
        );
    }
}
