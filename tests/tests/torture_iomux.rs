//! Torture of iomux-link's re-linking: one long job, and round after round
//! a link that is started and killed at a random moment (SIGTERM, SIGINT or
//! SIGKILL), the next one continuing from the cursors file. The outputs of
//! the links that saved their cursors, concatenated, must be the job's
//! exact output: nothing lost, nothing repeated.
//!
//! After every round the cursors file is checked against what the links
//! have delivered so far: a link that saved (exit 0) advanced it exactly by
//! what it wrote; a link killed outright (SIGKILL, or a signal before its
//! handler was in place) left it as it was, and its output does not count,
//! since the next link starts again from the saved position.
//!
//! Scale: `TORTURE_SCALE` unset runs 100 rounds (CI); `full` (`make
//! torture`) 1,000; a number that many. `TORTURE_SEED` (hex) replays the
//! choice of signals and delays.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use tests::iomux_job::{alive, wait_deadline, Link, Spawn, TempDir};
use tests::torture::{self, Rng, SeedOnFailure};

/// Far longer than any round needs; only stops a hung test.
const DEADLINE: Duration = Duration::from_secs(120);

fn rounds() -> usize {
    torture::scale(100, 1_000)
}

fn cursors_of(path: &Path) -> (u32, u32) {
    match fs::read(path) {
        Ok(b) => {
            let c = wire::iomux::Cursors::decode(&b)
                .unwrap_or_else(|| panic!("cursors file of {} bytes", b.len()));
            (c.stdout, c.stderr)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

#[test]
fn a_thousand_kill_and_relink_rounds_give_the_exact_output() {
    let seed = torture::seed();
    let _report = SeedOnFailure {
        test: "torture_iomux",
        seed,
    };
    let rounds = rounds();
    eprintln!("torture_iomux: {rounds} rounds, TORTURE_SEED={seed:x}");
    let mut rng = Rng(seed);
    let t = TempDir::new("torture");
    let job = t.join("job");
    fs::create_dir(&job).unwrap();
    let stop = t.join("stop");
    // About 50 KB/s on stdout and a line per batch on stderr: a round's gap
    // stays far inside the 65535-byte window.
    let script = format!(
        "i=0; while [ ! -e {stop} ]; do \
           j=0; while [ $j -lt 10 ]; do echo \"out $i $j ......................................\"; j=$((j+1)); done; \
           echo \"err $i\" >&2; i=$((i+1)); sleep 0.01; \
         done; echo last; echo 'err last' >&2; exit 7",
        stop = stop.display()
    );
    let spawn = Spawn::start(&job, &script);
    let cursors = t.join("cursors");
    let (mut all_out, mut all_err) = (Vec::new(), Vec::new());
    let mut counts = [0usize; 3];
    let started = Instant::now();
    for round in 0..=rounds {
        let last = round == rounds;
        if last {
            fs::write(&stop, b"").unwrap();
        }
        let before = cursors_of(&cursors);
        let mut link = Link::start(&job, Some(&cursors), "link", t.path());
        let signal = if last {
            None
        } else {
            sleep(Duration::from_micros(rng.below(40_000) as u64));
            let s = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGKILL][rng.below(3)];
            // The link may have failed already; its status says so below.
            let _ = kill(link.pid(), s);
            Some(s)
        };
        let st = link.wait();
        let (out, err) = link.output();
        let after = cursors_of(&cursors);
        let saved = match (signal, st.code(), st.signal()) {
            // The job's own exit code once the streams end.
            (None, Some(7), _) => true,
            (Some(Signal::SIGTERM | Signal::SIGINT), Some(0), _) => true,
            (Some(s), None, Some(got)) if got == s as i32 => false,
            _ => panic!(
                "round {round}: link ended with {st} after {signal:?}; stderr {:?}",
                String::from_utf8_lossy(&err)
            ),
        };
        counts[signal.map_or(0, |s| match s {
            Signal::SIGKILL => 2,
            _ => 1,
        })] += 1;
        if saved {
            all_out.extend_from_slice(&out);
            all_err.extend_from_slice(&err);
            let want = (all_out.len() as u32, all_err.len() as u32);
            assert_eq!(after, want, "round {round}: cursors after {signal:?}");
        } else {
            assert_eq!(
                after, before,
                "round {round}: a killed link moved the cursors"
            );
        }
    }
    let elapsed = started.elapsed();
    let mut spawn = spawn;
    let st = wait_deadline(spawn.child.as_mut().expect("spawner running"), DEADLINE);
    spawn.child = None;
    assert_eq!(st.code(), Some(0), "iomux-spawn exit status {st}");
    assert!(!alive(spawn.job_pid), "the job outlived iomux-spawn");
    eprintln!(
        "torture_iomux: {rounds} rounds in {elapsed:?} ({} saved by signal, {} killed)",
        counts[1], counts[2]
    );

    // The concatenation must be the job's exact output.
    let text = String::from_utf8(all_out).expect("stdout is text");
    let mut lines = text.lines();
    let mut i = 0;
    let mut expect_err = String::new();
    loop {
        let first = lines.next().expect("stdout ends early");
        if first == "last" {
            break;
        }
        for j in 0..10 {
            let want = format!("out {i} {j} ......................................");
            let got = if j == 0 {
                first
            } else {
                lines.next().expect("stdout ends mid-batch")
            };
            assert_eq!(got, want, "stdout line {i}/{j}");
        }
        expect_err.push_str(&format!("err {i}\n"));
        i += 1;
    }
    expect_err.push_str("err last\n");
    assert!(lines.next().is_none(), "bytes after the end of stdout");
    assert!(text.ends_with("last\n"));
    assert_eq!(
        String::from_utf8(all_err).expect("stderr is text"),
        expect_err
    );
    assert!(
        i as usize > rounds / 10,
        "the job produced too little ({i} batches) to mean anything"
    );
}
