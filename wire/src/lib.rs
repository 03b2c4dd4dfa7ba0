//! The bytes that cross a socket or a file between Warden's helpers, written
//! and read in one place so both ends agree: the wsh request and response
//! ([`request`]) and a client's exchange with wshd ([`client`]), how the
//! end of that exchange becomes an exit code and a status file ([`exit`]),
//! descriptor passing ([`fdpass`]), the features file wshd writes beside
//! its socket ([`features`]), and the iomux framing, cursor file and job
//! files ([`iomux`]), and wardend's requests to a pre-started iomux-spawn
//! ([`zygote`]).
//!
//! Everything here is plain data and syscalls on borrowed descriptors; the
//! only unsafe code adopts descriptors the kernel hands over in `fdpass`.
#![deny(unsafe_code)]

pub mod client;
pub mod exit;
#[allow(unsafe_code)]
pub mod fdpass;
pub mod features;
pub mod iomux;
pub mod request;
pub mod zygote;
