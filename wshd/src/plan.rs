//! What a request's child will do, worked out completely before the fork:
//! the child of a daemon must not allocate, so every string, list and
//! lookup is prepared here.

use std::ffi::CString;

use thiserror::Error;
use wire::request::Request;

use crate::users::{find_user, groups_of, User};

pub const ROOT_PATH: &[u8] = b"/sbin:/bin:/usr/sbin:/usr/bin";
pub const USER_PATH: &[u8] = b"/bin:/usr/bin";
const DEFAULT_SHELL: &[u8] = b"/bin/sh";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("a string of the request holds a NUL byte")]
    Nul,
}

/// Everything the child needs between fork and exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// (resource, cur, max), applied in this order.
    pub rlimits: Vec<(i32, u64, u64)>,
    pub env: Vec<CString>,
    pub argv: Vec<CString>,
    /// Paths to try with execve, in order (the PATH search done ahead).
    pub candidates: Vec<CString>,
    pub cwd: CString,
    /// The request named the directory (v2): failing to enter it is an
    /// error; the home directory falls back to `/` like login(1).
    pub cwd_required: bool,
}

fn cstring(b: Vec<u8>) -> Result<CString, PlanError> {
    CString::new(b).map_err(|_| PlanError::Nul)
}

fn entry(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(key.len() + 1 + value.len());
    e.extend_from_slice(key);
    e.push(b'=');
    e.extend_from_slice(value);
    e
}

/// The contract's environment (HOME, USER, PATH, LANG when not empty), then
/// the request's extra entries, each replacing a default of the same name.
pub fn environment(user: &User, lang: &[u8], extra: &[CString]) -> Vec<Vec<u8>> {
    let path = if user.uid == 0 { ROOT_PATH } else { USER_PATH };
    let mut env = vec![
        entry(b"HOME", &user.home),
        entry(b"USER", &user.name),
        entry(b"PATH", path),
    ];
    if !lang.is_empty() {
        env.push(entry(b"LANG", lang));
    }
    for e in extra {
        let bytes = e.as_bytes();
        let key_len = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        let key = &bytes[..=key_len.min(bytes.len() - 1)];
        match env.iter_mut().find(|d| d.starts_with(key)) {
            Some(slot) => *slot = bytes.to_vec(),
            None => env.push(bytes.to_vec()),
        }
    }
    env
}

/// The value of PATH in `env`, empty when unset.
pub fn path_of(env: &[Vec<u8>]) -> &[u8] {
    env.iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .unwrap_or(b"")
}

/// execvp's search, done ahead: a name with a slash is used as is, any other
/// is tried in each PATH directory (an empty one meaning the current dir).
pub fn candidates(program: &[u8], path: &[u8]) -> Vec<Vec<u8>> {
    if program.is_empty() {
        return Vec::new();
    }
    if program.contains(&b'/') {
        return vec![program.to_vec()];
    }
    path.split(|&b| b == b':')
        .map(|dir| {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut p = dir.to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(program);
            p
        })
        .collect()
}

