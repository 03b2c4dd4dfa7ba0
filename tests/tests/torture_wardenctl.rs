//! Torture of wardenctl's container lifecycle (issue 6):
//!
//! 1. create/destroy cycles, then nothing of any of them is left;
//! 2. `wardenctl create` and `wardenctl destroy` killed (SIGKILL) at a
//!    random moment, either wardenctl alone (its scripts run on, as after a
//!    crash) or its whole process group (scripts too); then `wardenctl
//!    destroy HANDLE`, or `wardenctl list` and a destroy of what it lists,
//!    must repair, and nothing may leak;
//! 3. concurrent `wardenctl create` calls all succeed with distinct
//!    addresses and uids, then are all destroyed;
//! 4. a create whose wardenctl is killed while create.sh runs keeps the
//!    depot locked until the script ends, so a create meanwhile gets
//!    another network and uid.
//!
//! "Nothing leaks", for this depot's containers: no veth `w-<id>-*`, no
//! iptables chain `warden-i-<id>`, no cgroup `instance-<id>`, no mount under
//! the depot, no loop device backed by a depot file, no process naming the
//! depot or an id, and no container directory in the depot.
//!
//! Scale: `TORTURE_SCALE` unset is what CI runs (20 cycles, 10 kill rounds,
//! 20 concurrent creates); `full` 100, 50 and 50. `TORTURE_SEED` (hex)
//! replays the kill moments and variants.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tests::ctl::*;
use tests::paths;
use tests::torture::{self, Rng, SeedOnFailure};

/// Far longer than anything here needs; only stops a hung test.
const DEADLINE: Duration = Duration::from_secs(120);

/// This binary's networks: a /24 of 10.254.16.0/20..10.254.63.0, away from
/// wardenctl.rs's, limits.rs's and the default pool.
fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 16, 48)
}

fn create_args<'a>(depot: &'a TestDepot, handle: &'a str, rootfs: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "--handle",
        handle,
        "--pool-network",
        &depot.pool,
        "--rootfs",
        rootfs,
    ]
}

/// The ids of the depot's container directories, from their etc/config.
fn ids_in(depot: &TestDepot) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(&depot.dir).unwrap().flatten() {
        let handle = entry.file_name().to_string_lossy().into_owned();
        if handle.starts_with('.') {
            continue;
        }
        let config = fs::read_to_string(entry.path().join("etc/config")).unwrap_or_default();
        if let Some(id) = config_value(&config, "id") {
            found.push((handle, id));
        }
    }
    found
}

fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|line| {
        let v = line.strip_prefix(key)?.strip_prefix('=')?;
        let v = v.trim_matches('\'');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Nothing of any container this depot ever held (`seen`: handle, id) is
/// left, and the depot holds no container directory.
fn assert_no_residue(depot: &TestDepot, seen: &BTreeSet<(String, String)>) {
    let left: Vec<String> = fs::read_dir(&depot.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "the depot still holds {left:?}");
    let devices: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for (handle, id) in seen {
        assert_gone(depot, handle, id);
        let prefix = format!("w-{id}-");
        assert!(
            !devices.iter().any(|d| d.starts_with(&prefix)),
            "a device {prefix}* is left: {devices:?}"
        );
    }
    let depot_path = depot.dir.to_string_lossy().into_owned();
    for pid in live_pids() {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let names_id = seen.iter().any(|(_, id)| cmdline.contains(id.as_str()));
        assert!(
            !cmdline.contains(&depot_path) && !names_id,
            "process {pid} is left: {cmdline}"
        );
    }
}

/// Processes of process group `pgid` other than the container's own
/// long-lived helpers (wshd, iomux-spawn), which may have stayed in it.
fn group_members(pgid: u32) -> Vec<u32> {
    live_pids()
        .into_iter()
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((comm, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let pgrp = rest.split_whitespace().nth(2);
            let comm = comm.rsplit_once('(').map_or("", |(_, c)| c);
            pgrp == Some(pgid.to_string().as_str()) && comm != "wshd" && comm != "iomux-spawn"
        })
        .collect()
}

/// Waits until what a killed wardenctl had started has finished.
fn wait_group_done(pgid: u32) {
    let start = Instant::now();
    loop {
        let members = group_members(pgid);
        if members.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "processes {members:?} of killed wardenctl {pgid} do not end"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Kills `child` (wardenctl, leader of its own process group) after
/// `delay`: itself only, or its whole group.
fn kill_later(mut child: Child, delay: Duration, group: bool) {
    sleep(delay);
    let pid = Pid::from_raw(child.id() as i32);
    let r = if group {
        killpg(pid, Signal::SIGKILL)
    } else {
        kill(pid, Signal::SIGKILL)
    };
    assert!(matches!(r, Ok(()) | Err(Errno::ESRCH)), "kill: {r:?}");
    child.wait().expect("waiting for the killed wardenctl");
    wait_group_done(child.id());
}

/// After a kill: either `destroy HANDLE` (the caller knew the handle) or
/// `list` and a destroy of every handle listed.
fn repair(depot: &TestDepot, handle: &str, by_handle: bool) {
    if by_handle {
        let existed = depot.path(handle).exists();
        let out = depot.ctl(&["destroy", handle]);
        if existed {
            assert_ok(&out, "destroy after a kill");
        } else {
            assert_code(&out, 3, "destroy of a container never made");
        }
    } else {
        let out = depot.ctl(&["list"]);
        assert_ok(&out, "list after a kill");
        for listed in stdout(&out).lines() {
            let out = depot.ctl(&["destroy", listed]);
            assert_ok(&out, "destroy of a listed container");
        }
    }
}

#[test]
fn create_destroy_cycles() {
    let Some(depot) = depot("cycles") else {
        return;
    };
    let cycles = torture::scale(20, 100);
    let mut seen = BTreeSet::new();
    for i in 0..cycles {
        let c = depot.create(&format!("cycle-{i}"), &[]);
        seen.insert((c.handle.clone(), c.id.clone()));
        c.destroy();
    }
    assert_no_residue(&depot, &seen);
}

#[test]
fn killed_create_and_destroy_are_repaired() {
    let Some(depot) = depot("kills") else {
        return;
    };
    let seed = torture::seed();
    let _report = SeedOnFailure {
        test: "killed_create_and_destroy_are_repaired",
        seed,
    };
    let mut rng = Rng(seed);
    let rounds = torture::scale(10, 50);
    let rootfs = paths::rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let mut seen = BTreeSet::new();
    for round in 0..rounds {
        let handle = format!("kill-{round}");

        // A create killed at a random moment.
        let child = depot
            .command()
            .args(create_args(&depot, &handle, rootfs))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawning wardenctl create");
        let group = rng.below(2) == 0;
        kill_later(child, Duration::from_millis(rng.below(301) as u64), group);
        seen.extend(ids_in(&depot));
        repair(&depot, &handle, rng.below(2) == 0);
        assert_no_residue(&depot, &seen);

        // A destroy killed at a random moment.
        let c = depot.create(&handle, &[]);
        seen.insert((c.handle.clone(), c.id.clone()));
        let child = depot
            .command()
            .args(["destroy", &handle])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawning wardenctl destroy");
        let group = rng.below(2) == 0;
        kill_later(child, Duration::from_millis(rng.below(301) as u64), group);
        repair(&depot, &handle, rng.below(2) == 0);
        assert_no_residue(&depot, &seen);
    }
}

#[test]
fn concurrent_creates_get_distinct_resources() {
    let Some(depot) = depot("concurrent") else {
        return;
    };
    let n = torture::scale(20, 50);
    let containers: Vec<Container<'_>> = std::thread::scope(|s| {
        let depot = &depot;
        let threads: Vec<_> = (0..n)
            .map(|i| s.spawn(move || depot.create(&format!("conc-{i}"), &[])))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a create failed"))
            .collect()
    });
    let mut seen = BTreeSet::new();
    let mut ips = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for c in &containers {
        seen.insert((c.handle.clone(), c.id.clone()));
        let info = c.info();
        for key in ["host_ip", "container_ip"] {
            let ip = json_str(&info, key).unwrap_or_else(|| panic!("{key} in {info}"));
            assert!(ips.insert(ip.clone()), "{ip} given twice");
        }
        let config = fs::read_to_string(depot.path(&c.handle).join("etc/config")).unwrap();
        let uid = config_value(&config, "user_uid").expect("a uid in etc/config");
        assert!(uids.insert(uid.clone()), "uid {uid} given twice");
    }
    assert_eq!(seen.len(), n, "ids are distinct");
    for c in containers {
        c.destroy();
    }
    assert_no_residue(&depot, &seen);
}

/// The two half-made directories a kill can leave, made on purpose since a
/// random kill rarely lands there: a create killed while copying the
/// skeleton (destroy.sh copied, lib/ and etc/config not yet), and a destroy
/// killed while removing the directory (teardown done, lib/ already gone).
/// `list` shows both and `destroy` removes both.
#[test]
fn half_made_directories_are_destroyed() {
    let Some(depot) = depot("halfmade") else {
        return;
    };
    let skeleton = paths::workspace().join("setup-scripts/skeleton");
    let copying = depot.path("copying");
    fs::create_dir(&copying).unwrap();
    fs::copy(skeleton.join("destroy.sh"), copying.join("destroy.sh")).unwrap();

    let c = depot.create("removing", &[]);
    let mut seen = BTreeSet::from([(c.handle.clone(), c.id.clone())]);
    let removing = depot.path("removing");
    let out = std::process::Command::new(removing.join("destroy.sh"))
        .output()
        .expect("running the instance's destroy.sh");
    assert_ok(&out, "the instance's destroy.sh");
    fs::remove_dir_all(removing.join("lib")).unwrap();

    let out = depot.ctl(&["list"]);
    assert_ok(&out, "list");
    assert_eq!(stdout(&out), "copying\nremoving\n");
    for handle in ["copying", "removing"] {
        assert_ok(&depot.ctl(&["destroy", handle]), handle);
    }
    seen.extend(ids_in(&depot));
    assert_no_residue(&depot, &seen);
}

/// wardenctl killed while create.sh runs: the orphaned script still holds
/// the depot lock, so a create that starts meanwhile waits for it and gets
/// another network, uid and id, rather than reading a depot where the
/// half-made container has recorded none yet. setup.sh is slowed down (a
/// copy of the scripts, with a sleep before etc/config is written) so the
/// kill lands in that window every time.
#[test]
fn a_killed_create_keeps_its_allocation_until_its_scripts_end() {
    let Some(depot) = depot("orphan") else {
        return;
    };
    let scripts = depot.root.join("scripts");
    let src = paths::workspace().join("setup-scripts");
    fs::create_dir_all(&scripts).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(src.join("root"))
        .arg(src.join("skeleton"))
        .arg(&scripts)
        .status()
        .expect("running cp");
    assert!(copied.success(), "copying the setup scripts");
    let setup = scripts.join("skeleton/setup.sh");
    let text = fs::read_to_string(&setup).unwrap();
    let (shebang, rest) = text.split_once('\n').unwrap();
    fs::write(&setup, format!("{shebang}\nsleep 2\n{rest}")).unwrap();

    let rootfs = paths::rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let slow = depot
        .command()
        .env("WARDEN_SCRIPTS_DIR", &scripts)
        .args(create_args(&depot, "orphan", rootfs))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawning the slow create");
    let pgid = slow.id();
    let start = Instant::now();
    while !depot.path("orphan").join("setup.sh").exists() {
        assert!(
            start.elapsed() < DEADLINE,
            "the slow create never made its directory"
        );
        sleep(Duration::from_millis(5));
    }
    // wardenctl alone, its scripts run on; not waited for (kill_later would).
    let mut slow = slow;
    kill(Pid::from_raw(pgid as i32), Signal::SIGKILL).expect("kill the slow create");
    slow.wait().expect("waiting for the killed wardenctl");
    assert!(
        !depot.path("orphan").join("etc/config").exists(),
        "setup.sh was meant to be still asleep"
    );

    let other = depot.create("other", &[]);
    wait_group_done(pgid);
    let config = |h: &str| fs::read_to_string(depot.path(h).join("etc/config")).unwrap();
    let (orphan, other_config) = (config("orphan"), config(&other.handle));
    for key in ["id", "network_host_ip", "network_container_ip", "user_uid"] {
        let a = config_value(&orphan, key);
        assert!(a.is_some(), "{key} in the orphan's etc/config:\n{orphan}");
        assert_ne!(a, config_value(&other_config, key), "{key} given twice");
    }
    let mut seen = BTreeSet::from([(other.handle.clone(), other.id.clone())]);
    seen.extend(ids_in(&depot));
    other.destroy();
    assert_ok(&depot.ctl(&["destroy", "orphan"]), "destroy orphan");
    assert_no_residue(&depot, &seen);
}
