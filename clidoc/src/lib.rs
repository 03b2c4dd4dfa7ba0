//! Man pages and shell completions for a binary, made from its own clap
//! `Command` so they cannot drift from `--help`. Each front end (wardenctl,
//! wardend, warden) calls [`dispatch`] before it parses its arguments:
//!
//! ```text
//! PROG __generate man DIR                 DIR/PROG.1 and DIR/PROG-SUB.1 for every subcommand
//! PROG __generate completions SHELL DIR   bash: DIR/PROG, zsh: DIR/_PROG, fish: DIR/PROG.fish
//! ```
//!
//! Every file written is printed on stdout, one path a line, so that
//! `scripts/install.sh` records exactly what it installs. The argument is
//! hidden (it is for packaging, not for users) and comes first, so it never
//! collides with a subcommand or a container handle.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

/// The hidden first argument.
pub const ARG: &str = "__generate";

/// The shells completions are made for, by the names `dispatch` takes.
pub const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// Runs `__generate ...` when `args` (the whole command line, program name
/// first) asks for it; None otherwise.
pub fn dispatch(args: &[OsString], command: impl FnOnce() -> clap::Command) -> Option<ExitCode> {
    if args.get(1)?.to_str()? != ARG {
        return None;
    }
    let rest: Vec<&str> = match args[2..].iter().map(|a| a.to_str()).collect() {
        Some(rest) => rest,
        None => return Some(usage("arguments must be UTF-8")),
    };
    let result = match rest.as_slice() {
        ["man", dir] => man_pages(command(), Path::new(dir)),
        ["completions", shell, dir] => match parse_shell(shell) {
            Some(shell) => completion(command(), shell, Path::new(dir)).map(|p| vec![p]),
            None => return Some(usage(&format!("unknown shell {shell:?}"))),
        },
        _ => return Some(usage("bad arguments")),
    };
    Some(match result {
        Ok(files) => {
            let mut out = io::stdout().lock();
            for file in files {
                if writeln!(out, "{}", file.display()).is_err() {
                    return Some(ExitCode::from(1));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{ARG}: {e}");
            ExitCode::from(1)
        }
    })
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "{ARG}: {why}; usage: {ARG} man DIR | {ARG} completions {} DIR",
        SHELLS.join("|")
    );
    ExitCode::from(2)
}

fn parse_shell(name: &str) -> Option<Shell> {
    match name {
        "bash" => Some(Shell::Bash),
        "zsh" => Some(Shell::Zsh),
        "fish" => Some(Shell::Fish),
        _ => None,
    }
}

/// One page per command and visible subcommand (`PROG-SUB-SUBSUB.1`);
/// returns the files written.
pub fn man_pages(command: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    page(command, dir, &mut written)?;
    Ok(written)
}

fn page(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub.clone(), dir, written)?;
    }
    let man = clap_mangen::Man::new(command);
    let path = dir.join(man.get_filename());
    let mut file = create(&path)?;
    man.render(&mut file)
        .and_then(|()| file.flush())
        .map_err(|e| named(&path, e))?;
    written.push(path);
    Ok(())
}

/// The completion script under the name its shell's loader looks for
/// (bash-completion loads `completions/PROG`, zsh `_PROG` on $fpath, fish
/// `PROG.fish`); returns the file written.
pub fn completion(mut command: clap::Command, shell: Shell, dir: &Path) -> io::Result<PathBuf> {
    let name = command.get_name().to_string();
    let file_name = match shell {
        Shell::Bash => name.clone(),
        Shell::Zsh => format!("_{name}"),
        _ => format!("{name}.fish"),
    };
    let path = dir.join(file_name);
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut buf);
    let mut file = create(&path)?;
    file.write_all(&buf)
        .and_then(|()| file.flush())
        .map_err(|e| named(&path, e))?;
    Ok(path)
}

fn create(path: &Path) -> io::Result<File> {
    File::create(path).map_err(|e| named(path, e))
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn demo() -> Command {
        Command::new("demo")
            .about("A demo")
            .arg(Arg::new("depot").long("depot").help("Where"))
            .subcommand(Command::new("create").about("Make one"))
            .subcommand(Command::new("secret").hide(true))
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("clidoc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_page_per_visible_command() {
        let dir = tempdir("man");
        let mut files = man_pages(demo(), &dir).unwrap();
        files.sort();
        assert_eq!(files, vec![dir.join("demo-create.1"), dir.join("demo.1")]);
        let top = std::fs::read_to_string(dir.join("demo.1")).unwrap();
        assert!(
            top.starts_with(".ie") || top.contains("\n.TH demo 1"),
            "{top}"
        );
        assert!(top.contains("depot"), "{top}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn completion_files_have_the_loaders_names() {
        let dir = tempdir("comp");
        for (shell, name) in [
            (Shell::Bash, "demo"),
            (Shell::Zsh, "_demo"),
            (Shell::Fish, "demo.fish"),
        ] {
            let path = completion(demo(), shell, &dir).unwrap();
            assert_eq!(path, dir.join(name));
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains("create"), "{shell}: {text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_hidden_argument_is_taken() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(dispatch(&args(&["demo", "create"]), demo).is_none());
        assert!(dispatch(&args(&["demo"]), demo).is_none());
        assert_eq!(
            dispatch(&args(&["demo", ARG, "completions", "tcsh", "/x"]), demo),
            Some(ExitCode::from(2))
        );
    }
}
