//! Warden's host-side helpers, compatible with the C tools of
//! cloudfoundry/warden's `warden/src/`: `oom` (wait for a memory cgroup's
//! OOM), `repquota` (per-uid disk quota usage for the Ruby server to parse)
//! and `closefds` (exec a command with nothing open but 0-2). Each binary in
//! `src/bin/` is glue; the contract of each is in its module here:
//! [`oom`], [`quota`] with [`mounts`], [`fds`].
#![deny(unsafe_code)]

pub mod failure;
#[allow(unsafe_code)]
pub mod fds;
pub mod mounts;
pub mod numbers;
pub mod oom;
pub mod quota;
