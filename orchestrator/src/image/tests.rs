//! Layer application on hand-made tar streams: whiteouts, opaque
//! directories, replacement, links, and hostile entries.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::layer::{normalize, Tree};
use super::*;

/// A scratch directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("warden-image-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str),
}

/// A tar stream; names are written raw (no validation), as an attacker can.
fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            E::Dir(n, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                (n, b"")
            }
            E::File(n, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (n, data.as_bytes())
            }
            E::Link(n, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name_literal(target).unwrap();
                (n, b"")
            }
            E::Hard(n, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_link_name_literal(target).unwrap();
                (n, b"")
            }
            E::Char(n) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                (n, b"")
            }
        };
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn apply_all(root: &Path, layers: &[Vec<u8>]) -> Result<Tree, String> {
    let mut tree = Tree::new(sys::open_root(root).unwrap());
    for l in layers {
        let mut a = tar::Archive::new(&l[..]);
        tree.apply(&mut a).map_err(|e| e.to_string())?;
    }
    tree.finish().map_err(|e| e.to_string())?;
    Ok(tree)
}

/// Every path under ROOT with its kind (and a symlink's target, a file's
/// content), sorted.
fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(format!("{rel} = {}", fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn paths_are_relative_and_without_dotdot() {
    assert_eq!(
        normalize(b"./a//b/./c").unwrap(),
        vec![&b"a"[..], &b"b"[..], &b"c"[..]]
    );
    assert!(normalize(b"").unwrap().is_empty());
    assert!(normalize(b"./").unwrap().is_empty());
    assert!(normalize(b"../x").is_err());
    assert!(normalize(b"a/../../x").is_err());
    assert!(normalize(b"/etc/passwd").is_err());
    assert!(normalize(&vec![b'a'; 5000]).is_err());
}

#[test]
fn whiteouts_and_opaque_directories() {
    let t = TempDir::new("whiteout");
    let lower = layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/keep", 0o644, "keep"),
        E::File("etc/gone", 0o644, "gone"),
        E::Dir("etc/sub/", 0o755),
        E::File("etc/sub/deep", 0o644, "deep"),
        E::Dir("opt/", 0o755),
        E::File("opt/old", 0o644, "old"),
        E::Dir("opt/d/", 0o755),
        E::File("opt/d/old2", 0o644, "old2"),
        E::Dir("var/", 0o755),
        E::File("var/x", 0o644, "x"),
        E::File("var/y", 0o644, "y"),
    ]);
    let upper = layer(&[
        E::File("etc/.wh.gone", 0o644, ""),
        E::File("etc/.wh.sub", 0o644, ""),
        // The opaque marker before its siblings...
        E::Dir("opt/", 0o755),
        E::File("opt/.wh..wh..opq", 0o644, ""),
        E::File("opt/new", 0o644, "new"),
        E::Dir("opt/d/", 0o755),
        E::File("opt/d/new2", 0o644, "new2"),
        // ...and after them: what this layer added stays.
        E::Dir("var/", 0o755),
        E::File("var/z", 0o644, "z"),
        E::File("var/.wh..wh..opq", 0o644, ""),
        // A whiteout of what this very layer made leaves it.
        E::File("var/.wh.z", 0o644, ""),
        E::File(".wh.nothing-there", 0o644, ""),
    ]);
    let tree = apply_all(&t.0, &[lower, upper]).unwrap();
    assert_eq!(
        listing(&t.0),
        vec![
            "etc/",
            "etc/keep = keep",
            "opt/",
            "opt/d/",
            "opt/d/new2 = new2",
            "opt/new = new",
            "var/",
            "var/z = z",
        ]
    );
    assert_eq!(tree.stats.whiteouts, 4);
    assert_eq!(tree.stats.opaque_dirs, 2);
}

#[test]
fn entries_replace_what_had_their_name() {
    let t = TempDir::new("replace");
    let lower = layer(&[
        E::Dir("a/", 0o755),
        E::File("a/inner", 0o644, "i"),
        E::File("b", 0o644, "b"),
        E::Link("c", "/etc/passwd"),
        E::Dir("d/", 0o700),
        E::File("d/kept", 0o644, "k"),
    ]);
    let upper = layer(&[
        E::File("a", 0o644, "now a file"),
        E::Dir("b/", 0o755),
        E::File("c", 0o600, "not through the link"),
        // A directory over a directory merges and takes the new mode.
        E::Dir("d/", 0o751),
        E::Char("dev/null"),
    ]);
    let tree = apply_all(&t.0, &[lower, upper]).unwrap();
    assert_eq!(
        listing(&t.0),
        vec![
            "a = now a file",
            "b/",
            "c = not through the link",
            "d/",
            "d/kept = k",
        ]
    );
    assert_eq!(
        fs::metadata(t.0.join("d")).unwrap().permissions().mode() & 0o7777,
        0o751
    );
    assert_eq!(tree.stats.skipped_devices, 1);
}

