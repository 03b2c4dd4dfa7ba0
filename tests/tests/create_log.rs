//! A create that fails keeps its log in DEPOT/.failed/HANDLE.log (the
//! newest 10), says at which step it failed and shows the last lines of
//! error output; --debug and WARDEN_DEBUG=1 trace the scripts; a create
//! that works keeps its log in run/create.log. `.failed` is no container
//! (list, the next create). Pool: 10.255.240.0/20 (FIRST 496), run one test
//! binary at a time as cargo does, so install.rs's /24s are not shared.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use tests::ctl::{assert_code, assert_gone, assert_ok, stderr, stdout, TestDepot};

const FIRST: u32 = 496;

/// A rootfs with directories but no /bin/sh: setup.sh and the host-side
/// hooks succeed, the hook run inside the container cannot, so start.sh
/// fails after cgroups, veth and chains exist.
fn shell_less_rootfs(depot: &TestDepot) -> PathBuf {
    let rootfs = depot.data("no-shell");
    for d in ["etc", "dev", "proc", "sbin", "mnt", "tmp", "home"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    rootfs
}

fn create_on(
    depot: &TestDepot,
    handle: &str,
    rootfs: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut c = depot.command();
    c.args(extra).args([
        "create",
        "--handle",
        handle,
        "--pool-network",
        &depot.pool,
        "--rootfs",
        rootfs.to_str().unwrap(),
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running wardenctl")
}

/// The id in "(container id ID, undone)".
fn id_in(err: &str) -> String {
    err.split("container id ")
        .nth(1)
        .and_then(|s| s.split([',', ')']).next())
        .unwrap_or_else(|| panic!("no container id in {err:?}"))
        .to_string()
}

#[test]
fn a_failed_create_keeps_its_log_and_says_where_it_failed() {
    let Some(depot) = TestDepot::new_in("failedlog", FIRST, 16) else {
        return;
    };
    let rootfs = shell_less_rootfs(&depot);
    let out = create_on(&depot, "broken", &rootfs, &[], &[]);
    assert_code(&out, 10, "create on a rootfs without a shell");
    let err = stderr(&out);
    let log = depot.dir.join(".failed/broken.log");
    let mut lines = err.lines();
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("wardenctl: create failed at start.sh: ")
            && first.ends_with(&format!("; log kept in {}", log.display())),
        "first line: {first:?}"
    );
    // A sentence, not a Rust debug dump of a wait status.
    assert!(
        first.contains("wshd (its init) exited with status 1 before it was ready"),
        "{first:?}"
    );
    assert!(!err.contains("Some(Ok("), "{err}");
    // Then at most 5 indented lines of error output, here the reason.
    let tail: Vec<&str> = lines.collect();
    assert!(!tail.is_empty() && tail.len() <= 5, "tail: {tail:?}");
    assert!(tail.iter().all(|l| l.starts_with("    ")), "tail: {tail:?}");
    assert!(
        tail.iter()
            .any(|l| l.contains("interpreter, /bin/sh, is missing")),
        "tail: {tail:?}"
    );
    let text = fs::read_to_string(&log).unwrap();
    for part in [
        "root/create.sh",
        "start.sh: exit status: 1",
        "== run/wshd.err.log",
        "== undo",
        "== failed at start.sh",
    ] {
        assert!(text.contains(part), "log has no {part:?}:\n{text}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_gone(&depot, "broken", &id_in(&err));

    // .failed is no container: not listed, not in the way of a create.
    let out = depot.ctl(&["list"]);
    assert_ok(&out, "list");
    assert_eq!(stdout(&out), "");
    let c = depot.create("works", &[]);
    let out = depot.ctl(&["list"]);
    assert_eq!(stdout(&out), "works\n");
    // A create that works keeps its log too.
    let kept = fs::read_to_string(depot.path("works").join("run/create.log")).unwrap();
    assert!(kept.contains("start.sh: exit status: 0"), "{kept}");
    c.destroy();
}

#[test]
fn only_the_newest_ten_logs_are_kept() {
    let Some(depot) = TestDepot::new_in("failedprune", FIRST, 16) else {
        return;
    };
    let rootfs = shell_less_rootfs(&depot);
    for i in 0..12 {
        let out = create_on(&depot, &format!("b{i:02}"), &rootfs, &[], &[]);
        assert_code(&out, 10, "failing create");
        // Distinct modification times even on a coarse clock.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut names: Vec<String> = fs::read_dir(depot.dir.join(".failed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = (2..12).map(|i| format!("b{i:02}.log")).collect();
    assert_eq!(names, want);
}

#[test]
fn debug_traces_the_scripts() {
    let Some(depot) = TestDepot::new_in("debugtrace", FIRST, 16) else {
        return;
    };
    let rootfs = shell_less_rootfs(&depot);
    for (flag, env) in [
        (&["--debug"][..], &[][..]),
        (&[][..], &[("WARDEN_DEBUG", "1")][..]),
    ] {
        let handle = if flag.is_empty() {
            "dbg-env"
        } else {
            "dbg-flag"
        };
        let out = create_on(&depot, handle, &rootfs, flag, env);
        assert_code(&out, 10, "failing create under --debug");
        let err = stderr(&out);
        // set -x lines of create.sh and start.sh, and of a hook (via wshd's
        // log). start.sh's is a word of a line its main shell traces: the
        // shells of steps run side by side write their traces word by
        // word, interleaved.
        for traced in ["+ mkdir -m 0700 ", "net_setup=", "+ set -eu"] {
            assert!(
                err.contains(traced),
                "{flag:?} {env:?}: no {traced:?} in:\n{err}"
            );
        }
        assert!(
            err.contains("== run/wshd.err.log"),
            "wshd's log is shown:\n{err}"
        );
        let last = err.lines().last().unwrap();
        assert!(
            last.starts_with("wardenctl: create failed at start.sh: "),
            "{last}"
        );
        let log = fs::read_to_string(depot.dir.join(format!(".failed/{handle}.log"))).unwrap();
        // A single word, as above: the side-by-side shells interleave.
        assert!(
            log.contains("net_setup="),
            "the trace is in the log:\n{log}"
        );
        assert_gone(&depot, handle, &id_in(&err));
    }
    // Without either, no trace.
    let out = create_on(&depot, "quiet", &rootfs, &[], &[]);
    assert!(!stderr(&out).contains("+ "), "{}", stderr(&out));
    // And a working container under --debug works.
    let out = depot
        .command()
        .arg("--debug")
        .args(depot.create_args("dbg-ok", &[]))
        .output()
        .unwrap();
    assert_ok(&out, "create --debug");
    assert_eq!(stdout(&out), "dbg-ok\n", "the handle alone on stdout");
    assert!(stderr(&out).contains("+ set -eu"));
    let out = depot.ctl(&["--debug", "destroy", "dbg-ok"]);
    assert_ok(&out, "destroy --debug");
    assert!(stderr(&out).contains("+ "), "destroy is traced too");
}
