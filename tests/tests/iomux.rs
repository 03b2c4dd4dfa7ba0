//! iomux-spawn and iomux-link as plain processes (no container): framing,
//! exact streams and exit codes, lossless re-linking, late and slow links,
//! job files, usage errors, descriptor hygiene.
//!
//! Every job is gated (it waits for a file the test creates) where the test
//! needs the links in place first, so nothing depends on timing.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use tests::iomux_job::{alive, Link, Spawn, TempDir};
use tests::paths::bin;
use tests::torture::Rng;

/// Far longer than any of these jobs needs; only stops a hung test.
const DEADLINE: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Guards and helpers

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        sleep(Duration::from_millis(5));
    }
}

fn run(cmd: &mut Command) -> (ExitStatus, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `seq FIRST LAST` with a prefix on every line.
fn seq_lines(prefix: &str, first: u64, last: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for i in first..=last {
        v.extend_from_slice(format!("{prefix}{i}\n").as_bytes());
    }
    v
}

fn sockets_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock"))
        .collect()
}

fn connect_raw(dir: &Path, name: &str) -> UnixStream {
    UnixStream::connect(dir.join(name)).unwrap()
}

fn read_exact_vec(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).unwrap();
    v
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn one_link_gets_both_streams_exactly_and_the_exit_code() {
    let t = TempDir::new("one");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    // ~6.9 MB on stdout, ~2.3 MB on stderr, interleaved, then exit 3.
    let script = "seq 1 500000; seq 1 300000 | sed s/^/e/ >&2; seq 500001 1000000; exit 3";
    let spawn = Spawn::start(&job, script);
    let cursors = t.join("cursors");
    let mut link = Link::start(&job, Some(&cursors), "l", t.path());
    let st = link.wait();
    assert_eq!(
        st.code(),
        Some(3),
        "stderr: {}",
        link.err().chars().take(300).collect::<String>()
    );
    let want_out = seq_lines("", 1, 1_000_000);
    let want_err = seq_lines("e", 1, 300_000);
    assert!(
        link.out() == want_out,
        "stdout differs ({} bytes vs {})",
        link.out().len(),
        want_out.len()
    );
    assert!(fs::read(&link.err).unwrap() == want_err, "stderr differs");
    let mut saved = (want_out.len() as u32).to_be_bytes().to_vec();
    saved.extend_from_slice(&(want_err.len() as u32).to_be_bytes());
    assert_eq!(fs::read(&cursors).unwrap(), saved, "cursors file");
    spawn.wait_ok();
    assert_eq!(
        sockets_in(&job),
        Vec::<String>::new(),
        "sockets left behind"
    );
    assert_eq!(fs::read(job.join("status")).unwrap(), [0, 0, 3, 0]);
}

#[test]
fn job_killed_by_signal_makes_link_exit_255() {
    let t = TempDir::new("killed");
    let spawn = Spawn::start(t.path(), "echo before; kill -9 $$");
    let mut link = Link::start(t.path(), None, "l", t.path());
    let st = link.wait();
    assert_eq!(st.code(), Some(255));
    assert_eq!(link.out(), b"before\n");
    spawn.wait_ok();
    assert_eq!(fs::read(t.join("status")).unwrap(), [0, 0, 0, 9]);
}

