//! wardenctl's usage errors, checked against golden outputs: a usage error
//! shows clap's whole message (what is missing or unknown, the usage line,
//! a suggestion), exit code 2; a bare `wardenctl` shows its help; a runtime
//! error stays one line. Needs no root: none of these reaches a container.
//!
//! After changing the command line on purpose, regenerate the goldens by
//! running the same commands with `env -i` (see each test) into
//! tests/golden/.

use std::process::{Command, Output};

use tests::paths;

fn wardenctl(args: &[&str]) -> Output {
    // An empty environment, as the goldens were made: clap shows the
    // values of the WARDEN_* variables it reads.
    Command::new(paths::bin("wardenctl"))
        .args(args)
        .env_clear()
        .output()
        .expect("run wardenctl")
}

fn golden(name: &str) -> String {
    let path = paths::workspace().join("tests/golden").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_usage_error(args: &[&str], golden_name: &str) {
    let out = wardenctl(args);
    assert_eq!(out.status.code(), Some(2), "wardenctl {args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "wardenctl {args:?} wrote to stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, golden(golden_name), "wardenctl {args:?}");
}

#[test]
fn a_missing_argument_is_named_with_the_usage() {
    assert_usage_error(&["create"], "wardenctl-create-missing-rootfs.txt");
    let text = golden("wardenctl-create-missing-rootfs.txt");
    assert!(text.contains("--rootfs <ROOTFS>") && text.contains("Usage: wardenctl create"));
}

#[test]
fn a_mistyped_command_gets_a_suggestion() {
    assert_usage_error(&["crate"], "wardenctl-crate.txt");
    assert!(golden("wardenctl-crate.txt").contains("a similar subcommand exists: 'create'"));
}

#[test]
fn an_unknown_flag_shows_the_usage() {
    assert_usage_error(
        &["create", "--rootfs", "/", "--memory", "5"],
        "wardenctl-create-unknown-flag.txt",
    );
}

#[test]
fn a_bare_wardenctl_shows_its_help() {
    assert_usage_error(&[], "wardenctl-bare.txt");
    let text = golden("wardenctl-bare.txt");
    assert!(
        text.contains("Commands:") && text.contains("create"),
        "{text}"
    );
}

#[test]
fn runtime_errors_stay_one_line() {
    let depot = std::env::temp_dir().join(format!("cli-usage-{}", std::process::id()));
    let out = Command::new(paths::bin("wardenctl"))
        .args(["--depot", depot.to_str().unwrap(), "info", "nope"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, "wardenctl: unknown handle: nope\n");
    let _ = std::fs::remove_dir_all(&depot);
}
