//! `warden`: the interactive Warden client, a drop-in for the Ruby REPL's
//! `bin/warden`. See `docs/cli.md` and the modules: [`cli`] (flags),
//! [`repl`] (the loop), [`exec`] (one command), [`args`] (words →
//! request), [`print`] (response → lines), [`help`], [`words`], [`client`].

#![deny(unsafe_code)]

mod args;
mod cli;
mod client;
mod exec;
mod help;
mod print;
mod repl;
mod words;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use cli::Invocation;

fn main() -> ExitCode {
    // Man page and completions for `make install` (clidoc).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = clidoc::dispatch(&args, cli::command) {
        return code;
    }
    let code = match cli::parse(args.into_iter().skip(1)) {
        Err(cli::UsageError(message)) => {
            eprintln!("warden: {message}\n{}", help::SHORT_USAGE);
            2
        }
        Ok(Invocation::Help) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(help::usage().as_bytes());
            let _ = out.flush();
            0
        }
        Ok(Invocation::Repl(opts)) => {
            if io::stdin().is_terminal() {
                repl::interactive(&opts)
            } else {
                repl::batch(&opts)
            }
        }
        Ok(Invocation::Once(opts, words)) => once(&opts, &words),
    };
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}

/// `warden -- COMMAND ARGS`: runs it; exits with the job's exit status
/// for run, stream and link, 0 for anything else that worked, 1 on error.
fn once(opts: &repl::Options, words: &[Vec<u8>]) -> i32 {
    let mut client = client::Client::new(&opts.socket, opts.trace);
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    match exec::execute(&mut client, words, opts.trace, &mut out, &mut err) {
        Ok(done) => done.exit_status.map_or(0, |s| s as i32),
        Err(f) => {
            let _ = f.report(&mut err);
            1
        }
    }
}
