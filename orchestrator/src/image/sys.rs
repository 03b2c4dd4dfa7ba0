//! The few system calls layer application needs, each relative to a
//! directory descriptor and none following a symlink: an image is untrusted
//! input, and a symlink it made earlier must never lead a later entry out of
//! the tree.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A directory, opened without following a symlink.
pub fn open_dir(dir: RawFd, name: &[u8]) -> io::Result<OwnedFd> {
    let name = cstr(name)?;
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The root of a tree, by path (the caller's own directory).
pub fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    open_dir(libc::AT_FDCWD, path.as_os_str().as_bytes())
}

/// A new regular file (never an existing one), write-only, 0600 until the
/// caller sets its mode.
pub fn create_file(dir: RawFd, name: &[u8]) -> io::Result<File> {
    let name = cstr(name)?;
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

pub fn mkdir(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode as libc::mode_t) })
}

pub fn mkfifo(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let name = cstr(name)?;
    check(unsafe { libc::mknodat(dir, name.as_ptr(), libc::S_IFIFO | 0o600, 0) })
}

pub fn symlink(target: &[u8], dir: RawFd, name: &[u8]) -> io::Result<()> {
    let (target, name) = (cstr(target)?, cstr(name)?);
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })
}

/// A hard link to OLD (a symlink itself when it is one: no AT_SYMLINK_FOLLOW).
pub fn link(old_dir: RawFd, old: &[u8], dir: RawFd, name: &[u8]) -> io::Result<()> {
    let (old, name) = (cstr(old)?, cstr(name)?);
    check(unsafe { libc::linkat(old_dir, old.as_ptr(), dir, name.as_ptr(), 0) })
}

pub fn unlink(dir: RawFd, name: &[u8], is_dir: bool) -> io::Result<()> {
    let name = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) })
}

/// lstat relative to DIR: None when nothing has that name.
pub fn lstat(dir: RawFd, name: &[u8]) -> io::Result<Option<libc::stat>> {
    let name = cstr(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(st))
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// chown of the entry itself (a symlink is not followed).
pub fn lchown(dir: RawFd, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let name = cstr(name)?;
    check(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    check(unsafe { libc::fchown(fd, uid, gid) })
}

pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) })
}

/// Sets a non-symlink's mode by name (a FIFO, which cannot be opened
/// without blocking).
pub fn chmod_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    check(unsafe { libc::fchmodat(dir, name.as_ptr(), mode as libc::mode_t, 0) })
}

/// atime and mtime of the entry itself (a symlink is not followed).
pub fn set_mtime(dir: RawFd, name: &[u8], secs: i64) -> io::Result<()> {
    let name = cstr(name)?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    check(unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

pub fn set_fd_mtime(fd: RawFd, secs: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    check(unsafe { libc::futimens(fd, times.as_ptr()) })
}

pub fn fsetxattr(fd: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let key = cstr(key)?;
    check(unsafe { libc::fsetxattr(fd, key.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// An xattr of a symlink itself: through /proc/self/fd/DIR, which names the
/// directory already opened, so no path is resolved again.
pub fn lsetxattr_at(dir: RawFd, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
    path.extend_from_slice(name);
    let (path, key) = (cstr(&path)?, cstr(key)?);
    check(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// The names in an open directory (not `.` or `..`).
pub fn list(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)? {
        names.push(OsStr::as_bytes(&entry?.file_name()).to_vec());
    }
    Ok(names)
}
