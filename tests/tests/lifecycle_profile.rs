//! The wall-time profile of `bench/lifecycle.sh --profile` (one create,
//! first run and destroy with WARDEN_PROFILE set): every step the issue asks
//! for is there (each script, each hook, wshd's phases, the cgroup and
//! network operations), and the steps of create and destroy add up to their
//! wall time within 10% (what no step covers is a process starting, so a
//! step gone missing shows here), in one of up to three profiles: a busy
//! moment can multiply what a process start costs. No assertion on how fast
//! anything is.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use tests::ctl::TestDepot;
use tests::paths;

/// Paths (as profile.py's CSV names them) that every profile must hold.
const STEPS: &[&str] = &[
    "/create",
    "/create/allocate (depot lock)",
    "/create/create.sh",
    "/create/create.sh/copy skeleton",
    "/create/create.sh/link helpers, setup.sh (in parallel)",
    "/create/create.sh/link helpers, setup.sh (in parallel)/link helpers",
    "/create/create.sh/link helpers, setup.sh (in parallel)/setup.sh",
    "/create/create.sh/link helpers, setup.sh (in parallel)/setup.sh/etc config",
    "/create/create.sh/link helpers, setup.sh (in parallel)/setup.sh/upper layer",
    "/create/create.sh/link helpers, setup.sh (in parallel)/setup.sh/passwd, group",
    "/create/start.sh",
    "/create/start.sh/net.sh setup, wshd (in parallel)",
    "/create/start.sh/net.sh setup, wshd (in parallel)/net.sh setup",
    "/create/start.sh/net.sh setup, wshd (in parallel)/net.sh setup/setup",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/unshare mount namespace",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-before-clone.sh",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-before-clone.sh/overlay",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-before-clone.sh/copy wshd, dev nodes (in parallel)",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-before-clone.sh/copy wshd, dev nodes (in parallel)/copy wshd",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-before-clone.sh/copy wshd, dev nodes (in parallel)/dev nodes",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/clone",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-after-clone.sh",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-after-clone.sh/cgroups, veth, ifb (in parallel)",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-after-clone.sh/cgroups, veth, ifb (in parallel)/cgroups",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/hook-parent-after-clone.sh/cgroups, veth, ifb (in parallel)/veth, ifb",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)/hook-child-before-pivot.sh",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)/hook-child-before-pivot.sh/container network",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)/hook-child-before-pivot.sh/mounts",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)/pivot_root",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)/hook-child-after-pivot.sh",
    "/create/start.sh/net.sh setup, wshd (in parallel)/wshd/container start-up (release to ack)/exec wshd --continue",
    "/run",
    "/run/spawn",
    "/run/link (until the job's exit)",
    "/destroy",
    "/destroy/destroy.sh",
    "/destroy/destroy.sh/kill wshd",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)/net.sh teardown",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)/net.sh teardown/teardown",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)/groups, writable layer",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)/groups, writable layer/wait for empty groups",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)/groups, writable layer/writable layer",
    "/destroy/destroy.sh/net.sh teardown, links, groups (in parallel)/groups, writable layer/rmdir cgroups",
    "/destroy/destroy.sh/wait for links",
    "/destroy/destroy.sh/wait for groups, writable layer",
    "/destroy/destroy.sh/wait for net.sh teardown",
    "/destroy/reap jobs",
    "/destroy/root destroy.sh",
    "/destroy/root destroy.sh/rm -rf instance",
];

/// path -> (ms, between_ms) from lifecycle-profile.csv.
fn read_csv(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut rows = BTreeMap::new();
    for line in text.lines().skip(1) {
        // "path",begin_ms,ms,between_ms; paths hold commas, never quotes.
        let (path, rest) = line
            .strip_prefix('"')
            .and_then(|l| l.split_once("\","))
            .unwrap_or_else(|| panic!("bad CSV row {line:?}"));
        let fields: Vec<f64> = rest
            .split(',')
            .map(|f| {
                f.parse()
                    .unwrap_or_else(|_| panic!("bad number in {line:?}"))
            })
            .collect();
        assert_eq!(fields.len(), 3, "{line:?}");
        rows.insert(path.to_string(), (fields[1], fields[2]));
    }
    rows
}

#[test]
fn profile_has_every_step_and_adds_up() {
    // A depot of the harness's only for its /24 (no other test binary uses
    // 10.255.112.0/20) and scratch directory; the bench makes its own depot.
    let Some(depot) = TestDepot::new_in("lifecycle_profile", 368, 16) else {
        return;
    };
    // What no step covers is mostly processes starting, whose cost a busy
    // moment can multiply (the kernel finishing the work of the test
    // before: a destroy's namespaces, grace periods): one profile in three
    // adding up is enough; a step gone missing shows in every one.
    let mut misses = Vec::new();
    for attempt in 1..=3 {
        match profile_once(&depot, attempt) {
            Ok(()) => break,
            Err(miss) => misses.push(miss),
        }
    }
    assert!(
        misses.len() < 3,
        "no profile added up:\n{}",
        misses.join("\n\n")
    );
    fs::remove_dir_all(&depot.root).ok();
}

/// One `bench/lifecycle.sh --profile`: every step must be there (else a
/// panic); Err when create's or destroy's steps do not add up to its wall
/// time within 10%.
fn profile_once(depot: &TestDepot, attempt: u32) -> Result<(), String> {
    let results = depot.root.join(format!("results-{attempt}"));
    let out = Command::new(paths::workspace().join("bench/lifecycle.sh"))
        .arg("--profile")
        .env("BIN_DIR", &depot.bin)
        .env("ROOTFS", paths::rootfs())
        .env("POOL", &depot.pool)
        .env("BENCH_RESULTS", &results)
        .output()
        .expect("run bench/lifecycle.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench/lifecycle.sh --profile failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(between steps)"),
        "no table printed:\n{stdout}"
    );
    let csv = fs::read_to_string(results.join("lifecycle-profile.csv")).unwrap();
    let rows = read_csv(&csv);

    for step in STEPS {
        assert!(
            rows.contains_key(*step),
            "step {step} is missing from the profile:\n{stdout}"
        );
    }
    for root in ["/create", "/destroy"] {
        let (wall, between) = rows[root];
        assert!(wall > 0.0, "{root} took no time:\n{stdout}");
        let steps: f64 = rows
            .iter()
            .filter(|(path, _)| {
                path.strip_prefix(root)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|name| !name.contains('/'))
            })
            .map(|(_, (ms, _))| ms)
            .sum();
        assert!(
            (steps - (wall - between)).abs() < 0.01 * wall.max(1.0),
            "{root}: steps sum to {steps} ms, the table says {} ms",
            wall - between
        );
        if !(steps >= 0.9 * wall && steps <= 1.1 * wall) {
            return Err(format!(
                "{root}: the steps add up to {steps:.1} ms of its {wall:.1} ms wall time:\n{stdout}"
            ));
        }
    }
    Ok(())
}
