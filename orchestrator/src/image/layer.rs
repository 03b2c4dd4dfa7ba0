//! One layer's tar stream applied to the tree being built, the way the OCI
//! image spec's changeset rules say, treating every entry as hostile:
//!
//! - paths are relative: an absolute one or one with a `..` component is
//!   refused, `./` and empty components are dropped;
//! - every parent is opened with `O_NOFOLLOW|O_DIRECTORY` from the root's
//!   descriptor, so an entry below a symlink (one the image made itself,
//!   say `lib -> /etc`) is refused rather than written through it; a missing
//!   parent is made (0755, root);
//! - an entry replaces whatever had its name (a directory over a directory
//!   merges, as in the spec); files are made with `O_CREAT|O_EXCL`;
//! - `.wh.NAME` removes NAME of the lower layers, `.wh..wh..opq` removes
//!   everything the lower layers had in its directory; what the same layer
//!   adds is kept whatever the order of the entries;
//! - hard links point at a path of the tree (same rules), never a directory;
//! - character and block devices are skipped (counted): a rootfs needs none,
//!   the container's /dev is made by Warden; FIFOs are kept;
//! - owners (numeric; pax `uid`/`gid` win) set with chown before the mode,
//!   so setuid and setgid bits stay exactly as the image has them, and only
//!   when running as root;
//! - xattrs (pax `SCHILY.xattr.*`): `user.*`, `security.capability` and the
//!   POSIX ACLs are kept; `trusted.*` (overlayfs keeps its own state there,
//!   which a lower layer must not forge) and the rest of `security.*`
//!   (SELinux labels, IMA: the host's policy) are dropped, counted;
//! - mtimes kept; those of directories are set once every layer is in.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys;

pub const OPAQUE: &[u8] = b".wh..wh..opq";
pub const WHITEOUT: &[u8] = b".wh.";
/// Longest path accepted (Linux's PATH_MAX less the NUL).
const MAX_PATH: usize = 4095;

/// Why an entry (or the layer) could not be applied; the path is the
/// entry's as the image has it.
#[derive(Debug)]
pub struct LayerError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for LayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "entry {:?}: {}", self.path, self.reason)
        }
    }
}

type LResult<T> = Result<T, LayerError>;

fn err(path: &[u8], reason: impl Into<String>) -> LayerError {
    LayerError {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
    }
}

fn ioerr(path: &[u8], what: &str) -> impl FnOnce(io::Error) -> LayerError {
    let what = what.to_string();
    let path = path.to_vec();
    move |e| err(&path, format!("{what}: {e}"))
}

/// A path of the tree: its components, none empty, `.` or `..`.
pub fn normalize(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    if raw.len() > MAX_PATH {
        return Err(format!("path longer than {MAX_PATH} bytes"));
    }
    if raw.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    if raw.contains(&0) {
        return Err("NUL in path".into());
    }
    let mut parts = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("'..' in path".into()),
            c => parts.push(c),
        }
    }
    Ok(parts)
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

/// Counts of what was applied and what was left out on purpose.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    pub skipped_devices: u64,
    pub skipped_xattrs: u64,
}

pub struct Tree {
    root: OwnedFd,
    /// Owners are set only by root (as tar does).
    same_owner: bool,
    /// Paths this layer has made (parents made for them included).
    touched: HashSet<Vec<u8>>,
    /// Directory mtimes, set by `finish` (children change them before).
    dir_times: HashMap<Vec<u8>, i64>,
    /// Whether an entry gave the root's own mode.
    pub root_mode_set: bool,
    pub stats: Stats,
}

enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    HardLink(Vec<u8>),
    Fifo,
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Whether an xattr is kept (see the module's doc).
pub fn keep_xattr(key: &[u8]) -> bool {
    key.starts_with(b"user.")
        || key == b"security.capability"
        || key == b"system.posix_acl_access"
        || key == b"system.posix_acl_default"
}

impl Tree {
    pub fn new(root: OwnedFd) -> Self {
        Tree {
            root,
            same_owner: nix::unistd::geteuid().is_root(),
            touched: HashSet::new(),
            dir_times: HashMap::new(),
            root_mode_set: false,
            stats: Stats::default(),
        }
    }

    #[cfg(test)]
    pub fn without_owners(mut self) -> Self {
        self.same_owner = false;
        self
    }

    /// Applies one layer's tar stream.
    pub fn apply<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> LResult<()> {
        self.touched.clear();
        let entries = archive
            .entries()
            .map_err(|e| err(b"", format!("not a tar stream: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| err(b"", format!("bad tar stream: {e}")))?;
            self.entry(entry)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> LResult<()> {
        let raw = entry.path_bytes().into_owned();
        let parts = normalize(&raw).map_err(|r| err(&raw, r))?;
        let header = entry.header();
        let ty = header.entry_type();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut meta = Meta {
            mode: header.mode().map_err(ioerr(&raw, "mode"))? & 0o7777,
            uid: header.uid().map_err(ioerr(&raw, "uid"))? as u32,
            gid: header.gid().map_err(ioerr(&raw, "gid"))? as u32,
            mtime: header.mtime().map_err(ioerr(&raw, "mtime"))? as i64,
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(ioerr(&raw, "pax header"))? {
            for ext in pax {
                let ext = ext.map_err(ioerr(&raw, "pax header"))?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                let number = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u32>().ok())
                };
                match key {
                    b"uid" => meta.uid = number().ok_or_else(|| err(&raw, "bad pax uid"))?,
                    b"gid" => meta.gid = number().ok_or_else(|| err(&raw, "bad pax gid"))?,
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            if keep_xattr(name) {
                                meta.xattrs.push((name.to_vec(), value.to_vec()));
                            } else {
                                self.stats.skipped_xattrs += 1;
                            }
                        }
                    }
                }
            }
        }

        // Whiteouts first: they name, they make nothing.
        if let Some((last, dir)) = parts.split_last() {
            if *last == OPAQUE {
                self.stats.opaque_dirs += 1;
                return self.opaque(&raw, dir);
            }
            if let Some(name) = last.strip_prefix(WHITEOUT) {
                if name.starts_with(WHITEOUT) {
                    // Other aufs markers (.wh..wh.plnk, ...): nothing to apply.
                    return Ok(());
                }
                if name.is_empty() || name == b"." || name == b".." {
                    return Err(err(&raw, "whiteout of no name"));
                }
                self.stats.whiteouts += 1;
                return self.whiteout(&raw, dir, name);
            }
        }

        let kind = match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => {
                Kind::Symlink(link.ok_or_else(|| err(&raw, "symlink without a target"))?)
            }
            tar::EntryType::Link => {
                Kind::HardLink(link.ok_or_else(|| err(&raw, "hard link without a target"))?)
            }
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::Char | tar::EntryType::Block => {
                self.stats.skipped_devices += 1;
                return Ok(());
            }
            // Global pax headers and the like carry nothing for the tree.
            tar::EntryType::XGlobalHeader => return Ok(()),
            other => return Err(err(&raw, format!("unsupported entry type {other:?}"))),
        };
        self.stats.entries += 1;

        let Some((name, dir)) = parts.split_last() else {
            // "./": the root's own metadata.
            return match kind {
                Kind::Dir => {
                    self.set_fd_meta(&raw, self.root.as_raw_fd(), &meta)?;
                    self.root_mode_set = true;
                    self.dir_times.insert(Vec::new(), meta.mtime);
                    Ok(())
                }
                _ => Err(err(&raw, "the root must be a directory")),
            };
        };
        let parent = self.parent(&raw, dir, true)?.expect("parents are made");
        let pfd = parent.as_raw_fd();
        let path = join(&parts);

        // What has the name goes, unless a directory meets a directory.
        if let Some(st) = sys::lstat(pfd, name).map_err(ioerr(&raw, "lstat"))? {
            let merge = sys::is_dir(&st) && matches!(kind, Kind::Dir);
            if !merge {
                if let Kind::HardLink(target) = &kind {
                    if normalize(target).ok().map(|t| join(&t)) == Some(path.clone()) {
                        return Err(err(&raw, "hard link to itself"));
                    }
                }
                remove_tree(pfd, name).map_err(ioerr(&raw, "remove what was there"))?;
            }
        }

        match kind {
            Kind::File => {
                let mut file = sys::create_file(pfd, name).map_err(ioerr(&raw, "create"))?;
                io::copy(&mut entry, &mut file).map_err(ioerr(&raw, "write"))?;
                self.set_fd_meta(&raw, file.as_raw_fd(), &meta)?;
                sys::set_fd_mtime(file.as_raw_fd(), meta.mtime).map_err(ioerr(&raw, "mtime"))?;
            }
            Kind::Dir => {
                match sys::mkdir(pfd, name, 0o700) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(ioerr(&raw, "mkdir")(e)),
                }
                let fd = sys::open_dir(pfd, name).map_err(ioerr(&raw, "open"))?;
                self.set_fd_meta(&raw, fd.as_raw_fd(), &meta)?;
                self.dir_times.insert(path.clone(), meta.mtime);
            }
            Kind::Symlink(target) => {
                if target.contains(&0) || target.is_empty() {
                    return Err(err(&raw, "bad symlink target"));
                }
                sys::symlink(&target, pfd, name).map_err(ioerr(&raw, "symlink"))?;
                if self.same_owner {
                    sys::lchown(pfd, name, meta.uid, meta.gid).map_err(ioerr(&raw, "lchown"))?;
                }
                for (key, value) in &meta.xattrs {
                    // Linux allows no user.* xattr on a symlink.
                    if sys::lsetxattr_at(pfd, name, key, value).is_err() {
                        self.stats.skipped_xattrs += 1;
                    }
                }
                sys::set_mtime(pfd, name, meta.mtime).map_err(ioerr(&raw, "mtime"))?;
            }
            Kind::HardLink(target) => {
                let tparts =
                    normalize(&target).map_err(|r| err(&raw, format!("hard link target {r}")))?;
                let Some((tname, tdir)) = tparts.split_last() else {
                    return Err(err(&raw, "hard link to the root"));
                };
                let tparent = self
                    .parent(&raw, tdir, false)?
                    .ok_or_else(|| err(&raw, "hard link target missing"))?;
                match sys::lstat(tparent.as_raw_fd(), tname).map_err(ioerr(&raw, "lstat"))? {
                    None => return Err(err(&raw, "hard link target missing")),
                    Some(st) if sys::is_dir(&st) => {
                        return Err(err(&raw, "hard link to a directory"))
                    }
                    Some(_) => {}
                }
                sys::link(tparent.as_raw_fd(), tname, pfd, name)
                    .map_err(ioerr(&raw, "hard link"))?;
            }
            Kind::Fifo => {
                sys::mkfifo(pfd, name).map_err(ioerr(&raw, "mkfifo"))?;
                if self.same_owner {
                    sys::lchown(pfd, name, meta.uid, meta.gid).map_err(ioerr(&raw, "lchown"))?;
                }
                sys::chmod_at(pfd, name, meta.mode).map_err(ioerr(&raw, "chmod"))?;
                sys::set_mtime(pfd, name, meta.mtime).map_err(ioerr(&raw, "mtime"))?;
            }
        }
        self.touched.insert(path);
        Ok(())
    }

    /// Owner, then mode (chown clears setuid), then xattrs.
    fn set_fd_meta(&mut self, raw: &[u8], fd: RawFd, meta: &Meta) -> LResult<()> {
        if self.same_owner {
            sys::fchown(fd, meta.uid, meta.gid).map_err(ioerr(raw, "chown"))?;
        }
        sys::fchmod(fd, meta.mode).map_err(ioerr(raw, "chmod"))?;
        for (key, value) in &meta.xattrs {
            match sys::fsetxattr(fd, key, value) {
                Ok(()) => {}
                // The filesystem under DIR has no such xattrs.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    self.stats.skipped_xattrs += 1
                }
                Err(e) => {
                    return Err(err(
                        raw,
                        format!("xattr {}: {e}", String::from_utf8_lossy(key)),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The directory DIR of the tree, each component opened without
    /// following a symlink; missing ones are made when `make`, else None.
    fn parent(&mut self, raw: &[u8], dir: &[&[u8]], make: bool) -> LResult<Option<OwnedFd>> {
        let mut fd = sys::open_dir(self.root.as_raw_fd(), b".").map_err(ioerr(raw, "open root"))?;
        for (i, c) in dir.iter().enumerate() {
            let here = join(&dir[..=i]);
            let next = match sys::open_dir(fd.as_raw_fd(), c) {
                Ok(next) => next,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if !make {
                        return Ok(None);
                    }
                    sys::mkdir(fd.as_raw_fd(), c, 0o755).map_err(ioerr(raw, "mkdir parent"))?;
                    self.touched.insert(here.clone());
                    sys::open_dir(fd.as_raw_fd(), c).map_err(ioerr(raw, "open parent"))?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(err(
                        raw,
                        format!(
                            "{} is not a directory (a symlink or a file): not followed",
                            String::from_utf8_lossy(&here)
                        ),
                    ))
                }
                Err(e) => return Err(ioerr(raw, "open parent")(e)),
            };
            fd = next;
        }
        Ok(Some(fd))
    }

    /// `.wh.NAME`: NAME of the lower layers goes.
    fn whiteout(&mut self, raw: &[u8], dir: &[&[u8]], name: &[u8]) -> LResult<()> {
        let mut path = dir.to_vec();
        path.push(name);
        if self.touched.contains(&join(&path)) {
            return Ok(());
        }
        let Some(parent) = self.parent(raw, dir, false)? else {
            return Ok(());
        };
        if sys::lstat(parent.as_raw_fd(), name)
            .map_err(ioerr(raw, "lstat"))?
            .is_some()
        {
            remove_tree(parent.as_raw_fd(), name).map_err(ioerr(raw, "whiteout"))?;
        }
        Ok(())
    }

    /// `.wh..wh..opq`: everything of DIR the lower layers had goes; what
    /// this layer made stays.
    fn opaque(&mut self, raw: &[u8], dir: &[&[u8]]) -> LResult<()> {
        let fd = self.parent(raw, dir, true)?.expect("made");
        let path = join(dir);
        self.touched.insert(path.clone());
        self.clear_lower(raw, &fd, &path)
    }

    fn clear_lower(&self, raw: &[u8], dir: &OwnedFd, path: &[u8]) -> LResult<()> {
        for name in sys::list(dir).map_err(ioerr(raw, "list"))? {
            let child = if path.is_empty() {
                name.clone()
            } else {
                [path, b"/", &name].concat()
            };
            if !self.touched.contains(&child) {
                remove_tree(dir.as_raw_fd(), &name).map_err(ioerr(raw, "opaque"))?;
                continue;
            }
            let st = sys::lstat(dir.as_raw_fd(), &name).map_err(ioerr(raw, "lstat"))?;
            if st.as_ref().is_some_and(sys::is_dir) {
                let fd = sys::open_dir(dir.as_raw_fd(), &name).map_err(ioerr(raw, "open"))?;
                self.clear_lower(raw, &fd, &child)?;
            }
        }
        Ok(())
    }

    /// Sets the directories' mtimes, deepest first; the root's mode is the
    /// usual 0755 when no layer gave one.
    pub fn finish(&mut self) -> LResult<()> {
        let mut dirs: Vec<(Vec<u8>, i64)> = self.dir_times.drain().collect();
        dirs.sort_by(|a, b| {
            let depth =
                |p: &[u8]| p.iter().filter(|c| **c == b'/').count() + !p.is_empty() as usize;
            depth(&b.0).cmp(&depth(&a.0))
        });
        if !self.root_mode_set {
            sys::fchmod(self.root.as_raw_fd(), 0o755).map_err(ioerr(b"", "chmod root"))?;
        }
        for (path, mtime) in dirs {
            let parts = normalize(&path).map_err(|r| err(&path, r))?;
            match parts.split_last() {
                None => {
                    sys::set_fd_mtime(self.root.as_raw_fd(), mtime).map_err(ioerr(b"", "mtime"))?;
                }
                Some((name, dir)) => {
                    if let Ok(Some(parent)) = self.parent(&path, dir, false) {
                        if let Ok(Some(st)) = sys::lstat(parent.as_raw_fd(), name) {
                            if sys::is_dir(&st) {
                                sys::set_mtime(parent.as_raw_fd(), name, mtime)
                                    .map_err(ioerr(&path, "mtime"))?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn root_fd(&self) -> RawFd {
        self.root.as_raw_fd()
    }

    /// `mkdir -p` of an absolute path of the image (WorkingDir), with the
    /// same rules as an entry's parents; a symlink on the way is refused.
    pub fn make_dirs(&mut self, path: &str) -> LResult<()> {
        let raw = path.trim_start_matches('/').as_bytes().to_vec();
        let parts = normalize(&raw).map_err(|r| err(&raw, r))?;
        self.parent(&raw, &parts, true).map(|_| ())
    }
}

/// Removes NAME of DIR and, when it is a directory, all it holds; nothing
/// is followed.
pub fn remove_tree(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let Some(st) = sys::lstat(dir, name)? else {
        return Ok(());
    };
    if sys::is_dir(&st) {
        let fd = sys::open_dir(dir, name)?;
        for child in sys::list(&fd)? {
            remove_tree(fd.as_raw_fd(), &child)?;
        }
        sys::unlink(dir, name, true)
    } else {
        sys::unlink(dir, name, false)
    }
}
