//! docs/cli.md is wardenctl's and warden's help as the built binaries
//! print it: the same text docs/gen-cli.sh writes, rebuilt here from
//! `wardenctl --help` and `wardenctl SUB --help` for every subcommand
//! listed (and `wardenctl SUB SUBSUB --help` for nested ones), then `warden --help`, `warden -- help` and `warden -- CMD
//! --help` for every command listed; the wardenctl part ends with the
//! --json schemas (docs/schema/). Each part is checked on its own (the
//! file is split at the warden part's title), so either needs only its own
//! binary. Needs no root.

use std::fs;
use std::process::Command;

use tests::paths;

/// The help text, from an empty environment as gen-cli.sh runs it (clap
/// prints the values of the WARDEN_* variables it reads).
fn help(args: &[&str]) -> String {
    help_of("wardenctl", args)
}

fn help_of(binary: &str, args: &[&str]) -> String {
    let w = paths::bin(binary);
    let out = Command::new(&w)
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", w.display()));
    assert!(
        out.status.success(),
        "{binary} {args:?} exited with {}: {}",
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

fn wardenctl_expected() -> String {
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
    doc.push_str(&section("wardend", &help_of("wardend", &["--help"])));
    doc.push_str(&json_part());
    doc
}

/// The --json schemas: docs/schema/README.md, then every COMMAND.json in
/// byte order of the names, as gen-cli.sh writes them.
fn json_part() -> String {
    let dir = paths::workspace().join("docs/schema");
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let mut doc = format!("\n{}\n", read("README.md").trim_end_matches('\n'));
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 14, "too few schemas: {names:?}");
    for name in names {
        doc.push_str(&format!(
            "\n### wardenctl {} --json\n\n```json\n{}\n```\n",
            name.trim_end_matches(".json"),
            read(&name).trim_end_matches('\n')
        ));
    }
    doc
}

#[test]
fn subcommands_are_read_from_the_command_list() {
    let top =
        "About\n\nCommands:\n  setup   Prepare\n  copy-in  Copy\n  help  Print\n\nOptions:\n  -h\n";
    assert_eq!(subcommands(top), ["setup", "copy-in"]);
}

/// The title the warden part of docs/cli.md begins with.
const WARDEN_TITLE: &str = "\n# warden (the REPL) command-line reference\n";

/// warden's output, from an empty environment as gen-cli.sh runs it.
fn warden_help(args: &[&str]) -> String {
    help_of("warden", args)
}

/// The commands `warden -- help` lists (one per tab-indented line), but
/// `help`.
fn warden_commands(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_string)
        .collect()
}

fn warden_expected() -> String {
    let list = warden_help(&["--", "help"]);
    let mut doc = format!(
        "{WARDEN_TITLE}\n\
         Generated from warden's own `--help`, `help` and `CMD --help` by `docs/gen-cli.sh`; do not edit by hand.\n\
         How it behaves (arguments, output, exit status, history): [warden.md](warden.md).\n"
    );
    doc.push_str(&section("warden", &warden_help(&["--help"])));
    doc.push_str(&section("warden help", &list));
    for c in warden_commands(&list) {
        doc.push_str(&section(
            &format!("warden {c} --help"),
            &warden_help(&["--", &c, "--help"]),
        ));
    }
    doc
}

/// docs/cli.md, split into the wardenctl part and the warden part.
fn parts() -> (String, String) {
    let path = paths::workspace().join("docs/cli.md");
    let have = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e} (run docs/gen-cli.sh)", path.display()));
    match have.find(WARDEN_TITLE) {
        Some(at) => (have[..at].to_string(), have[at..].to_string()),
        None => (have, String::new()),
    }
}

#[test]
fn warden_commands_are_read_from_the_command_list() {
    let list = "\n\tcopy_in  Copy.\n\tping     Ping.\n\thelp     Show help.\n\nUse --help.\n";
    assert_eq!(warden_commands(list), ["copy_in", "ping"]);
}

#[test]
fn warden_reference_is_current() {
    let (_, have) = parts();
    let want = warden_expected();
    assert!(
        warden_commands(&warden_help(&["--", "help"])).len() >= 19,
        "warden -- help lists too few commands"
    );
    compare("the warden part of docs/cli.md", &have, &want, "warden");
}

#[test]
fn cli_reference_is_current() {
    let (have, _) = parts();
    let want = wardenctl_expected();
    assert!(
        subcommands(&want).len() >= 10,
        "wardenctl --help lists too few subcommands"
    );
    compare(
        "the wardenctl part of docs/cli.md",
        &have,
        &want,
        "wardenctl",
    );
}

fn compare(what: &str, have: &str, want: &str, binary: &str) {
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "{what} is out of date (first difference at line {}: {:?} where {binary} prints {:?}); \
             regenerate it with `make build && docs/gen-cli.sh`",
            line + 1,
            have.lines().nth(line).unwrap_or("<end of file>"),
            want.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}
