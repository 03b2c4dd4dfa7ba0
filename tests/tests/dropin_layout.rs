//! tests/dropin/layout.sh, the README's "Dropping into Warden" steps as a
//! script, run against a fake Warden checkout (the directories and files the
//! script checks for, and placeholder originals to be replaced) with a fake
//! BUILD_DIR of placeholder executables named like this workspace's
//! binaries. No root, no real Warden, no built binaries needed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use tests::paths::workspace;

/// Binaries the server runs from each container's bin/ (the skeleton's).
const SKELETON_BINS: [&str; 5] = ["wshd", "wsh", "iomux-spawn", "iomux-link", "cgroup-devices"];
/// Binaries the server runs as warden/src/<tool>/<tool> (Warden::Util.path).
const SRC_BINS: [&str; 3] = ["oom", "repquota", "closefds"];
/// The reference's host-wide scripts, replaced by setup-scripts/root/*.sh.
const WARDEN_ROOT_SCRIPTS: [&str; 5] =
    ["setup.sh", "create.sh", "destroy.sh", "clear.sh", "net.sh"];

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "dropin-layout-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn original(name: &str) -> String {
    format!("#!/bin/bash\n# warden's original {name}\n")
}

fn placeholder(name: &str) -> String {
    format!("#!/bin/sh\necho placeholder {name}\n")
}

/// A checkout of cloudfoundry/warden as far as layout.sh looks at it, with
/// originals in every place the layout replaces.
fn fake_checkout(dir: &Path) {
    let w = dir.join("warden");
    write(
        &w.join("lib/warden/container/linux.rb"),
        "module Warden; end\n",
        0o644,
    );
    write(&w.join("lib/warden/util.rb"), "module Warden; end\n", 0o644);
    for s in WARDEN_ROOT_SCRIPTS {
        write(&w.join("root/linux").join(s), &original(s), 0o755);
    }
    write(
        &w.join("root/linux/skeleton/setup.sh"),
        &original("skeleton/setup.sh"),
        0o755,
    );
    write(
        &w.join("root/linux/skeleton/bin/wshd"),
        &original("C wshd"),
        0o755,
    );
    write(
        &w.join("root/linux/rootfs/ubuntu.sh"),
        &original("rootfs/ubuntu.sh"),
        0o755,
    );
    write(&w.join("src/oom/oom"), &original("C oom"), 0o755);
    write(
        &w.join("src/oom/oom.c"),
        "int main() { return 0; }\n",
        0o644,
    );
    write(
        &w.join("src/closefds/closefds.c"),
        "int main() { return 0; }\n",
        0o644,
    );
}

/// BUILD_DIR: a placeholder for every binary, plus one that must stay out.
fn fake_build(dir: &Path) {
    for b in SKELETON_BINS
        .iter()
        .chain(SRC_BINS.iter())
        .chain(["wardenctl"].iter())
    {
        write(&dir.join(b), &placeholder(b), 0o755);
    }
}

fn layout_sh() -> PathBuf {
    workspace().join("tests/dropin/layout.sh")
}

