//! The job's status and tails, left in SOCKET_DIR when it ends so that a
//! link arriving after iomux-spawn has gone still gets them (formats in
//! `wire::iomux`).

use std::path::Path;

use anyhow::{Context, Result};
use wire::iomux::{self, Stream, Tail, WaitStatus};

/// Clear what an earlier job in this directory left.
pub fn clear(dir: &Path) -> Result<()> {
    iomux::remove_job_files(dir).context("removing old job files")
}

/// Tails first, status last: a reader that finds `status` finds the tails.
pub fn write(dir: &Path, tails: &[(u32, Vec<u8>); 2], status: WaitStatus) -> Result<()> {
    for (stream, (offset, data)) in Stream::ALL.into_iter().zip(tails) {
        let tail = Tail {
            offset: *offset,
            data: data.clone(),
        };
        iomux::write_tail(dir, stream, &tail).context("writing job tail")?;
    }
    iomux::write_status_file(dir, status).context("writing job status")
}
