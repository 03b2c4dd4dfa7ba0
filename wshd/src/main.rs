//! wshd: start a container (namespaces, hooks, pivot_root) and serve wsh
//! requests inside it as its pid 1. See the module docs of [`startup`],
//! [`resume`] and [`serve`] for the phases.
#![deny(unsafe_code)]
// See `entry`: the C `main` below replaces the Rust runtime's start-up.
#![cfg_attr(not(test), no_main)]

mod args;
#[allow(unsafe_code)]
mod confine;
#[allow(unsafe_code)]
mod dispositions;
#[allow(unsafe_code)]
mod entry;
#[allow(unsafe_code)]
mod fds;
mod hooks;
mod plan;
mod profile;
mod resume;
#[allow(unsafe_code)]
mod seccomp;
mod serve;
#[allow(unsafe_code)]
mod spawn;
mod startup;
mod users;

entry::c_main!(run);

/// The whole program; its exit code.
fn run() -> libc::c_int {
    let mode = match args::parse(std::env::args_os().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("wshd: {e}\n{}", args::USAGE);
            return 1;
        }
    };
    let result = match mode {
        args::Mode::Help => {
            print!("{}", args::USAGE);
            return 0;
        }
        args::Mode::Start(a) => startup::start(&a),
        args::Mode::Continue(a) => resume::resume(&a).map(|never| match never {}),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wshd: {e:#}");
            1
        }
    }
}
