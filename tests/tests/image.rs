//! `wardenctl rootfs import`: images built here from the busybox rootfs
//! (never a registry) as a `docker save` tarball, an OCI image layout and an
//! oci-archive, with plain, gzip and zstd layers; a second layer deletes a
//! file (whiteout), replaces a directory's contents (opaque), hard-links a
//! file and carries a device node. The imported tree must be exactly the
//! expected one (kinds, modes, owners, mtimes, link targets, contents, hard
//! links), and a container from it runs the image's Cmd with its Env.
//!
//! Run as root (containers); the pool is 10.255.192.0/20 (FIRST 448).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tests::ctl::{assert_code, assert_ok, stderr, stdout, TestDepot};
use tests::paths;

fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 448, 16)
}

const MTIME: u64 = 1_700_000_000;
const CMD_OUT: &str = "hello image from /srv/app\n";

#[derive(Clone, Copy)]
enum Zip {
    Plain,
    Gzip,
    Zstd,
}

fn compress(data: &[u8], zip: Zip) -> Vec<u8> {
    match zip {
        Zip::Plain => data.to_vec(),
        Zip::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Zip::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header(ty: tar::EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, owner: (u64, u64), data: &[u8]) {
    let mut h = header(
        tar::EntryType::Regular,
        mode,
        owner.0,
        owner.1,
        data.len() as u64,
    );
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, mode, 0, 0, 0);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

/// The busybox rootfs as it is, plus what the second layer changes.
fn base_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", paths::rootfs()).unwrap();
    file(
        &mut b,
        "etc/motd",
        0o644,
        (0, 0),
        b"deleted by the next layer\n",
    );
    dir(&mut b, "srv", 0o755);
    dir(&mut b, "srv/app", 0o755);
    dir(&mut b, "srv/old", 0o750);
    file(&mut b, "srv/old/a", 0o644, (0, 0), b"a");
    dir(&mut b, "srv/old/sub", 0o755);
    file(&mut b, "srv/old/sub/b", 0o644, (0, 0), b"b");
    file(
        &mut b,
        "bin/suidtool",
        0o4755,
        (0, 0),
        b"#!/bin/sh\necho suid\n",
    );
    file(&mut b, "home/data", 0o640, (1234, 5678), b"owned\n");
    b.append_pax_extensions([
        ("SCHILY.xattr.user.warden", &b"kept"[..]),
        ("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]),
    ])
    .unwrap();
    file(&mut b, "srv/app/tagged", 0o644, (0, 0), b"x");
    b.into_inner().unwrap()
}

fn change_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "etc/.wh.motd", 0o644, (0, 0), b"");
    dir(&mut b, "srv/old", 0o755);
    file(&mut b, "srv/old/.wh..wh..opq", 0o644, (0, 0), b"");
    file(&mut b, "srv/old/c", 0o600, (0, 0), b"new c\n");
    let mut h = header(tar::EntryType::Link, 0o600, 0, 0, 0);
    b.append_link(&mut h, "srv/old/c-link", "srv/old/c")
        .unwrap();
    let mut h = header(tar::EntryType::Char, 0o666, 0, 0, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/evil", &[][..]).unwrap();
    b.into_inner().unwrap()
}

fn config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin:/usr/bin:/sbin", "GREETING=hello image"],
            "WorkingDir": "/srv/app",
            "User": "",
            "Cmd": ["sh", "-c", "echo \"$GREETING from $(pwd)\""],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>(),
        },
    }))
    .unwrap()
}

struct Layers {
    raw: Vec<Vec<u8>>,
}

fn layers() -> Layers {
    Layers {
        raw: vec![base_layer(), change_layer()],
    }
}

fn add(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    file(b, path, 0o644, (0, 0), data);
}

/// A `docker save` tarball: plain first layer, zstd second.
fn docker_save(l: &Layers) -> Vec<u8> {
    docker_save_with(l, false)
}

