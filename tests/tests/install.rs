//! `make install` into a temporary prefix, with the binaries already built
//! (RELEASE= the test's bin dir, so nothing is rebuilt): the installed
//! wardenctl, told nothing about where things are, creates, uses and
//! destroys a container with the installed helpers and scripts; the man
//! pages are roff, the completions are there for bash, zsh and fish; `make
//! uninstall` takes it all away again. Pool: 10.255.240.0/20 (FIRST 496).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tests::ctl::{assert_gone, assert_ok, stdout, TestDepot};
use tests::paths;

const FIRST: u32 = 496;

/// A prefix under /tmp, removed when dropped (also when the test fails).
struct Prefix {
    root: PathBuf,
}

impl Prefix {
    fn new(name: &str) -> Prefix {
        let root = PathBuf::from(format!("/tmp/warden-install-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Prefix { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn make(target: &str, prefix: &Path) -> Output {
    Command::new("make")
        .arg("-C")
        .arg(paths::workspace())
        .arg("--no-print-directory")
        .arg(target)
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("RELEASE={}", paths::bin_dir().display()))
        .env_remove("WARDEN_BIN_DIR")
        .env_remove("WARDEN_SCRIPTS_DIR")
        .output()
        .expect("running make")
}

fn executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Subcommands from `wardenctl --help`'s Commands: section.
fn subcommands(wardenctl: &Path) -> Vec<String> {
    let out = Command::new(wardenctl).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

fn assert_man_page(path: &Path, title: &str) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!(".TH {title} 1"))),
        "{} has no .TH {title} 1 header:\n{}",
        path.display(),
        text.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(text.contains("\n.SH NAME\n"), "{}: no NAME", path.display());
    assert!(
        text.contains("\n.SH SYNOPSIS\n"),
        "{}: no SYNOPSIS",
        path.display()
    );
    // groff, where it is installed, parses it without a warning.
    if let Ok(out) = Command::new("groff")
        .args(["-man", "-Tascii", "-ww", "-z"])
        .arg(path)
        .output()
    {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn make_install_gives_a_working_wardenctl_and_uninstall_takes_it_back() {
    if !tests::require_root("install") {
        return;
    }
    let prefix = Prefix::new("make");
    let out = make("install", &prefix.root);
    assert_ok(&out, "make install");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("cargo build"),
        "make install rebuilt: {}",
        stdout(&out)
    );

    for bin in ["wardenctl", "wardend", "warden", "wsh"] {
        assert!(executable(&prefix.path(&format!("bin/{bin}"))), "bin/{bin}");
    }
    for helper in ["wshd", "wsh", "iomux-spawn", "iomux-link", "cgroup-devices"] {
        assert!(
            executable(&prefix.path(&format!("lib/warden/{helper}"))),
            "lib/warden/{helper}"
        );
    }
    for script in [
        "root/create.sh",
        "root/setup.sh",
        "skeleton/setup.sh",
        "skeleton/lib/hook-child-after-pivot.sh",
        "rootfs/busybox.sh",
    ] {
        assert!(
            executable(&prefix.path(&format!("share/warden/{script}"))),
            "share/warden/{script}"
        );
    }
    assert_eq!(
        fs::read_link(prefix.path("share/warden/skeleton/lib/dev/fd")).unwrap(),
        PathBuf::from("/proc/self/fd"),
        "the skeleton's symlinks are kept"
    );

    let wardenctl = prefix.path("bin/wardenctl");
    let man = prefix.path("share/man/man1");
    assert_man_page(&man.join("wardenctl.1"), "wardenctl");
    let subs = subcommands(&wardenctl);
    assert!(
        subs.len() > 10 && subs.iter().any(|s| s == "create"),
        "{subs:?}"
    );
    for sub in &subs {
        let title = format!("wardenctl-{sub}");
        assert_man_page(&man.join(format!("{title}.1")), &title);
    }
    assert_man_page(
        &man.join("wardenctl-rootfs-import.1"),
        "wardenctl-rootfs-import",
    );
    assert_man_page(&man.join("wardend.1"), "wardend");
    assert_man_page(&man.join("warden.1"), "warden");

    for prog in ["wardenctl", "wardend", "warden"] {
        let bash =
            fs::read_to_string(prefix.path(&format!("share/bash-completion/completions/{prog}")))
                .unwrap();
        assert!(
            bash.contains(&format!("complete -F _{prog}")),
            "bash {prog}"
        );
        let zsh =
            fs::read_to_string(prefix.path(&format!("share/zsh/site-functions/_{prog}"))).unwrap();
        assert!(zsh.starts_with(&format!("#compdef {prog}")), "zsh {prog}");
        let fish = fs::read_to_string(
            prefix.path(&format!("share/fish/vendor_completions.d/{prog}.fish")),
        )
        .unwrap();
        assert!(fish.contains(&format!("complete -c {prog}")), "fish {prog}");
    }
    let bash =
        fs::read_to_string(prefix.path("share/bash-completion/completions/wardenctl")).unwrap();
    assert!(
        bash.contains("net-in") && bash.contains("--rootfs"),
        "wardenctl's bash completion knows its commands"
    );

    {
        // The installed wardenctl, with no WARDEN_BIN_DIR/WARDEN_SCRIPTS_DIR.
        let depot = TestDepot::installed("install", FIRST, 16, prefix.path("bin"));
        let c = depot.create("inst", &[]);
        assert_eq!(
            c.sh("echo hi from $(hostname)"),
            format!("hi from {}\n", c.id)
        );
        // Its helpers and scripts were the installed ones.
        let log = fs::read_to_string(depot.path("inst").join("run/create.log")).unwrap();
        let scripts = prefix
            .root
            .canonicalize()
            .unwrap()
            .join("share/warden/root/create.sh");
        assert!(
            log.contains(&format!("== {} ", scripts.display())),
            "create.log does not name {}:\n{log}",
            scripts.display()
        );
        let installed_wshd = fs::read(prefix.path("lib/warden/wshd")).unwrap();
        assert!(
            fs::read(depot.path("inst").join("bin/wshd")).unwrap() == installed_wshd,
            "the container's wshd is the installed one"
        );
        let id = c.id.clone();
        c.destroy();
        assert_gone(&depot, "inst", &id);
    }

    let out = make("uninstall", &prefix.root);
    assert_ok(&out, "make uninstall");
    let left: Vec<PathBuf> = fs::read_dir(&prefix.root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "make uninstall left {left:?}");
}

#[test]
fn uninstall_without_an_install_removes_nothing() {
    let prefix = Prefix::new("none");
    let mine = prefix.path("bin/wardenctl");
    fs::create_dir_all(mine.parent().unwrap()).unwrap();
    fs::write(&mine, "not ours").unwrap();
    let out = make("uninstall", &prefix.root);
    assert!(
        !out.status.success(),
        "uninstall with no manifest succeeded"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("install-manifest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&mine).unwrap(), "not ours");
}

/// The install keeps what was there: a second install over the first, and
/// a directory of the prefix's own (as /usr/local/bin is), survive uninstall.
#[test]
fn uninstall_keeps_what_was_there_before() {
    let prefix = Prefix::new("shared");
    let theirs = prefix.path("bin/their-tool");
    fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    fs::write(&theirs, "theirs").unwrap();
    assert_ok(&make("install", &prefix.root), "make install");
    assert_ok(&make("install", &prefix.root), "make install again");
    assert_ok(&make("uninstall", &prefix.root), "make uninstall");
    let mut left: Vec<String> = walk(&prefix.root);
    left.sort();
    assert_eq!(left, vec!["bin".to_string(), "bin/their-tool".to_string()]);
}

fn walk(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            }
        }
    }
    found
}