fn run_layout(checkout: &Path, build: &Path, tmp: &Path) -> Output {
    Command::new("sh")
        .arg(layout_sh())
        .arg(checkout)
        .arg(build)
        .env("TMPDIR", tmp)
        .env_remove("WARDEN_RS_SCRIPTS")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Everything under `root`: type, mode, content (or link target) and mtime,
/// so that any change, even a rewrite with the same bytes, shows.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, u32, Vec<u8>, SystemTime)> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<PathBuf, (String, u32, Vec<u8>, SystemTime)>,
    ) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.permissions().mode() & 0o7777;
            let mtime = m.modified().unwrap();
            if m.file_type().is_symlink() {
                let target = fs::read_link(&p).unwrap();
                out.insert(
                    rel,
                    (
                        "link".into(),
                        mode,
                        target.into_os_string().into_encoded_bytes(),
                        mtime,
                    ),
                );
            } else if m.is_dir() {
                out.insert(rel, ("dir".into(), mode, Vec::new(), mtime));
                walk(root, &p, out);
            } else {
                out.insert(rel, ("file".into(), mode, fs::read(&p).unwrap(), mtime));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file and symlink of `src` is in `dst` with the same content (or
/// target) and mode.
fn assert_tree_copied(src: &Path, dst: &Path) {
    let want = snapshot(src);
    assert!(!want.is_empty(), "{} is empty", src.display());
    for (rel, (kind, mode, content, _)) in &want {
        let p = dst.join(rel);
        let m = fs::symlink_metadata(&p)
            .unwrap_or_else(|e| panic!("{} did not land: {e}", p.display()));
        match kind.as_str() {
            "dir" => assert!(m.is_dir(), "{} is not a directory", p.display()),
            "link" => {
                let target = fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes();
                assert_eq!(&target, content, "{} points elsewhere", p.display());
            }
            _ => {
                assert_eq!(
                    &fs::read(&p).unwrap(),
                    content,
                    "{} differs from {}",
                    p.display(),
                    src.join(rel).display()
                );
                assert_eq!(
                    m.permissions().mode() & 0o7777,
                    *mode,
                    "mode of {}",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn lays_out_a_warden_checkout_once_and_refuses_anything_else() {
    let scratch = Scratch::new("main");
    let checkout = scratch.0.join("warden-checkout");
    let build = scratch.0.join("build");
    let tmp = scratch.0.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fake_checkout(&checkout);
    fake_build(&build);

    assert_eq!(
        mode(&layout_sh()) & 0o111,
        0o111,
        "tests/dropin/layout.sh must be executable"
    );

    let out = run_layout(&checkout, &build, &tmp);
    assert!(
        out.status.success(),
        "layout.sh failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let scripts = workspace().join("setup-scripts");
    let w = checkout.join("warden");
    let linux = w.join("root/linux");

    // setup-scripts/root/*.sh -> warden/root/linux/, executable; the
    // reference's five kept once as *.orig.
    let mut ours = Vec::new();
    for e in fs::read_dir(scripts.join("root")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sh") {
            ours.push(p.file_name().unwrap().to_owned());
            let dst = linux.join(p.file_name().unwrap());
            assert_eq!(read(&dst), read(&p), "{} is not ours", dst.display());
            assert_eq!(mode(&dst), 0o755, "mode of {}", dst.display());
        }
    }
    for s in WARDEN_ROOT_SCRIPTS {
        assert!(ours.iter().any(|o| o == s), "setup-scripts/root has no {s}");
        assert_eq!(
            read(&linux.join(format!("{s}.orig"))),
            original(s),
            "{s}.orig"
        );
    }
    // Untouched: what the layout does not replace.
    assert_eq!(
        read(&linux.join("rootfs/ubuntu.sh")),
        original("rootfs/ubuntu.sh")
    );
    assert_eq!(read(&w.join("src/oom/oom.c")), "int main() { return 0; }\n");
    assert!(w.join("src/closefds/closefds.c").exists());

    // setup-scripts/skeleton/ -> warden/root/linux/skeleton/, the original
    // kept whole as skeleton.orig/.
    let skeleton = linux.join("skeleton");
    assert_tree_copied(&scripts.join("skeleton"), &skeleton);
    assert_eq!(
        read(&linux.join("skeleton.orig/setup.sh")),
        original("skeleton/setup.sh")
    );
    assert_eq!(
        read(&linux.join("skeleton.orig/bin/wshd")),
        original("C wshd")
    );

    // The binaries: the server's container bin/ comes from skeleton/bin/;
    // oom, repquota and closefds run from warden/src/<tool>/<tool>.
    for b in SKELETON_BINS {
        let p = skeleton.join("bin").join(b);
        assert_eq!(
            read(&p),
            placeholder(b),
            "{} is not BUILD_DIR's",
            p.display()
        );
        assert_eq!(mode(&p), 0o755, "mode of {}", p.display());
    }
    for b in SRC_BINS {
        let p = w.join("src").join(b).join(b);
        assert_eq!(
            read(&p),
            placeholder(b),
            "{} is not BUILD_DIR's",
            p.display()
        );
        assert_eq!(mode(&p), 0o755, "mode of {}", p.display());
    }
    assert_eq!(read(&w.join("src/oom/oom.orig")), original("C oom"));
    // Nothing but the named binaries is taken from BUILD_DIR.
    let laid = snapshot(&checkout);
    for (rel, (_, _, content, _)) in &laid {
        assert!(
            !text(content).contains("placeholder wardenctl"),
            "{} is wardenctl, which the server does not use",
            rel.display()
        );
    }
    assert!(
        fs::read_dir(&tmp).unwrap().next().is_none(),
        "layout.sh left its staging directory in TMPDIR"
    );

    // A second run changes nothing, not even an mtime.
    let out = run_layout(&checkout, &build, &tmp);
    assert!(
        out.status.success(),
        "second run failed: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("nothing changed"),
        "second run: {}",
        text(&out.stdout)
    );
    assert_eq!(snapshot(&checkout), laid, "the second run changed the tree");

    // A file changed behind its back is put back; the .orig stays the
    // reference's (backed up once, never overwritten).
    write(
        &linux.join("setup.sh"),
        "#!/bin/sh\n# edited by hand\n",
        0o644,
    );
    write(&skeleton.join("bin/wsh"), "edited", 0o755);
    let out = run_layout(&checkout, &build, &tmp);
    assert!(
        out.status.success(),
        "third run failed: {}",
        text(&out.stderr)
    );
    assert_eq!(
        read(&linux.join("setup.sh")),
        read(&scripts.join("root/setup.sh"))
    );
    assert_eq!(mode(&linux.join("setup.sh")), 0o755);
    assert_eq!(read(&linux.join("setup.sh.orig")), original("setup.sh"));
    assert_eq!(read(&skeleton.join("bin/wsh")), placeholder("wsh"));
    assert_eq!(
        read(&linux.join("skeleton.orig/bin/wshd")),
        original("C wshd")
    );
    assert!(
        !linux.join("setup.sh.orig.orig").exists() && !linux.join("skeleton.orig.orig").exists()
    );
    let relaid = snapshot(&checkout);
    let out = run_layout(&checkout, &build, &tmp);
    assert!(
        text(&out.stdout).contains("nothing changed"),
        "fourth run: {}",
        text(&out.stdout)
    );
    assert_eq!(
        snapshot(&checkout),
        relaid,
        "the fourth run changed the tree"
    );

    // A BUILD_DIR missing a binary: refused before anything is written.
    let partial = scratch.0.join("partial-build");
    fake_build(&partial);
    fs::remove_file(partial.join("closefds")).unwrap();
    write(&linux.join("net.sh"), "edited", 0o755);
    let before = snapshot(&checkout);
    let out = run_layout(&checkout, &partial, &tmp);
    assert_refused(&out, "closefds");
    assert_eq!(
        snapshot(&checkout),
        before,
        "a refused run changed the checkout"
    );
}

fn assert_refused(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "not refused: {}{stderr}",
        text(&out.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "the error is not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("layout.sh: "), "{stderr:?}");
    assert!(
        stderr.contains(needle),
        "{stderr:?} does not mention {needle}"
    );
    assert!(
        out.stdout.is_empty(),
        "a refused run reported progress: {}",
        text(&out.stdout)
    );
}

#[test]
fn refuses_a_directory_that_is_not_warden() {
    let scratch = Scratch::new("refuse");
    let build = scratch.0.join("build");
    let tmp = scratch.0.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fake_build(&build);

    // Some other project, and half a Warden (root/linux but no server code).
    let other = scratch.0.join("other");
    write(&other.join("README.md"), "not warden\n", 0o644);
    write(&other.join("src/main.rs"), "fn main() {}\n", 0o644);
    let half = scratch.0.join("half");
    write(
        &half.join("warden/root/linux/setup.sh"),
        &original("setup.sh"),
        0o755,
    );
    // The server directory itself instead of the checkout holding it.
    let inner = scratch.0.join("inner");
    fake_checkout(&inner);
    let inner = inner.join("warden");

    for dir in [&other, &half, &inner] {
        let before = snapshot(&scratch.0);
        let out = run_layout(dir, &build, &tmp);
        assert_refused(&out, "does not look like a Warden checkout");
        assert_eq!(
            snapshot(&scratch.0),
            before,
            "refusing {} left something behind",
            dir.display()
        );
    }

    let missing = scratch.0.join("missing");
    let out = run_layout(&missing, &build, &tmp);
    assert_refused(&out, "is not a directory");
    assert!(!missing.exists(), "layout.sh made the missing checkout");

    let out = Command::new("sh")
        .arg(layout_sh())
        .arg(&other)
        .output()
        .unwrap();
    assert_refused(&out, "usage");
}

/// The README's drop-in steps name the script and the places it fills, so
/// the two cannot drift apart unnoticed.
#[test]
fn readme_names_the_script_and_the_places() {
    let readme = read(&workspace().join("README.md"));
    let start = readme
        .find("## Dropping into Warden")
        .expect("README has a Dropping into Warden section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for needle in [
        "tests/dropin/layout.sh",
        "warden/root/linux/",
        "warden/root/linux/skeleton/bin/",
        "warden/src/oom/oom",
        "warden/src/repquota/repquota",
        "warden/src/closefds/closefds",
        "/tmp/warden/cgroup/<controller>",
        "cgroup-devices",
    ] {
        assert!(
            section.contains(needle),
            "README's Dropping into Warden does not mention {needle}"
        );
    }
}
