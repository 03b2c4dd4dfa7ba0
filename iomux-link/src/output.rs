//! Writing a stream out to our own stdout or stderr (blocking is fine: we
//! are the client), advancing the cursor by exactly what was written.

use std::io;
use std::os::fd::AsFd;

use wire::iomux::Stream;

use crate::cursor::StreamCursor;
use crate::signals;
use crate::Stop;

pub fn write_out(stream: Stream, mut data: &[u8], cursor: &mut StreamCursor) -> Result<(), Stop> {
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let fd = match stream {
        Stream::Stdout => stdout.as_fd(),
        Stream::Stderr => stderr.as_fd(),
    };
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => {
                cursor.wrote(n);
                data = &data[n..];
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(Stop::Failed(format!("writing {}: {e}", stream.name()))),
        }
        if signals::terminated() {
            return Err(Stop::Terminated);
        }
    }
    if signals::terminated() {
        return Err(Stop::Terminated);
    }
    Ok(())
}
