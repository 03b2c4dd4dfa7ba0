//! docs/cli.md is wardenctl's help as the built binary prints it: the same
//! text docs/gen-cli.sh writes, rebuilt here from `wardenctl --help` and
//! `wardenctl SUB --help` for every subcommand listed (and `wardenctl SUB
//! SUBSUB --help` for nested ones). Needs no root.

use std::fs;
use std::process::Command;

use tests::paths;

/// The help text, from an empty environment as gen-cli.sh runs it (clap
/// prints the values of the WARDEN_* variables it reads).
fn help(args: &[&str]) -> String {
    let w = paths::bin("wardenctl");
    let out = Command::new(&w)
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", w.display()));
    assert!(
        out.status.success(),
        "wardenctl {args:?} exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands under "Commands:", but `help`.
fn subcommands(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_string)
        .collect()
}

fn section(title: &str, text: &str) -> String {
    format!(
        "\n## {title}\n\n```text\n{}\n```\n",
        text.trim_end_matches('\n')
    )
}

fn expected() -> String {
    let top = help(&["--help"]);
    let mut doc = String::from(
        "# wardenctl command-line reference\n\n\
         Generated from wardenctl's own `--help` by `docs/gen-cli.sh`; do not edit by hand.\n\
         After changing the command line: `make build && docs/gen-cli.sh`.\n",
    );
    doc.push_str(&section("wardenctl", &top));
    for sub in subcommands(&top) {
        let text = help(&[&sub, "--help"]);
        doc.push_str(&section(&format!("wardenctl {sub}"), &text));
        // Nested subcommands (`rootfs import`).
        for subsub in subcommands(&text) {
            doc.push_str(&section(
                &format!("wardenctl {sub} {subsub}"),
                &help(&[&sub, &subsub, "--help"]),
            ));
        }
    }
    doc
}

#[test]
fn subcommands_are_read_from_the_command_list() {
    let top =
        "About\n\nCommands:\n  setup   Prepare\n  copy-in  Copy\n  help  Print\n\nOptions:\n  -h\n";
    assert_eq!(subcommands(top), ["setup", "copy-in"]);
}

#[test]
fn cli_reference_is_current() {
    let path = paths::workspace().join("docs/cli.md");
    let have = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e} (run docs/gen-cli.sh)", path.display()));
    let want = expected();
    assert!(
        subcommands(&want).len() >= 10,
        "wardenctl --help lists too few subcommands"
    );
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "{} is out of date (first difference at line {}: {:?} where wardenctl prints {:?}); \
             regenerate it with `make build && docs/gen-cli.sh`",
            path.display(),
            line + 1,
            have.lines().nth(line).unwrap_or("<end of file>"),
            want.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}
