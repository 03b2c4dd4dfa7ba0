//! Where an image's files come from: a directory (an OCI image layout, or
//! a `docker save` tarball unpacked) or a tar file (an oci-archive or a
//! `docker save` tarball), read in place through an index of its members.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::layer::normalize;

/// A member of a tar file: where its bytes are, or what it links to.
pub enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

pub enum Store {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        members: HashMap<String, Member>,
    },
}

/// `a/./b//c` as `a/b/c`; None for an absolute path or one with `..`.
pub fn clean(name: &str) -> Option<String> {
    let parts = normalize(name.as_bytes()).ok()?;
    if parts.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&parts.join(&b'/')).into_owned())
}

impl Store {
    pub fn dir(path: &Path) -> Store {
        Store::Dir(path.to_path_buf())
    }

    /// Indexes a tar file's members (seeking over their data).
    pub fn tar(path: &Path) -> io::Result<Store> {
        let mut archive = tar::Archive::new(File::open(path)?);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek()? {
            let entry = entry?;
            let raw = entry.path_bytes().into_owned();
            let Some(name) = clean(&String::from_utf8_lossy(&raw)) else {
                continue;
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::Data {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => {
                    // Relative to the member's own directory.
                    let target = entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .unwrap_or_default();
                    let base = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    match resolve_relative(base, &target) {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .unwrap_or_default();
                    match clean(&target) {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                }
                _ => continue,
            };
            members.insert(name, member);
        }
        Ok(Store::Tar {
            file: path.to_path_buf(),
            members,
        })
    }

    fn lookup(&self, name: &str) -> Option<(u64, u64)> {
        let Store::Tar { members, .. } = self else {
            return None;
        };
        let mut name = clean(name)?;
        for _ in 0..16 {
            match members.get(&name)? {
                Member::Data { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }

    pub fn exists(&self, name: &str) -> bool {
        match self {
            Store::Dir(dir) => clean(name).is_some_and(|n| dir.join(n).is_file()),
            Store::Tar { .. } => self.lookup(name).is_some(),
        }
    }

    /// The member's bytes and their count.
    pub fn open(&self, name: &str) -> io::Result<(Box<dyn Read>, u64)> {
        let missing = || io::Error::new(io::ErrorKind::NotFound, format!("{name} is missing"));
        match self {
            Store::Dir(dir) => {
                let clean = clean(name).ok_or_else(missing)?;
                let file = File::open(dir.join(clean)).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        missing()
                    } else {
                        e
                    }
                })?;
                let size = file.metadata()?.len();
                Ok((Box::new(file), size))
            }
            Store::Tar { file, .. } => {
                let (offset, size) = self.lookup(name).ok_or_else(missing)?;
                let mut f = File::open(file)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// A small member (JSON), whole; more than LIMIT bytes is an error.
    pub fn read_small(&self, name: &str, limit: u64) -> io::Result<Vec<u8>> {
        let (reader, size) = self.open(name)?;
        if size > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} is {size} bytes, more than {limit}"),
            ));
        }
        let mut buf = Vec::new();
        reader.take(limit).read_to_end(&mut buf)?;
        Ok(buf)
    }
}

/// TARGET seen from directory BASE of the archive, kept inside it.
fn resolve_relative(base: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return clean(target);
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_links_stay_inside() {
        assert_eq!(
            resolve_relative("abc", "../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(resolve_relative("", "../x"), None);
        assert_eq!(clean("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(clean("../a"), None);
        assert_eq!(clean("/a"), None);
    }
}
