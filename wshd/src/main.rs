//! wshd: start a container (namespaces, hooks, pivot_root) and serve wsh
//! requests inside it as its pid 1. See the module docs of [`startup`],
//! [`resume`] and [`serve`] for the phases.
#![deny(unsafe_code)]

mod args;
#[allow(unsafe_code)]
mod dispositions;
#[allow(unsafe_code)]
mod fds;
mod hooks;
mod plan;
mod resume;
mod serve;
#[allow(unsafe_code)]
mod spawn;
mod startup;
mod users;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mode = match args::parse(std::env::args_os().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("wshd: {e}\n{}", args::USAGE);
            return ExitCode::from(1);
        }
    };
    let result = match mode {
        args::Mode::Help => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        args::Mode::Start(a) => startup::start(&a),
        args::Mode::Continue(a) => resume::resume(&a).map(|never| match never {}),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wshd: {e:#}");
            ExitCode::from(1)
        }
    }
}