#[test]
fn relinking_100_times_after_sigterm_loses_and_repeats_nothing() {
    let t = TempDir::new("relink");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let stop = t.join("stop");
    // About 30 KB/s: a round would need two seconds between links to lose
    // anything from the 65535-byte window.
    let script = format!(
        "i=0; while [ ! -e {stop} ]; do \
           j=0; while [ $j -lt 10 ]; do echo \"out $i $j .........................................\"; j=$((j+1)); done; \
           echo \"err $i\" >&2; i=$((i+1)); sleep 0.02; \
         done; echo last; exit 7",
        stop = stop.display()
    );
    let spawn = Spawn::start(&job, &script);
    let cursors = t.join("cursors");
    let mut rng = Rng(tests::torture::seed());
    let mut all_out = Vec::new();
    let mut all_err = Vec::new();
    for round in 0..100 {
        let mut link = Link::start(&job, Some(&cursors), &format!("r{round}"), t.path());
        sleep(Duration::from_micros(rng.below(40_000) as u64));
        kill(link.pid(), Signal::SIGTERM).unwrap();
        let st = link.wait();
        // Killed before its handler was installed it writes nothing; with
        // the handler it saves and exits 0.
        if st.signal() == Some(libc::SIGTERM) {
            assert!(link.out().is_empty());
        } else {
            assert_eq!(st.code(), Some(0), "round {round}: {}", link.err());
        }
        all_out.extend_from_slice(&link.out());
        all_err.extend_from_slice(&link.err().into_bytes());
    }
    fs::write(&stop, b"").unwrap();
    let mut link = Link::start(&job, Some(&cursors), "final", t.path());
    let st = link.wait();
    assert_eq!(st.code(), Some(7), "{}", link.err());
    all_out.extend_from_slice(&link.out());
    all_err.extend_from_slice(&link.err().into_bytes());
    spawn.wait_ok();

    // The concatenation must be the job's exact output.
    let text = String::from_utf8(all_out).unwrap();
    let mut lines = text.lines();
    let mut i = 0;
    let mut expect = String::new();
    loop {
        let first = lines.next().expect("stream ends early");
        if first == "last" {
            break;
        }
        for j in 0..10 {
            let want = format!("out {i} {j} .........................................");
            let got = if j == 0 { first } else { lines.next().unwrap() };
            assert_eq!(got, want, "line {i}/{j}");
        }
        expect.push_str(&format!("err {i}\n"));
        i += 1;
    }
    assert!(lines.next().is_none(), "bytes after the end");
    assert!(text.ends_with("last\n"));
    assert!(
        i > 10,
        "job produced too little ({i} rounds) to mean anything"
    );
    assert_eq!(String::from_utf8(all_err).unwrap(), expect);
}

#[test]
fn late_raw_client_gets_the_last_65535_bytes_and_their_offset() {
    let t = TempDir::new("late");
    let stop = t.join("stop");
    let total = 200_000usize;
    // 200000 bytes: lines "NNNNNNN\n" of 8 bytes.
    let script = format!(
        "seq 1000000 1024999 | head -c {total}; while [ ! -e {} ]; do sleep 0.01; done",
        stop.display()
    );
    let mut spawn = Spawn::start(t.path(), &script);
    let mut out = connect_raw(t.path(), "stdout.sock");
    let mut err = connect_raw(t.path(), "stderr.sock");
    let mut status = connect_raw(t.path(), "status.sock");
    spawn.read_active();
    // The first client sees everything from 0, so iomux-spawn has read all
    // 200000 bytes once it has delivered them.
    assert_eq!(read_exact_vec(&mut out, 4), [0, 0, 0, 0]);
    let all = read_exact_vec(&mut out, total);
    let mut expected = seq_lines("", 1_000_000, 1_024_999);
    expected.truncate(total);
    assert!(all == expected);

    let mut late = connect_raw(t.path(), "stdout.sock");
    let offset = u32::from_be_bytes(read_exact_vec(&mut late, 4).try_into().unwrap());
    assert_eq!(offset as usize, total - 65535);
    let window = read_exact_vec(&mut late, 65535);
    assert!(window == expected[total - 65535..]);

    fs::write(&stop, b"").unwrap();
    let mut rest = Vec::new();
    late.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "late client got {} extra bytes",
        rest.len()
    );
    let mut e = Vec::new();
    err.read_to_end(&mut e).unwrap();
    assert_eq!(e, [0, 0, 0, 0]);
    let mut s = Vec::new();
    status.read_to_end(&mut s).unwrap();
    assert_eq!(s, [0, 0, 0, 0], "exit 0 status word");
    out.read_to_end(&mut Vec::new()).unwrap();
    spawn.wait_ok();
}

#[test]
fn hundred_links_at_once_get_identical_full_output() {
    let t = TempDir::new("hundred");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let go = t.join("go");
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; seq 1 300000; echo done >&2; exit 5",
        go.display()
    );
    let spawn = Spawn::start(&job, &script);
    let mut links: Vec<Link> = (0..100)
        .map(|i| Link::start(&job, None, &format!("l{i}"), t.path()))
        .collect();
    wait_until("all links connected", || links.iter().all(Link::connected));
    fs::write(&go, b"").unwrap();
    let want = seq_lines("", 1, 300_000);
    for (i, l) in links.iter_mut().enumerate() {
        let st = l.wait();
        assert_eq!(st.code(), Some(5), "link {i}: {}", l.err());
        assert!(l.out() == want, "link {i} stdout differs");
        assert_eq!(l.err(), "done\n");
    }
    spawn.wait_ok();
}

