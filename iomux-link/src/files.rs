//! A job that ended with no link attached: its status and tails are files
//! in SOCKET_DIR (formats in `wire::iomux`), read with the same cursor rules
//! as the live sockets. Also used after a live run against our iomux-spawn,
//! to check that nothing is missing at the end of each stream.

use std::path::Path;

use wire::iomux::{self, Stream, WaitStatus};

use crate::cursor::StreamCursor;
use crate::output::write_out;
use crate::Stop;

/// The job's status, if it has ended and left its files here.
pub fn status(dir: &Path) -> Result<Option<WaitStatus>, Stop> {
    iomux::read_status_file(dir).map_err(|e| Stop::Failed(e.to_string()))
}

/// Write out what each tail holds beyond the cursors. Call only once the
/// status file exists: the tails are written before it.
pub fn drain_tails(dir: &Path, cursors: &mut [StreamCursor; 2]) -> Result<(), Stop> {
    for stream in Stream::ALL {
        let path = dir.join(stream.tail_name());
        let tail = iomux::read_tail(dir, stream)
            .map_err(|e| Stop::Failed(e.to_string()))?
            .ok_or_else(|| {
                Stop::Failed(format!(
                    "{}: missing although the job's status is there",
                    path.display()
                ))
            })?;
        let cursor = &mut cursors[stream.index()];
        let rest = cursor
            .rest_of_tail(&tail)
            .map_err(|g| Stop::FellBehind(stream, g))?;
        write_out(stream, rest, cursor)?;
    }
    Ok(())
}
