//! An instance's `etc/config`: the `key=value` lines setup.sh writes and every
//! script sources. Values are single-quoted by our setup.sh (`'it'\''s'`);
//! bare values, as the reference setup.sh writes them, are read too.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::errors::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let values = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.starts_with('#') {
                    return None;
                }
                let (key, value) = line.split_once('=')?;
                Some((key.trim().to_string(), unquote(value.trim())))
            })
            .collect();
        Config { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn id(&self) -> Option<&str> {
        self.get("id")
    }

    pub fn host_ip(&self) -> Option<Ipv4Addr> {
        self.get("network_host_ip")?.parse().ok()
    }

    pub fn container_ip(&self) -> Option<Ipv4Addr> {
        self.get("network_container_ip")?.parse().ok()
    }

    pub fn user_uid(&self) -> Option<u32> {
        self.get("user_uid")?.parse().ok()
    }
}

/// Shell single-quote removal, `'a'\''b'` -> `a'b`; unquoted text is kept.
fn unquote(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '\\' if !quoted => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '"' if !quoted => {}
            c => out.push(c),
        }
    }
    out
}

/// Shell single-quoting, the inverse of `unquote`.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_bare_values() {
        let c = Config::parse(
            "id='abc'\nnetwork_host_ip=10.254.0.1\nrootfs_path='/r/it'\\''s'\n# x=y\nuser_uid='10001'\n",
        );
        assert_eq!(c.id(), Some("abc"));
        assert_eq!(c.host_ip(), Some(Ipv4Addr::new(10, 254, 0, 1)));
        assert_eq!(c.get("rootfs_path"), Some("/r/it's"));
        assert_eq!(c.user_uid(), Some(10001));
        assert_eq!(c.get("x"), None);
    }

    #[test]
    fn quote_round_trips() {
        for s in ["plain", "/a/b", "with space", "it's", "", "$(x)", "a\\b"] {
            let line = format!("k={}", shell_quote(s));
            assert_eq!(Config::parse(&line).get("k"), Some(s), "{line}");
        }
    }
}