/// As docker_save; with `swapped`, the config's diff_ids in the wrong order.
fn docker_save_with(l: &Layers, swapped: bool) -> Vec<u8> {
    let mut diff_ids: Vec<String> = l.raw.iter().map(|r| sha(r)).collect();
    let config = if swapped {
        let mut ids = diff_ids.clone();
        ids.reverse();
        config(&ids)
    } else {
        config(&diff_ids)
    };
    if swapped {
        // Layer directories stay named after the real ids.
        diff_ids = l.raw.iter().map(|r| sha(r)).collect();
    }
    let config_name = format!("{}.json", sha(&config));
    let mut b = tar::Builder::new(Vec::new());
    let mut names = Vec::new();
    for (i, (raw, zip)) in l.raw.iter().zip([Zip::Plain, Zip::Zstd]).enumerate() {
        let name = format!("{}/layer.tar", diff_ids[i]);
        dir(&mut b, &diff_ids[i], 0o755);
        add(&mut b, &name, &compress(raw, zip));
        names.push(name);
    }
    add(&mut b, &config_name, &config);
    let manifest =
        json!([{"Config": config_name, "RepoTags": ["warden/test:latest"], "Layers": names}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

/// An OCI image layout's files (path, bytes): gzip first layer, zstd second.
fn oci_files(l: &Layers) -> Vec<(String, Vec<u8>)> {
    let diff_ids: Vec<String> = l.raw.iter().map(|r| sha(r)).collect();
    let config = config(&diff_ids);
    let mut files = Vec::new();
    let mut descs = Vec::new();
    for (raw, (zip, media)) in l.raw.iter().zip([
        (Zip::Gzip, "application/vnd.oci.image.layer.v1.tar+gzip"),
        (Zip::Zstd, "application/vnd.oci.image.layer.v1.tar+zstd"),
    ]) {
        let blob = compress(raw, zip);
        descs.push(json!({"mediaType": media, "digest": format!("sha256:{}", sha(&blob)), "size": blob.len()}));
        files.push((format!("blobs/sha256/{}", sha(&blob)), blob));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha(&config)), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": format!("sha256:{}", sha(&manifest)), "size": manifest.len(),
             "platform": {"os": "linux", "architecture": "amd64"},
             "annotations": {"org.opencontainers.image.ref.name": "latest"}},
        ],
    }))
    .unwrap();
    files.push((format!("blobs/sha256/{}", sha(&config)), config));
    files.push((format!("blobs/sha256/{}", sha(&manifest)), manifest));
    files.push(("index.json".into(), index));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files
}

fn write_oci_dir(files: &[(String, Vec<u8>)], dir: &Path) {
    for (path, data) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}

fn oci_archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        add(&mut b, path, data);
    }
    b.into_inner().unwrap()
}