#[test]
fn modes_links_and_mtimes_are_kept() {
    let t = TempDir::new("modes");
    let l = layer(&[
        E::Dir("./", 0o755),
        E::Dir("bin/", 0o755),
        E::File("bin/suid", 0o4755, "s"),
        E::File("bin/sgid", 0o2711, "g"),
        E::Dir("tmp/", 0o1777),
        E::Hard("bin/suid-too", "bin/suid"),
        E::Link("bin/sh", "suid"),
    ]);
    apply_all(&t.0, &[l]).unwrap();
    let mode = |p: &str| fs::symlink_metadata(t.0.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/suid"), 0o4755);
    assert_eq!(mode("bin/sgid"), 0o2711);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode(""), 0o755);
    let ino = |p: &str| fs::symlink_metadata(t.0.join(p)).unwrap().ino();
    assert_eq!(ino("bin/suid"), ino("bin/suid-too"));
    assert_eq!(
        fs::read_link(t.0.join("bin/sh")).unwrap(),
        Path::new("suid")
    );
    for p in ["bin/suid", "bin", "tmp", ""] {
        assert_eq!(
            fs::symlink_metadata(t.0.join(p)).unwrap().mtime(),
            1_000_000,
            "{p}"
        );
    }
}

#[test]
fn hostile_entries_are_refused_and_nothing_escapes() {
    let t = TempDir::new("hostile");
    let root = t.0.join("root");
    let outside = t.0.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let out = outside.display().to_string();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (layer(&[E::File("../x", 0o644, "x")]), "'..'"),
        (layer(&[E::File("a/../../x", 0o644, "x")]), "'..'"),
        (layer(&[E::File("/abs", 0o644, "x")]), "absolute"),
        (
            layer(&[E::Link("lnk", &out), E::File("lnk/planted", 0o644, "x")]),
            "not followed",
        ),
        (
            layer(&[E::Link("rel", "../outside"), E::Dir("rel/d/", 0o755)]),
            "not followed",
        ),
        (
            layer(&[E::Link("lnk", &out), E::File("lnk/.wh.victim", 0o644, "")]),
            "not followed",
        ),
        (
            layer(&[E::Link("lnk", &out), E::File("lnk/.wh..wh..opq", 0o644, "")]),
            "not followed",
        ),
        (layer(&[E::Hard("h", "../outside/victim")]), "'..'"),
        (
            layer(&[E::Link("lnk", &out), E::Hard("h", "lnk/victim")]),
            "not followed",
        ),
        (
            layer(&[E::Dir("d/", 0o755), E::Hard("h", "d")]),
            "directory",
        ),
        (layer(&[E::Hard("h", "missing")]), "missing"),
    ];
    for (i, (l, why)) in cases.into_iter().enumerate() {
        fs::write(outside.join("victim"), "victim").unwrap();
        let _ = fs::remove_dir_all(&root);
        fs::create_dir(&root).unwrap();
        let e = apply_all(&root, &[l]).err().unwrap_or_default();
        assert!(e.contains(why), "case {i}: {e:?} should say {why:?}");
        assert_eq!(
            listing(&outside),
            vec!["victim = victim"],
            "case {i} reached outside"
        );
        assert!(!t.0.join("x").exists(), "case {i}");
    }
}

#[test]
fn only_safe_xattrs_are_kept() {
    assert!(layer::keep_xattr(b"user.mime"));
    assert!(layer::keep_xattr(b"security.capability"));
    assert!(layer::keep_xattr(b"system.posix_acl_access"));
    assert!(!layer::keep_xattr(b"trusted.overlay.opaque"));
    assert!(!layer::keep_xattr(b"trusted.overlay.redirect"));
    assert!(!layer::keep_xattr(b"security.selinux"));
    assert!(!layer::keep_xattr(b"security.ima"));
}

#[test]
fn zstd_streams_of_several_frames() {
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};
    let mut stream = compress_to_vec(&b"first frame, "[..], CompressionLevel::Fastest);
    // A skippable frame between the two.
    stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    stream.extend(compress_to_vec(
        &vec![b'z'; 300_000][..],
        CompressionLevel::Fastest,
    ));
    let mut out = Vec::new();
    ZstdFrames::new(&stream[..]).read_to_end(&mut out).unwrap();
    assert_eq!(&out[..13], b"first frame, ");
    assert_eq!(out.len(), 13 + 300_000);
    assert!(out[13..].iter().all(|b| *b == b'z'));
}

#[test]
fn records_start_jobs_with_env_and_dir() {
    let config = json!({"config": {
        "Env": ["PATH=/usr/bin:/bin", "GREETING=it's me", "bad.name=1", "NOEQUALS"],
        "WorkingDir": "/srv/app",
        "User": "1000",
        "Entrypoint": ["/bin/echo", "entry"],
        "Cmd": ["default"],
    }});
    let r = ImageRecord::from_config(&config, "img.tar", Some("sha256:x".into()));
    assert_eq!(
        r.preamble(),
        "export PATH=/usr/bin:/bin\nexport GREETING='it'\\''s me'\ncd /srv/app || exit 1\n"
    );
    assert_eq!(r.command(&[]), vec!["/bin/echo", "entry", "default"]);
    assert_eq!(
        r.command(&["other".into()]),
        vec!["/bin/echo", "entry", "other"]
    );
    assert_eq!(ImageRecord::from_json(&r.to_json()), r);
}

#[test]
fn bad_sources_fail_in_one_line_and_leave_no_dir() {
    let t = TempDir::new("badsrc");
    let dir = t.0.join("rootfs");
    let junk = t.0.join("junk.tar");
    fs::write(&junk, vec![b'j'; 2048]).unwrap();
    let empty = t.0.join("empty");
    fs::create_dir(&empty).unwrap();
    for src in [
        junk.display().to_string(),
        empty.display().to_string(),
        t.0.join("missing").display().to_string(),
    ] {
        let e = import(&src, &dir, &ImportOptions::default()).unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(!dir.exists());
        let left: Vec<_> = fs::read_dir(&t.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("rootfs"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
