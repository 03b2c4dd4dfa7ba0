//! Shared helpers for the black-box tests: where the binaries and the test
//! rootfs are ([`paths`]), a throw-away container run by the real wshd
//! ([`container`]), and a raw wsh-protocol client for requests the real wsh
//! would never send ([`client`]), and network namespaces of the test's own
//! ([`netns`]).
#![deny(unsafe_code)]

pub mod client;
#[allow(unsafe_code)]
pub mod container;
pub mod ctl;
pub mod iomux_job;
pub mod netns;
pub mod paths;
pub mod torture;
pub mod wardend;

/// True when running as root; otherwise prints why the test skips.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("{test}: skipped, needs root (namespaces, mounts)");
        false
    }
}
