//! Presence check for proto2 `required` fields.
//!
//! prost fills an absent required field with its default and says nothing,
//! so we scan the payload's wire format ourselves: collect the field numbers
//! present at each level, compare with the descriptor's required fields
//! (in declaration order), and recurse into message-typed fields. A singular
//! message field that occurs several times is merged by protobuf, which is
//! the same as concatenating its occurrences, so those are checked together;
//! each element of a repeated message field is checked on its own.

use std::collections::{HashMap, HashSet};

use prost_reflect::{Cardinality, Kind, MessageDescriptor};

/// The first required field found missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Full name of the message lacking it, e.g. `warden.CreateRequest.BindMount`.
    pub message: String,
    /// The field's name, e.g. `src_path`.
    pub field: String,
}

/// Why the scan itself failed (malformed wire data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Nested messages deeper than this are refused, as prost does (its limit
/// is 100).
const MAX_DEPTH: u32 = 100;

/// Checks `buf`, an encoded `desc`, for missing required fields.
pub fn check(desc: &MessageDescriptor, buf: &[u8]) -> Result<Option<Missing>, Malformed> {
    check_depth(desc, buf, 0)
}

fn check_depth(
    desc: &MessageDescriptor,
    buf: &[u8],
    depth: u32,
) -> Result<Option<Missing>, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed("messages nested too deeply"));
    }
    let mut present: HashSet<u32> = HashSet::new();
    // Length-delimited occurrences of message-typed fields, by field number.
    let mut nested: HashMap<u32, Vec<&[u8]>> = HashMap::new();
    let mut r = Cursor { buf, pos: 0 };
    while !r.done() {
        let key = r.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| Malformed("field number too large"))?;
        if number == 0 {
            return Err(Malformed("field number 0"));
        }
        let wire_type = (key & 7) as u8;
        present.insert(number);
        match wire_type {
            0 => {
                r.varint()?;
            }
            1 => r.skip(8)?,
            2 => {
                let len =
                    usize::try_from(r.varint()?).map_err(|_| Malformed("length too large"))?;
                let data = r.take(len)?;
                if let Some(f) = desc.get_field(number) {
                    if matches!(f.kind(), Kind::Message(_)) {
                        nested.entry(number).or_default().push(data);
                    }
                }
            }
            3 => r.skip_group(number, 0)?,
            5 => r.skip(4)?,
            _ => return Err(Malformed("invalid wire type")),
        }
    }

    for field in desc.fields() {
        if field.cardinality() == Cardinality::Required && !present.contains(&field.number()) {
            return Ok(Some(Missing {
                message: desc.full_name().to_string(),
                field: field.name().to_string(),
            }));
        }
        let Kind::Message(sub) = field.kind() else {
            continue;
        };
        let Some(parts) = nested.get(&field.number()) else {
            continue;
        };
        if field.is_list() {
            for part in parts {
                if let Some(m) = check_depth(&sub, part, depth + 1)? {
                    return Ok(Some(m));
                }
            }
        } else {
            let merged = parts.concat();
            if let Some(m) = check_depth(&sub, &merged, depth + 1)? {
                return Ok(Some(m));
            }
        }
    }
    Ok(None)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(Malformed("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(Malformed("length overflow"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(Malformed("truncated field"))?;
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize) -> Result<(), Malformed> {
        self.take(n).map(|_| ())
    }

    /// Skips a group's contents up to and including its end-group tag.
    fn skip_group(&mut self, number: u32, depth: u32) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed("groups nested too deeply"));
        }
        loop {
            if self.done() {
                return Err(Malformed("unterminated group"));
            }
            let key = self.varint()?;
            let inner = key >> 3;
            match key & 7 {
                0 => {
                    self.varint()?;
                }
                1 => self.skip(8)?,
                2 => {
                    let len = usize::try_from(self.varint()?)
                        .map_err(|_| Malformed("length too large"))?;
                    self.skip(len)?;
                }
                3 => {
                    let inner =
                        u32::try_from(inner).map_err(|_| Malformed("field number too large"))?;
                    self.skip_group(inner, depth + 1)?;
                }
                4 => {
                    return if inner == u64::from(number) {
                        Ok(())
                    } else {
                        Err(Malformed("mismatched end group"))
                    };
                }
                5 => self.skip(4)?,
                _ => return Err(Malformed("invalid wire type")),
            }
        }
    }
}
