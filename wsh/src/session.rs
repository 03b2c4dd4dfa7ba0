//! The request wsh's options describe; the exchange itself is
//! [`wire::client`], shared with iomux-spawn.

use wire::client::{Job, SessionError};
use wire::request::Request;

use crate::args::Options;

/// Build the request the options and the environment describe.
pub fn build_request(opts: &Options, tty: bool) -> Result<Request, SessionError> {
    wire::client::build_request(&Job {
        argv: &opts.argv,
        user: opts.user.as_deref(),
        env: &opts.env,
        dir: opts.dir.as_deref(),
        tty,
        v2: opts.v2,
    })
}
