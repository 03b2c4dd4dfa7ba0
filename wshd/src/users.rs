//! The container's /etc/passwd and /etc/group, parsed directly: the daemon
//! is static and the container's libc may differ, so no NSS.

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
    pub shell: Vec<u8>,
}

/// The user called `name` in passwd-format `text`. Malformed lines are
/// skipped, so one bad entry cannot hide the others.
pub fn find_user(text: &[u8], name: &[u8]) -> Option<User> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() != 7 || f[0] != name || name.is_empty() {
            return None;
        }
        Some(User {
            name: f[0].to_vec(),
            uid: parse_id(f[2])?,
            gid: parse_id(f[3])?,
            home: f[5].to_vec(),
            shell: f[6].to_vec(),
        })
    })
}

fn parse_id(b: &[u8]) -> Option<u32> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The user's groups: the primary gid first, then every group of
/// group-format `text` that lists `name` as a member, without duplicates.
pub fn groups_of(text: &[u8], name: &[u8], primary: u32) -> Vec<u32> {
    let mut out = vec![primary];
    for line in text.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() != 4 {
            continue;
        }
        let Some(gid) = parse_id(f[2]) else { continue };
        if f[3].split(|&b| b == b',').any(|m| m == name) && !out.contains(&gid) {
            out.push(gid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
broken line\n\
bad:x:notanumber:1:x:/:/bin/sh\n\
vcap:x:10000:10001:vcap user:/home/vcap:\n";

    #[test]
    fn finds_users_and_skips_malformed_lines() {
        let root = find_user(PASSWD, b"root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.home, b"/root");
        assert_eq!(root.shell, b"/bin/sh");
        let vcap = find_user(PASSWD, b"vcap").unwrap();
        assert_eq!((vcap.uid, vcap.gid), (10000, 10001));
        assert_eq!(vcap.home, b"/home/vcap");
        assert_eq!(vcap.shell, b"");
        assert_eq!(find_user(PASSWD, b"bad"), None);
        assert_eq!(find_user(PASSWD, b"nobody"), None);
        assert_eq!(find_user(PASSWD, b""), None);
        assert_eq!(find_user(PASSWD, b"roo"), None);
    }

    #[test]
    fn groups_list_primary_then_memberships() {
        let group = b"root:x:0:\nvcap:x:10001:\nadm:x:4:root,vcap\nweird\nstaff:x:50:vcapx,vcap\ndup:x:10001:vcap\n";
        assert_eq!(groups_of(group, b"vcap", 10001), vec![10001, 4, 50]);
        assert_eq!(groups_of(group, b"root", 0), vec![0, 4]);
        assert_eq!(groups_of(b"", b"root", 0), vec![0]);
    }
}
