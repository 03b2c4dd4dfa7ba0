//! wsh in tty mode, under a pseudo-terminal the test opens: the remote
//! process sees a terminal of the test's size, typing reaches it at once,
//! SIGWINCH carries a new size over, and the local terminal mode is
//! restored when wsh exits.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::tcgetattr;
use nix::unistd::Pid;
use tests::container::Container;

macro_rules! root_only {
    () => {
        if !tests::require_root(module_path!()) {
            return;
        }
    };
}

/// wsh must not outlive a failed assertion (it would hold the test's
/// terminal and the container).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read from the pty master until `needle` shows up or 10 s pass.
fn read_until(master: &OwnedFd, screen: &mut Vec<u8>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(screen).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out waiting for {needle:?}; screen so far: {:?}",
            String::from_utf8_lossy(screen)
        );
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        if poll(&mut fds, PollTimeout::from(ms)).unwrap() == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => panic!(
                "terminal closed before {needle:?}: {:?}",
                String::from_utf8_lossy(screen)
            ),
            Ok(n) => screen.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("read master: {e}"),
        }
    }
}

#[test]
fn wsh_under_a_pty_gets_a_terminal_of_its_size_and_answers_typing_at_once() {
    root_only!();
    let c = Container::start();
    let size = Winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let before = tcgetattr(&pty.slave).unwrap();
    let mut cmd = c.wsh_command(&[
        "--user",
        "vcap",
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo IS-A-TTY; stty size; read x; stty size; echo TTY-$x; exit 7",
    ]);
    cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    let mut wsh = KillOnDrop(cmd.spawn().unwrap());
    let wsh = &mut wsh.0;
    let mut screen = Vec::new();
    read_until(&pty.master, &mut screen, "IS-A-TTY");
    read_until(&pty.master, &mut screen, "33 101");

    // A new size, announced the way a terminal emulator does, then typing:
    // the size must be across before the line is read.
    let bigger = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a live struct.
    let rv = unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCSWINSZ, &bigger) };
    assert_eq!(rv, 0);
    kill(Pid::from_raw(wsh.id() as i32), Signal::SIGWINCH).unwrap();
    std::fs::File::from(pty.master.try_clone().unwrap())
        .write_all(b"hello\n")
        .unwrap();
    // No further keypress: the answer and wsh's exit must come on their own.
    read_until(&pty.master, &mut screen, "TTY-hello");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = wsh.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = wsh.kill();
            panic!("wsh did not exit after the process did");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(7),
        "{:?}",
        String::from_utf8_lossy(&screen)
    );
    let text = String::from_utf8_lossy(&screen);
    assert!(text.contains("40 120"), "new size not seen: {text:?}");
    let after = tcgetattr(&pty.slave).unwrap();
    assert_eq!(
        (
            after.input_flags,
            after.output_flags,
            after.local_flags,
            after.control_flags
        ),
        (
            before.input_flags,
            before.output_flags,
            before.local_flags,
            before.control_flags
        ),
        "terminal mode not restored"
    );
    c.destroy().unwrap();
}