#[test]
fn stopped_link_delays_nobody_and_never_loses_silently() {
    let t = TempDir::new("stopped");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let go = t.join("go");
    // ~57 MB: more than a stopped client's socket buffer plus the window.
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; seq 1 7000000; exit 5",
        go.display()
    );
    let spawn = Spawn::start(&job, &script);
    let mut stopped = Link::start(&job, None, "stopped", t.path());
    let mut others: Vec<Link> = (0..2)
        .map(|i| Link::start(&job, None, &format!("o{i}"), t.path()))
        .collect();
    wait_until("links connected", || {
        stopped.connected() && others.iter().all(Link::connected)
    });
    kill(stopped.pid(), Signal::SIGSTOP).unwrap();
    fs::write(&go, b"").unwrap();
    let want = seq_lines("", 1, 7_000_000);
    for l in others.iter_mut() {
        let st = l.wait();
        assert_eq!(st.code(), Some(5), "{}", l.err());
        assert!(l.out() == want, "a running link lost bytes");
    }
    // The job is over (its status file is written once it has exited and
    // its output is drained) while the stopped link is still stopped.
    assert!(job.join("status").exists(), "job not finished");
    let stat = fs::read_to_string(format!("/proc/{}/stat", stopped.pid())).unwrap();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(state, "T", "the link should still be stopped");

    kill(stopped.pid(), Signal::SIGCONT).unwrap();
    let st = stopped.wait();
    let got = stopped.out();
    match st.code() {
        Some(5) => assert!(got == want, "completed but output differs"),
        Some(255) => {
            assert!(stopped.err().contains("fell behind"), "{}", stopped.err());
            assert!(
                got.len() < want.len() && got[..] == want[..got.len()],
                "not a clean prefix"
            );
        }
        other => panic!("stopped link exited {other:?}: {}", stopped.err()),
    }
    spawn.wait_ok();
}

#[test]
fn link_cut_off_for_falling_behind_says_so() {
    let t = TempDir::new("behind");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let go = t.join("go");
    // A small client buffer (the spawn's test knob) so that 8 MB written
    // while the link is stopped certainly overtake it.
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; seq 1 1000000; echo job env: ${{IOMUX_SPAWN_CLIENT_BUFFER:-unset}}; exit 5",
        go.display()
    );
    let spawn = Spawn::start_with(&job, &script, &[("IOMUX_SPAWN_CLIENT_BUFFER", "131072")]);
    let mut link = Link::start(&job, Some(&t.join("cursors")), "l", t.path());
    wait_until("link connected", || link.connected());
    kill(link.pid(), Signal::SIGSTOP).unwrap();
    fs::write(&go, b"").unwrap();
    wait_until("job finished", || job.join("status").exists());
    kill(link.pid(), Signal::SIGCONT).unwrap();
    let st = link.wait();
    assert_eq!(st.code(), Some(255));
    assert!(link.err().contains("stdout fell behind"), "{}", link.err());
    let mut want = seq_lines("", 1, 1_000_000);
    want.extend_from_slice(b"job env: unset\n");
    let got = link.out();
    assert!(
        got.len() < want.len() && got[..] == want[..got.len()],
        "not a clean prefix"
    );
    // The cursors record exactly what was written.
    let saved = fs::read(t.join("cursors")).unwrap();
    assert_eq!(saved[..4], (got.len() as u32).to_be_bytes());
    spawn.wait_ok();
    // The tail file holds the job's last bytes, including the knob's absence.
    let tail = fs::read(job.join("stdout.tail")).unwrap();
    assert!(tail.ends_with(b"job env: unset\n"));
}