/// path -> "kind mode uid:gid mtime what" (what: a symlink's target, a
/// file's size and content hash), the root itself left out.
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("symlink -> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_file() {
                let mut h = DefaultHasher::new();
                fs::read(&p).unwrap().hash(&mut h);
                format!("file {} {:x}", m.len(), h.finish())
            } else {
                "other".to_string()
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            out.insert(
                rel,
                format!("{what} {mode:o} {}:{} {}", m.uid(), m.gid(), m.mtime()),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A and B hold the same tree (the records differ only in their source).
fn same_tree(a: &Path, b: &Path) {
    let (mut la, mut lb) = (listing(a), listing(b));
    la.remove(".warden-image.json");
    lb.remove(".warden-image.json");
    let differ: Vec<&String> = la
        .keys()
        .chain(lb.keys())
        .filter(|k| la.get(*k) != lb.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "{} and {} differ at {differ:?}",
        a.display(),
        b.display()
    );
}

fn expected() -> BTreeMap<String, String> {
    let mut want = listing(&paths::rootfs());
    let f = |data: &[u8], mode: u32, owner: &str| {
        let mut h = DefaultHasher::new();
        data.to_vec().hash(&mut h);
        format!(
            "file {} {:x} {mode:o} {owner} {MTIME}",
            data.len(),
            h.finish()
        )
    };
    let d = |mode: u32| format!("dir {mode:o} 0:0 {MTIME}");
    want.insert("srv".into(), d(0o755));
    want.insert("srv/app".into(), d(0o755));
    want.insert("srv/app/tagged".into(), f(b"x", 0o644, "0:0"));
    want.insert("srv/old".into(), d(0o755));
    want.insert("srv/old/c".into(), f(b"new c\n", 0o600, "0:0"));
    want.insert("srv/old/c-link".into(), f(b"new c\n", 0o600, "0:0"));
    want.insert(
        "bin/suidtool".into(),
        f(b"#!/bin/sh\necho suid\n", 0o4755, "0:0"),
    );
    want.insert("home/data".into(), f(b"owned\n", 0o640, "1234:5678"));
    want.insert(
        ".warden-image.json".into(),
        "the record".into(), // compared apart
    );
    want
}

fn import(depot: &TestDepot, src: &Path, dir: &Path) -> std::process::Output {
    depot
        .command()
        .args(["rootfs", "import"])
        .arg(src)
        .arg(dir)
        .output()
        .unwrap()
}

/// An xattr of PATH itself (None: it has none by that name).
fn get_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = std::ffi::CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated, the buffer is as long as said.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Whether DIR's filesystem takes user.* xattrs (tmpfs before 6.6 does not).
fn user_xattrs_work(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let p = std::ffi::CString::new(probe.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated strings, a one-byte value.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            c"user.probe".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    };
    let _ = fs::remove_file(&probe);
    rc == 0
}

fn check_tree(dir: &Path) {
    let mut got = listing(dir);
    let want = expected();
    assert!(got.remove(".warden-image.json").is_some(), "no record");
    let mut want = want;
    want.remove(".warden-image.json");
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
    for k in got.keys() {
        assert!(want.contains_key(k), "unexpected {k}: {}", got[k]);
    }
    for gone in ["etc/motd", "srv/old/a", "srv/old/sub", "dev/evil"] {
        assert!(fs::symlink_metadata(dir.join(gone)).is_err(), "{gone}");
    }
    let ino = |p: &str| fs::metadata(dir.join(p)).unwrap().ino();
    assert_eq!(ino("srv/old/c"), ino("srv/old/c-link"), "hard link");
    // Root's alone, whatever the image's root: the setuid files inside
    // are the container's (see an_images_setuid_program_runs_for_no_host_user).
    assert_eq!(fs::metadata(dir).unwrap().mode() & 0o7777, 0o700);

    let record: Value =
        serde_json::from_slice(&fs::read(dir.join(".warden-image.json")).unwrap()).unwrap();
    assert_eq!(
        record["config"]["Env"],
        json!(["PATH=/bin:/usr/bin:/sbin", "GREETING=hello image"])
    );
    assert_eq!(record["config"]["WorkingDir"], "/srv/app");
    assert_eq!(record["config"]["Cmd"][0], "sh");

    let tagged = dir.join("srv/app/tagged");
    assert_eq!(get_xattr(&tagged, "trusted.overlay.opaque"), None);
    if user_xattrs_work(dir) {
        assert_eq!(
            get_xattr(&tagged, "user.warden").as_deref(),
            Some(&b"kept"[..])
        );
    } else {
        eprintln!(
            "user.* xattrs unsupported under {}: not checked",
            dir.display()
        );
    }
}

/// A container from DIR runs the image's Cmd with its Env in its
/// WorkingDir; other jobs get the Env and WorkingDir too, unless asked not.
fn check_container(depot: &TestDepot, handle: &str, rootfs: &Path) {
    let out = depot.ctl(&[
        "create",
        "--handle",
        handle,
        "--pool-network",
        &depot.pool,
        "--rootfs",
        &rootfs.to_string_lossy(),
    ]);
    assert_ok(&out, "create from the imported rootfs");
    let out = depot.ctl(&["run", handle, "--image-cmd"]);
    assert_ok(&out, "run --image-cmd");
    assert_eq!(stdout(&out), CMD_OUT);
    let out = depot.ctl(&[
        "run",
        handle,
        "--",
        "sh",
        "-c",
        "echo \"$GREETING|$PATH|$(pwd)\"",
    ]);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "hello image|/bin:/usr/bin:/sbin|/srv/app\n");
    let out = depot.ctl(&["run", handle, "--image-cmd", "--", "echo", "replaced"]);
    assert_ok(&out, "run --image-cmd -- ARGS");
    assert_eq!(stdout(&out), "replaced\n");
    let out = depot.ctl(&[
        "run",
        handle,
        "--no-image-env",
        "--",
        "sh",
        "-c",
        "echo \"[$GREETING]$(pwd)\"",
    ]);
    assert_ok(&out, "run --no-image-env");
    assert_eq!(stdout(&out), "[]/home/vcap\n");
    // 0600 root's, as in the image: vcap may not read it, root may.
    let out = depot.ctl(&["run", handle, "--", "cat", "/srv/old/c"]);
    assert_code(&out, 1, "vcap reads root's 0600 file");
    let out = depot.ctl(&["run", handle, "--privileged", "--", "cat", "/srv/old/c"]);
    assert_ok(&out, "read a file of the image");
    assert_eq!(stdout(&out), "new c\n");
    let out = depot.ctl(&[
        "run",
        handle,
        "--",
        "stat",
        "-c",
        "%a %u:%g",
        "/bin/suidtool",
        "/home/data",
    ]);
    assert_ok(&out, "stat in the container");
    assert_eq!(stdout(&out), "4755 0:0\n640 1234:5678\n");
    assert_ok(&depot.ctl(&["destroy", handle]), "destroy");
}

#[test]
fn docker_save_tarball() {
    let Some(depot) = depot("image-docker") else {
        return;
    };
    let data = depot.data("docker");
    let src = data.join("image.tar");
    fs::write(&src, docker_save(&layers())).unwrap();
    let dir = data.join("rootfs");
    let out = import(&depot, &src, &dir);
    assert_ok(&out, "import docker save");
    check_tree(&dir);
    check_container(&depot, "img-docker", &dir);

    // The same tarball gzip-compressed, as `docker save | gzip` makes it.
    let gz = data.join("image.tar.gz");
    fs::write(&gz, compress(&fs::read(&src).unwrap(), Zip::Gzip)).unwrap();
    let dir2 = data.join("rootfs-gz");
    assert_ok(&import(&depot, &gz, &dir2), "import docker save | gzip");
    check_tree(&dir2);
}

#[test]
fn oci_layout_and_archive() {
    let Some(depot) = depot("image-oci") else {
        return;
    };
    let data = depot.data("oci");
    let files = oci_files(&layers());
    let layout = data.join("layout");
    write_oci_dir(&files, &layout);
    let dir = data.join("rootfs");
    assert_ok(&import(&depot, &layout, &dir), "import OCI layout");
    check_tree(&dir);
    check_container(&depot, "img-oci", &dir);

    let archive = data.join("image.oci.tar");
    fs::write(&archive, oci_archive(&files)).unwrap();
    let dir2 = data.join("rootfs-archive");
    assert_ok(&import(&depot, &archive, &dir2), "import oci-archive");
    check_tree(&dir2);
    same_tree(&dir, &dir2);

    // setup-scripts/rootfs/oci.sh is the same command.
    let dir3 = data.join("rootfs-sh");
    let out = depot
        .with_env(&mut Command::new(
            paths::workspace().join("setup-scripts/rootfs/oci.sh"),
        ))
        .env("WARDENCTL", depot.bin.join("wardenctl"))
        .arg(&archive)
        .arg(&dir3)
        .output()
        .unwrap();
    assert_ok(&out, "oci.sh");
    same_tree(&dir, &dir3);
}

/// Bad images: one line on stderr, exit 5 (6 for a missing SRC), and no DIR
/// nor scratch left beside it.
#[test]
fn bad_images_leave_nothing() {
    let Some(depot) = depot("image-bad") else {
        return;
    };
    let data = depot.data("bad");
    let l = layers();
    let files = oci_files(&l);

    // A layer blob altered after its digest was taken.
    let corrupt = data.join("corrupt");
    write_oci_dir(&files, &corrupt);
    let blob = corrupt.join(&files[1].0);
    let mut bytes = fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&blob, bytes).unwrap();

    // A layer that plants a file through a symlink it made.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
    b.append_link(&mut h, "escape", data.join("outside"))
        .unwrap();
    file(&mut b, "escape/planted", 0o644, (0, 0), b"x");
    fs::create_dir_all(data.join("outside")).unwrap();
    let evil_files = oci_files(&Layers {
        raw: vec![b.into_inner().unwrap(), change_layer()],
    });
    let evil_dir = data.join("evil");
    write_oci_dir(&evil_files, &evil_dir);

    let junk = data.join("junk.tar");
    fs::write(&junk, b"not an image at all").unwrap();
    let truncated = data.join("truncated.tar");
    let whole = docker_save(&l);
    fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();

    let swapped = data.join("swapped.tar");
    fs::write(&swapped, docker_save_with(&l, true)).unwrap();
    let tampered = data.join("tampered");
    write_oci_dir(&files, &tampered);
    // A blob whose bytes decompress fine but are not what the digest says:
    // the same layer again, compressed another way.
    fs::write(tampered.join(&files[0].0), compress(&l.raw[0], Zip::Zstd)).unwrap();

    for (src, code, words) in [
        (&corrupt, 5, "layer 2/2"),
        (&swapped, 5, "not the config's"),
        (&tampered, 5, "digest is sha256:"),
        (&evil_dir, 5, "not followed"),
        (&junk, 5, "image"),
        (&truncated, 5, "image"),
        (&data.join("missing.tar"), 6, "not found"),
    ] {
        let dir = data.join("rootfs");
        let out = import(&depot, src, &dir);
        assert_code(&out, code, &format!("import {}", src.display()));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(words), "{err}");
        let left: Vec<String> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("rootfs"))
            .collect();
        assert!(left.is_empty(), "{}: left {left:?}", src.display());
        assert!(!data.join("outside/planted").exists());
    }

    // An existing DIR is never written into.
    let existing = data.join("existing");
    fs::create_dir(&existing).unwrap();
    let layout = data.join("good");
    write_oci_dir(&files, &layout);
    let out = import(&depot, &layout, &existing);
    assert_code(&out, 5, "import into an existing DIR");
    assert_eq!(fs::read_dir(&existing).unwrap().count(), 0);
}

