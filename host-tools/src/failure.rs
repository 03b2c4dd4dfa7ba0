//! The one error shape of the three tools: the C tools report a failed
//! system call with `perror(NAME)`, i.e. `NAME: strerror`; these keep NAME
//! (so a log grep for `open:` or `execvp:` still matches the same lines) and
//! add the path or value it was about, which perror leaves out.

use std::fmt;

use nix::errno::Errno;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The C tool's perror word: `open`, `write`, `access`, `execvp`, ...
    pub call: &'static str,
    /// What the call was about (a path, a command); may be empty.
    pub subject: String,
    pub errno: Errno,
}

impl Failure {
    pub fn new(call: &'static str, subject: impl fmt::Display, errno: Errno) -> Failure {
        Failure {
            call,
            subject: subject.to_string(),
            errno,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subject.is_empty() {
            write!(f, "{}: {}", self.call, self.errno.desc())
        } else {
            write!(f, "{} {}: {}", self.call, self.subject, self.errno.desc())
        }
    }
}

impl std::error::Error for Failure {}

impl From<(&'static str, &std::path::Path, Errno)> for Failure {
    fn from((call, path, errno): (&'static str, &std::path::Path, Errno)) -> Failure {
        Failure::new(call, path.display(), errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_call_and_the_subject() {
        let f = Failure::new("open", "/x/memory.oom_control", Errno::ENOENT);
        assert_eq!(
            f.to_string(),
            "open /x/memory.oom_control: No such file or directory"
        );
        assert_eq!(
            Failure::new("eventfd", "", Errno::EMFILE).to_string(),
            "eventfd: Too many open files"
        );
    }
}
