//! Device rules in the syntax of cgroup v1's `devices.allow`, so one
//! whitelist serves both hierarchies: `TYPE MAJOR:MINOR ACCESS`, where TYPE
//! is `a` (any), `b` or `c`, MAJOR and MINOR are numbers or `*`, and ACCESS
//! is a non-empty subset of `rwm`. A bare `a` means every device.

use std::fmt;

/// Which kind of device node a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Any,
    Block,
    Char,
}

/// What a rule permits, as the kernel's BPF_DEVCG_ACC_* bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u32);

impl Access {
    pub const MKNOD: u32 = 1;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
    pub const ALL: Access = Access(Self::MKNOD | Self::READ | Self::WRITE);

    pub fn bits(self) -> u32 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub device: DeviceType,
    /// `None` is `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("device rule {0:?}: want TYPE MAJOR:MINOR ACCESS, e.g. \"c 1:3 rwm\"")]
    Shape(String),
    #[error("device rule {0:?}: type must be a, b or c")]
    Type(String),
    #[error("device rule {0:?}: {1} must be a number or *")]
    Number(String, &'static str),
    #[error("device rule {0:?}: access must be a non-empty subset of rwm")]
    Access(String),
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Rule, RuleError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields == ["a"] {
            return Ok(Rule {
                device: DeviceType::Any,
                major: None,
                minor: None,
                access: Access::ALL,
            });
        }
        let [kind, numbers, access] = fields[..] else {
            return Err(RuleError::Shape(text.to_string()));
        };
        let device = match kind {
            "a" => DeviceType::Any,
            "b" => DeviceType::Block,
            "c" => DeviceType::Char,
            _ => return Err(RuleError::Type(text.to_string())),
        };
        let (major, minor) = numbers
            .split_once(':')
            .ok_or_else(|| RuleError::Shape(text.to_string()))?;
        let number = |field: &str, what| match field {
            "*" => Ok(None),
            _ if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) => field
                .parse()
                .map(Some)
                .map_err(|_| RuleError::Number(text.to_string(), what)),
            _ => Err(RuleError::Number(text.to_string(), what)),
        };
        let major = number(major, "major")?;
        let minor = number(minor, "minor")?;
        let mut bits = 0;
        for c in access.chars() {
            let bit = match c {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                _ => return Err(RuleError::Access(text.to_string())),
            };
            if bits & bit != 0 {
                return Err(RuleError::Access(text.to_string()));
            }
            bits |= bit;
        }
        if bits == 0 {
            return Err(RuleError::Access(text.to_string()));
        }
        Ok(Rule {
            device,
            major,
            minor,
            access: Access(bits),
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.device {
            DeviceType::Any => 'a',
            DeviceType::Block => 'b',
            DeviceType::Char => 'c',
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(f, "{kind} {}:{} ", number(self.major), number(self.minor))?;
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.access.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Result<Rule, RuleError> {
        text.parse()
    }

    #[test]
    fn parses_the_v1_whitelist_syntax() {
        assert_eq!(
            rule("c 1:3 rwm").unwrap(),
            Rule {
                device: DeviceType::Char,
                major: Some(1),
                minor: Some(3),
                access: Access::ALL
            }
        );
        let pts = rule("c 136:* rw").unwrap();
        assert_eq!(pts.minor, None);
        assert_eq!(pts.access.bits(), Access::READ | Access::WRITE);
        assert_eq!(rule("b *:* m").unwrap().major, None);
        assert_eq!(rule("a").unwrap().device, DeviceType::Any);
        assert_eq!(rule("  c  5:0   rwm ").unwrap().to_string(), "c 5:0 rwm");
        assert_eq!(rule("b 8:* r").unwrap().to_string(), "b 8:* r");
    }

    #[test]
    fn refuses_malformed_rules() {
        for bad in ["", "c", "c 1:3", "c 1:3 rwm x", "c 13 rwm", "c 1: rwm"] {
            assert!(rule(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(rule("x 1:3 rwm"), Err(RuleError::Type(_))));
        assert!(matches!(
            rule("c -1:3 rwm"),
            Err(RuleError::Number(_, "major"))
        ));
        assert!(matches!(
            rule("c 1:99999999999 r"),
            Err(RuleError::Number(_, "minor"))
        ));
        assert!(matches!(rule("c 1:3 rx"), Err(RuleError::Access(_))));
        assert!(matches!(rule("c 1:3 rr"), Err(RuleError::Access(_))));
    }
}