#[test]
fn finished_job_without_link_gives_status_and_tail_from_files() {
    let t = TempDir::new("files");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let go = t.join("go");
    // 100000 bytes, then (after the link is gone) 30000 more, exit 4.
    let script = format!(
        "seq 1000000 1012499; while [ ! -e {} ]; do sleep 0.01; done; seq 2000000 2003749; exit 4",
        go.display()
    );
    let first = seq_lines("", 1_000_000, 1_012_499);
    let second = seq_lines("", 2_000_000, 2_003_749);
    assert_eq!((first.len(), second.len()), (100_000, 30_000));
    let spawn = Spawn::start(&job, &script);
    let cursors = t.join("cursors");
    let mut link = Link::start(&job, Some(&cursors), "first", t.path());
    wait_until("first part delivered", || {
        fs::metadata(&link.out).map(|m| m.len()).unwrap_or(0) == 100_000
    });
    kill(link.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(link.wait().code(), Some(0));
    fs::write(&go, b"").unwrap();
    spawn.wait_ok();
    assert_eq!(sockets_in(&job), Vec::<String>::new());

    // The job ended with nobody attached; the cursors take it from there.
    let mut relink = Link::start(&job, Some(&cursors), "second", t.path());
    assert_eq!(relink.wait().code(), Some(4), "{}", relink.err());
    assert!(link.out() == first);
    assert!(relink.out() == second, "tail after the cursor differs");
    // Without cursors: the whole kept tail.
    let mut plain = Link::start(&job, None, "plain", t.path());
    assert_eq!(plain.wait().code(), Some(4));
    let all = [first.clone(), second.clone()].concat();
    assert!(plain.out() == all[all.len() - 65535..]);
    // A cursor older than the tail: the loss is reported, not hidden.
    fs::write(&cursors, [0u8; 8]).unwrap();
    let mut behind = Link::start(&job, Some(&cursors), "behind", t.path());
    assert_eq!(behind.wait().code(), Some(255));
    assert!(behind.err().contains("fell behind"), "{}", behind.err());
    assert!(behind.out().is_empty());
}

/// How many sockets process `pid` has open.
fn sockets_open(pid: u32) -> usize {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// Kills and reaps a process started by hand, whatever happens to the test.
struct Reaped(Option<std::process::Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn megabyte_writes_reach_late_and_relinking_links_exactly() {
    let t = TempDir::new("bigwrite");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let mut rng = Rng(tests::torture::seed());
    // Random bytes, so that a chunk misplaced by any amount shows.
    let first = rng.bytes(3 << 20);
    let second = rng.bytes((2 << 20) + 12_345);
    fs::write(t.join("first"), &first).unwrap();
    fs::write(t.join("second"), &second).unwrap();
    let (go, more) = (t.join("go"), t.join("more"));
    // Each dd hands its whole file to one write(2): more than the job's
    // pipe and iomux-spawn's ring hold at once.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.01; done; dd if={f} bs=8M count=1 status=none; \
         while [ ! -e {more} ]; do sleep 0.01; done; dd if={s} bs=8M count=1 status=none; exit 3",
        go = go.display(),
        more = more.display(),
        f = t.join("first").display(),
        s = t.join("second").display(),
    );
    let spawn = Spawn::start(&job, &script);
    // A link writing to a pipe the test reads, there from the start.
    let mut piped = Reaped(Some(
        Command::new(bin("iomux-link"))
            .arg(&job)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    ));
    let mut piped_out = piped.0.as_mut().unwrap().stdout.take().unwrap();
    let piped_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        piped_out.read_to_end(&mut v).map(|_| v)
    });
    let cursors = t.join("cursors");
    let mut link = Link::start(&job, Some(&cursors), "first", t.path());
    let piped_pid = piped.0.as_ref().unwrap().id();
    wait_until("links connected", || {
        link.connected() && sockets_open(piped_pid) >= 3
    });
    fs::write(&go, b"").unwrap();
    wait_until("first write delivered", || {
        fs::metadata(&link.out).map(|m| m.len()).unwrap_or(0) == first.len() as u64
    });
    kill(link.pid(), Signal::SIGTERM).unwrap();
    assert_eq!(link.wait().code(), Some(0), "{}", link.err());
    assert!(link.out() == first, "first link's bytes differ");
    let mut saved = (first.len() as u32).to_be_bytes().to_vec();
    saved.extend_from_slice(&[0; 4]);
    assert_eq!(fs::read(&cursors).unwrap(), saved);

    // A late client gets exactly the last 65535 bytes of the big write.
    let mut late = connect_raw(&job, "stdout.sock");
    let offset = u32::from_be_bytes(read_exact_vec(&mut late, 4).try_into().unwrap());
    assert_eq!(offset as usize, first.len() - 65535);
    let window = read_exact_vec(&mut late, 65535);
    assert!(window == first[first.len() - 65535..], "window differs");
    let late_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        late.read_to_end(&mut v).map(|_| v)
    });

    // Re-link from the cursors, onto an O_APPEND file (which takes no
    // splice: the link must copy instead).
    let second_out = t.join("second.out");
    let appending = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&second_out)
        .unwrap();
    let mut relink = Reaped(Some(
        Command::new(bin("iomux-link"))
            .arg("-w")
            .arg(&cursors)
            .arg(&job)
            .stdin(Stdio::null())
            .stdout(appending)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    ));
    // Connected before the job goes on, else a job quicker than the
    // link's start ends first and the link finds its sockets gone.
    let relink_pid = relink.0.as_ref().unwrap().id();
    wait_until("re-link connected", || sockets_open(relink_pid) >= 3);
    fs::write(&more, b"").unwrap();
    let st = tests::iomux_job::wait_deadline(relink.0.as_mut().unwrap(), DEADLINE);
    relink.0 = None;
    assert_eq!(st.code(), Some(3));
    assert!(
        fs::read(&second_out).unwrap() == second,
        "re-linked bytes differ"
    );
    let mut saved = ((first.len() + second.len()) as u32).to_be_bytes().to_vec();
    saved.extend_from_slice(&[0; 4]);
    assert_eq!(fs::read(&cursors).unwrap(), saved);

    let rest = late_reader.join().unwrap().unwrap();
    assert!(
        rest == second,
        "late client: {} bytes after the window",
        rest.len()
    );
    let st = tests::iomux_job::wait_deadline(piped.0.as_mut().unwrap(), DEADLINE);
    piped.0 = None;
    assert_eq!(st.code(), Some(3));
    let all = [first.clone(), second.clone()].concat();
    assert!(
        piped_reader.join().unwrap().unwrap() == all,
        "piped link's bytes differ"
    );
    spawn.wait_ok();
    // The tail file is the window too.
    let tail = fs::read(job.join("stdout.tail")).unwrap();
    assert_eq!(tail[..4], ((all.len() - 65535) as u32).to_be_bytes());
    assert!(tail[4..] == all[all.len() - 65535..], "tail file differs");
}