/// Work out the child of `req` against the container's passwd and group
/// files.
pub fn plan(req: &Request, passwd: &[u8], group: &[u8]) -> Result<Plan, PlanError> {
    let name: &[u8] = if req.user.is_empty() {
        b"root"
    } else {
        &req.user
    };
    let user = match find_user(passwd, name) {
        Some(u) => u,
        // Root must work even in a rootfs without a passwd entry for it.
        None if req.user.is_empty() => User {
            name: b"root".to_vec(),
            uid: 0,
            gid: 0,
            home: b"/".to_vec(),
            shell: DEFAULT_SHELL.to_vec(),
        },
        None => return Err(PlanError::UnknownUser(String::from_utf8_lossy(name).into())),
    };
    let env = environment(&user, &req.lang, &req.env);
    let mut argv: Vec<Vec<u8>> = req.argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    if argv.is_empty() {
        argv.push(if user.shell.is_empty() {
            DEFAULT_SHELL.to_vec()
        } else {
            user.shell.clone()
        });
    }
    let candidates = candidates(&argv[0], path_of(&env));
    let (cwd, cwd_required) = match &req.dir {
        Some(d) => (d.as_bytes().to_vec(), true),
        None if user.home.is_empty() => (b"/".to_vec(), false),
        None => (user.home.clone(), false),
    };
    Ok(Plan {
        uid: user.uid,
        gid: user.gid,
        groups: groups_of(group, &user.name, user.gid),
        rlimits: req.rlimits.iter().map(|r| (r.id, r.cur, r.max)).collect(),
        env: env.into_iter().map(cstring).collect::<Result<_, _>>()?,
        argv: argv.into_iter().map(cstring).collect::<Result<_, _>>()?,
        candidates: candidates
            .into_iter()
            .map(cstring)
            .collect::<Result<_, _>>()?,
        cwd: cstring(cwd)?,
        cwd_required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::request::Rlimit;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\nvcap:x:10000:10000::/home/vcap:\n";
    const GROUP: &[u8] = b"root:x:0:\nvcap:x:10000:\nextra:x:2001:vcap\n";

    fn cs(s: &str) -> CString {
        CString::new(s).unwrap()
    }
    fn strs(v: &[CString]) -> Vec<&str> {
        v.iter().map(|c| c.to_str().unwrap()).collect()
    }

    #[test]
    fn vcap_gets_the_contract_environment_and_its_shell() {
        let req = Request {
            version: 1,
            user: b"vcap".to_vec(),
            lang: b"en_US.UTF-8".to_vec(),
            rlimits: vec![Rlimit {
                id: 7,
                cur: 256,
                max: 512,
            }],
            ..Default::default()
        };
        let p = plan(&req, PASSWD, GROUP).unwrap();
        assert_eq!((p.uid, p.gid), (10000, 10000));
        assert_eq!(p.groups, vec![10000, 2001]);
        assert_eq!(p.rlimits, vec![(7, 256, 512)]);
        assert_eq!(
            strs(&p.env),
            vec![
                "HOME=/home/vcap",
                "USER=vcap",
                "PATH=/bin:/usr/bin",
                "LANG=en_US.UTF-8"
            ]
        );
        assert_eq!(strs(&p.argv), vec!["/bin/sh"]);
        assert_eq!(strs(&p.candidates), vec!["/bin/sh"]);
        assert_eq!(p.cwd, cs("/home/vcap"));
        assert!(!p.cwd_required);
    }

    #[test]
    fn empty_user_is_root_and_empty_lang_is_left_out() {
        let req = Request {
            version: 1,
            argv: vec![cs("id"), cs("-u")],
            ..Default::default()
        };
        let p = plan(&req, PASSWD, GROUP).unwrap();
        assert_eq!((p.uid, p.gid, p.groups.clone()), (0, 0, vec![0]));
        assert_eq!(
            strs(&p.env),
            vec![
                "HOME=/root",
                "USER=root",
                "PATH=/sbin:/bin:/usr/sbin:/usr/bin"
            ]
        );
        assert_eq!(
            strs(&p.candidates),
            vec!["/sbin/id", "/bin/id", "/usr/sbin/id", "/usr/bin/id"]
        );
        // Root still works without a passwd entry.
        let p = plan(&req, b"", b"").unwrap();
        assert_eq!((p.uid, p.cwd.clone()), (0, cs("/")));
    }

    #[test]
    fn unknown_user_is_refused() {
        let req = Request {
            version: 1,
            user: b"ghost".to_vec(),
            ..Default::default()
        };
        assert_eq!(
            plan(&req, PASSWD, GROUP),
            Err(PlanError::UnknownUser("ghost".into()))
        );
    }

    #[test]
    fn v2_extras_override_defaults_and_set_the_dir() {
        let req = Request {
            version: 2,
            user: b"vcap".to_vec(),
            argv: vec![cs("tool")],
            env: vec![cs("PATH=/opt/bin:"), cs("FOO=a=b"), cs("HOMEX=1")],
            dir: Some(cs("/tmp")),
            ..Default::default()
        };
        let p = plan(&req, PASSWD, GROUP).unwrap();
        assert_eq!(
            strs(&p.env),
            vec![
                "HOME=/home/vcap",
                "USER=vcap",
                "PATH=/opt/bin:",
                "FOO=a=b",
                "HOMEX=1"
            ]
        );
        assert_eq!(strs(&p.candidates), vec!["/opt/bin/tool", "./tool"]);
        assert_eq!(p.cwd, cs("/tmp"));
        assert!(p.cwd_required);
    }

    #[test]
    fn search_rules() {
        assert_eq!(candidates(b"./x", b"/bin"), vec![b"./x".to_vec()]);
        assert!(candidates(b"", b"/bin").is_empty());
        assert_eq!(
            candidates(b"x", b"/a/:/b"),
            vec![b"/a/x".to_vec(), b"/b/x".to_vec()]
        );
    }
}