/// docker://REF goes through skopeo: a stand-in skopeo on PATH (copying a
/// layout made here, never a registry), and a clear error without one.
#[test]
fn registry_references_use_skopeo() {
    let Some(depot) = depot("image-skopeo") else {
        return;
    };
    let data = depot.data("skopeo");
    let layout = data.join("layout");
    write_oci_dir(&oci_files(&layers()), &layout);
    let bin = data.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("skopeo");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\n# skopeo copy [--quiet] docker://REF oci:DEST:TAG\n\
             for a; do last=$a; done\n\
             [ \"$1\" = copy ] || exit 2\n\
             echo \"$*\" > {log}\n\
             dest=${{last#oci:}}; dest=${{dest%:*}}\n\
             cp -a {layout} \"$dest\"\n",
            log = data.join("skopeo.log").display(),
            layout = layout.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let dir = data.join("rootfs");
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let out = depot
        .command()
        .env("PATH", &path)
        .args([
            "rootfs",
            "import",
            "docker://registry.invalid/warden/test:1",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_ok(&out, "import docker://");
    check_tree(&dir);
    let log = fs::read_to_string(data.join("skopeo.log")).unwrap();
    assert!(
        log.contains("docker://registry.invalid/warden/test:1 oci:"),
        "{log}"
    );

    let out = depot
        .command()
        .env("PATH", "/nonexistent")
        .args(["rootfs", "import", "docker://registry.invalid/x"])
        .arg(data.join("rootfs2"))
        .output()
        .unwrap();
    assert_code(&out, 11, "import docker:// without skopeo");
    assert!(stderr(&out).contains("skopeo"), "{}", stderr(&out));
    assert!(!data.join("rootfs2").exists());
}

/// On a terminal, import shows each layer and its bytes.
#[test]
fn progress_on_a_terminal() {
    let Some(depot) = depot("image-progress") else {
        return;
    };
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("progress_on_a_terminal: skipped, no script(1)");
        return;
    }
    let data = depot.data("progress");
    let layout = data.join("layout");
    write_oci_dir(&oci_files(&layers()), &layout);
    let dir = data.join("rootfs");
    let line = format!(
        "{} rootfs import {} {}",
        depot.bin.join("wardenctl").display(),
        layout.display(),
        dir.display()
    );
    let out = depot
        .with_env(&mut Command::new("script"))
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    assert_ok(&out, "import on a pty");
    let text = stdout(&out);
    for want in ["layer 1/2", "layer 2/2", "MiB", "2 layers"] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    // Not a terminal: no progress, only the one line saying what was left
    // out (the device node, the trusted.* xattr).
    let dir2 = data.join("rootfs2");
    let out = import(&depot, &layout, &dir2);
    assert_ok(&out, "import");
    let err = stderr(&out);
    assert!(!err.contains("layer 1/2") && !err.contains('\r'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.contains("1 device nodes skipped, 1 xattrs not kept"),
        "{err:?}"
    );
}

/// An image's setuid-root program (the host's own id(1), which honours the
/// bit, unlike busybox's applets) imported into a directory every host user
/// could otherwise reach: no host user runs it, because the import leaves
/// DIR root's alone. The control opens DIR and the same file makes nobody
/// root, so the test fails if DIR were left open.
#[test]
fn an_images_setuid_program_runs_for_no_host_user() {
    const NOBODY: u32 = 65534;
    let Some(depot) = depot("image-suid") else {
        return;
    };
    let id = fs::read(fs::canonicalize("/usr/bin/id").expect("/usr/bin/id")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "bin/hostid", 0o4755, (0, 0), &id);
    let l = Layers {
        raw: vec![base_layer(), b.into_inner().unwrap()],
    };
    let data = depot.data("suid");
    let src = data.join("image.tar");
    fs::write(&src, docker_save(&l)).unwrap();
    let dir = data.join("rootfs");
    assert_ok(&import(&depot, &src, &dir), "import");
    let tool = dir.join("bin/hostid");
    let meta = fs::metadata(&tool).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o7777),
        (0, 0o4755),
        "kept as in the image"
    );

    // Only DIR's own mode stands between nobody and the file.
    for d in [&depot.root, &depot.root.join("data"), &data] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_nobody = || {
        use std::os::unix::process::CommandExt;
        Command::new(&tool)
            .arg("-u")
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir("/")
            .output()
    };
    match as_nobody() {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
        Ok(out) => panic!(
            "nobody ran {}: {}{}",
            tool.display(),
            stdout(&out),
            stderr(&out)
        ),
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let control = as_nobody();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let control = control.expect("the control runs");
    assert_eq!(
        stdout(&control),
        "0\n",
        "the control: an open DIR makes nobody root"
    );

    // Containers from DIR see the image as it is.
    check_container_sees_suid(&depot, "img-suid", &dir);
}

fn check_container_sees_suid(depot: &TestDepot, handle: &str, rootfs: &Path) {
    let out = depot.ctl(&[
        "create",
        "--handle",
        handle,
        "--pool-network",
        &depot.pool,
        "--rootfs",
        &rootfs.to_string_lossy(),
    ]);
    assert_ok(&out, "create from the imported rootfs");
    let out = depot.ctl(&[
        "run",
        handle,
        "--",
        "stat",
        "-c",
        "%a %u",
        "/bin/hostid",
        "/",
    ]);
    assert_ok(&out, "stat as vcap");
    let text = stdout(&out);
    assert!(text.starts_with("4755 0\n"), "{text:?}");
    assert_ok(&depot.ctl(&["destroy", handle]), "destroy");
}