#[test]
fn usage_and_directory_errors() {
    let t = TempDir::new("usage");
    let one_line = |s: &str| s.lines().count() == 1;

    let (st, err) = run(&mut Command::new(bin("iomux-spawn")));
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("Usage"), "{err}");
    let (st, _) = run(Command::new(bin("iomux-spawn")).arg(t.path()));
    assert_eq!(st.code(), Some(1));
    let (st, err) = run(
        Command::new(bin("iomux-spawn")).args([t.join("missing").as_os_str(), "true".as_ref()])
    );
    assert_eq!(st.code(), Some(1));
    assert!(one_line(&err) && err.contains("missing"), "{err}");

    let link = || Command::new(bin("iomux-link"));
    let (st, err) = run(&mut link());
    assert_eq!(st.code(), Some(255));
    assert!(one_line(&err) && err.contains("Usage"), "{err}");
    let (st, _) = run(link().args(["a", "b"]));
    assert_eq!(st.code(), Some(255));
    let (st, _) = run(link().args(["-x", "a"]));
    assert_eq!(st.code(), Some(255));
    let (st, err) = run(link().arg(t.join("missing")));
    assert_eq!(st.code(), Some(255));
    assert!(one_line(&err) && err.contains("missing"), "{err}");
    let (st, err) = run(link().arg(t.path()));
    assert_eq!(st.code(), Some(255));
    assert!(
        one_line(&err) && err.contains("not an iomux job directory"),
        "{err}"
    );
    let bad = t.join("cursors");
    fs::write(&bad, [1, 2, 3]).unwrap();
    let (st, err) = run(link().arg("-w").arg(&bad).arg(t.path()));
    assert_eq!(st.code(), Some(255));
    assert!(one_line(&err) && err.contains("cursors"), "{err}");
    assert_eq!(
        fs::read(&bad).unwrap(),
        [1, 2, 3],
        "corrupt file left as it was"
    );
}

#[test]
fn job_sees_only_descriptors_0_1_2() {
    let t = TempDir::new("fds");
    // `; true` keeps sh from exec'ing ls, so $$ is the shell itself.
    let spawn = Spawn::start(t.path(), "ls /proc/$$/fd; true");
    let mut link = Link::start(t.path(), None, "l", t.path());
    assert_eq!(link.wait().code(), Some(0), "{}", link.err());
    assert_eq!(String::from_utf8(link.out()).unwrap(), "0\n1\n2\n");
    spawn.wait_ok();
}

#[test]
fn job_is_held_until_each_socket_has_a_client_and_dies_with_iomux_spawn() {
    let t = TempDir::new("held");
    let marker = t.join("ran");
    let script = format!("touch {}; exec sleep 1000", marker.display());
    let mut spawn = Spawn::start(t.path(), &script);
    let job = spawn.job_pid;
    let _out = connect_raw(t.path(), "stdout.sock");
    let _err = connect_raw(t.path(), "stderr.sock");
    // Two of three sockets: the job must still be waiting. Give it ample
    // time to misbehave; this is not a speed assertion.
    sleep(Duration::from_millis(200));
    assert!(!marker.exists(), "job ran before status.sock had a client");
    let _status = connect_raw(t.path(), "status.sock");
    spawn.read_active();
    wait_until("job runs", || marker.exists());
    // iomux-spawn dies: PDEATHSIG takes the job with it.
    let mut child = spawn.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("job killed", || !alive(job) || is_zombie(job));
}

/// A job whose parent died is reparented; until its new parent reaps it, it
/// shows as a zombie.
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}
