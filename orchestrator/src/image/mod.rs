//! Container images as rootfs directories: `wardenctl rootfs import SRC DIR`.
//!
//! SRC is one of
//! - a `docker save` tarball (`manifest.json` naming the config and the
//!   layer tars), or such a tarball unpacked into a directory;
//! - an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`);
//! - an oci-archive: an OCI image layout in a tar file;
//! - any of the tar files above gzip- or zstd-compressed (decompressed to a
//!   scratch file beside DIR first, as members are read out of order);
//! - `docker://REF`: copied by skopeo (when installed) into an OCI layout
//!   beside DIR, then imported as one.
//!
//! An index with several images takes the one for the host's platform.
//! Layers may be plain, gzip or zstd tars (told by their first bytes, not
//! their media type). Every OCI blob is checked against its digest, and
//! every layer's uncompressed stream against the config's `rootfs.diff_ids`,
//! so a truncated or altered image fails rather than yielding another tree.
//! Layers are applied by [`layer::Tree`] (whiteouts, opaque directories,
//! nothing followed, see there).
//!
//! DIR is built as `DIR.tmp-PID` and renamed once complete: a failure
//! leaves no DIR. DIR is mode 0700, whatever the image's root: the image's
//! setuid files are the container's, never a host user's. The image's config (Env, WorkingDir, User, Entrypoint,
//! Cmd) is recorded in `DIR/.warden-image.json` ([`CONFIG_FILE`]); a
//! container created from DIR copies it to its own `etc/image.json`, and
//! its jobs start with that Env and in that WorkingDir (see
//! [`ImageRecord::preamble`]).

pub mod layer;
pub mod source;
#[allow(unsafe_code)]
mod sys;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::shell_quote;
use crate::errors::{Error, Result};
use source::Store;

/// Where an imported rootfs keeps its image's config (in the rootfs's own
/// root, so that it travels with it; containers see it read-only).
pub const CONFIG_FILE: &str = ".warden-image.json";
/// Where a container keeps the record of its rootfs's image.
pub const INSTANCE_FILE: &str = "etc/image.json";
/// The most a manifest, index or config may take.
const JSON_LIMIT: u64 = 8 << 20;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Layer and byte counts on stderr (wardenctl: when it is a terminal).
    pub progress: bool,
}

/// What `import` did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub format: &'static str,
    pub layers: usize,
    pub stats: layer::Stats,
    pub record: ImageRecord,
}

fn bad(src: &str, why: impl std::fmt::Display) -> Error {
    Error::BadArgument(format!("image {src}: {why}"))
}

/// Builds DIR from the image at SRC.
pub fn import(src: &str, dir: &Path, opts: &ImportOptions) -> Result<Imported> {
    if fs::symlink_metadata(dir).is_ok() {
        return Err(Error::BadArgument(format!(
            "{} already exists (import makes a new directory)",
            dir.display()
        )));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::MissingPath {
            what: "directory for the rootfs",
            path: parent,
        });
    }
    let name = dir
        .file_name()
        .ok_or_else(|| Error::BadArgument(format!("{}: not a directory name", dir.display())))?
        .to_string_lossy()
        .into_owned();
    let scratch = Scratch {
        tmp: parent.join(format!("{name}.tmp-{}", std::process::id())),
        src: parent.join(format!("{name}.src-{}", std::process::id())),
    };
    scratch.clear();
    let result = build(src, &scratch, opts).and_then(|imported| {
        // The image's files keep their setuid bits and owners (the
        // container needs them), so DIR itself is root's alone: a host user
        // must not reach an untrusted image's setuid-root program.
        // Containers never see this mode: their root is the overlay's.
        fs::set_permissions(
            &scratch.tmp,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(Error::io(format!("chmod {}", scratch.tmp.display())))?;
        fs::rename(&scratch.tmp, dir).map_err(Error::io(format!("rename to {}", dir.display())))?;
        Ok(imported)
    });
    scratch.clear();
    result
}

/// The directory being built and the scratch copy of SRC; both go, in
/// success and failure alike (a finished tree was renamed before).
struct Scratch {
    tmp: PathBuf,
    src: PathBuf,
}

impl Scratch {
    fn clear(&self) {
        for p in [&self.tmp, &self.src] {
            match fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir_all(p);
                }
                Ok(_) => {
                    let _ = fs::remove_file(p);
                }
                Err(_) => {}
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.clear();
    }
}

fn build(src: &str, scratch: &Scratch, opts: &ImportOptions) -> Result<Imported> {
    let store = open_source(src, &scratch.src, opts)?;
    let image = resolve(src, &store)?;

    fs::create_dir(&scratch.tmp).map_err(Error::io(format!("mkdir {}", scratch.tmp.display())))?;
    fs::set_permissions(
        &scratch.tmp,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(Error::io("chmod"))?;
    let root = sys::open_root(&scratch.tmp).map_err(Error::io("open the new rootfs"))?;
    let mut tree = layer::Tree::new(root);
    let n = image.layers.len();
    for (i, l) in image.layers.iter().enumerate() {
        apply_layer(src, &store, &mut tree, l, i, n, opts)?;
    }
    tree.finish().map_err(|e| bad(src, e))?;

    let record = ImageRecord::from_config(&image.config, src, image.config_digest.clone());
    if !record.working_dir.is_empty() {
        tree.make_dirs(&record.working_dir)
            .map_err(|e| bad(src, format!("WorkingDir: {e}")))?;
    }
    // The record replaces whatever the image had under its name.
    let _ = layer::remove_tree(tree.root_fd(), CONFIG_FILE.as_bytes());
    let path = scratch.tmp.join(CONFIG_FILE);
    let mut text = serde_json::to_string_pretty(&record.to_json()).expect("json");
    text.push('\n');
    fs::write(&path, text).map_err(Error::io(format!("write {}", path.display())))?;
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(Error::io("chmod"))?;
    Ok(Imported {
        format: image.format,
        layers: n,
        stats: tree.stats.clone(),
        record,
    })
}

/// SRC as a store of files: skopeo for `docker://`, a directory, a tar
/// (decompressed to SCRATCH first when compressed).
fn open_source(src: &str, scratch: &Path, opts: &ImportOptions) -> Result<Store> {
    if src.starts_with("docker://") {
        skopeo_copy(src, scratch, opts)?;
        return Ok(Store::dir(scratch));
    }
    let path = Path::new(src);
    let meta = fs::metadata(path).map_err(|_| Error::MissingPath {
        what: "image",
        path: path.to_path_buf(),
    })?;
    if meta.is_dir() {
        return Ok(Store::dir(path));
    }
    let mut file = BufReader::new(fs::File::open(path).map_err(Error::io(format!("open {src}")))?);
    let tar_path = match Compression::sniff(&mut file).map_err(Error::io(format!("read {src}")))? {
        Compression::None => path.to_path_buf(),
        Compression::Other(what) => return Err(bad(src, format!("{what} is not supported"))),
        c => {
            let mut out = fs::File::create(scratch)
                .map_err(Error::io(format!("create {}", scratch.display())))?;
            let mut reader = c.decoder(Box::new(file)).map_err(|e| bad(src, e))?;
            io::copy(&mut reader, &mut out).map_err(|e| bad(src, format!("decompress: {e}")))?;
            scratch.to_path_buf()
        }
    };
    Store::tar(&tar_path).map_err(|e| bad(src, format!("not a tar archive: {e}")))
}

fn skopeo_copy(src: &str, dest: &Path, opts: &ImportOptions) -> Result<()> {
    let mut cmd = Command::new("skopeo");
    cmd.arg("copy");
    if !opts.progress {
        cmd.arg("--quiet");
    }
    cmd.arg(src)
        .arg(format!("oci:{}:latest", dest.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if !opts.progress {
        cmd.stderr(Stdio::piped());
    }
    let out = match cmd.spawn() {
        Ok(child) => child.wait_with_output(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Tool(format!(
                "{src}: registry images need skopeo (apt-get install skopeo)"
            )))
        }
        Err(e) => return Err(Error::Tool(format!("skopeo: {e}"))),
    }
    .map_err(|e| Error::Tool(format!("skopeo: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        return Err(Error::Tool(format!("skopeo copy {src}: {}", line.trim())));
    }
    Ok(())
}

/// A layer to apply: its member of the store and what it must hash to.
struct LayerRef {
    name: String,
    /// The blob's digest (OCI: the descriptor's).
    digest: Option<String>,
    size: Option<u64>,
    /// sha256 of the uncompressed tar (config's rootfs.diff_ids).
    diff_id: Option<String>,
}

struct Image {
    format: &'static str,
    config: Value,
    config_digest: Option<String>,
    layers: Vec<LayerRef>,
}

fn blob_name(src: &str, digest: &str) -> Result<String> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| bad(src, format!("bad digest {digest:?}")))?;
    if alg != "sha256" {
        return Err(bad(src, format!("digest algorithm {alg} is not supported")));
    }
    check_hex(src, hex)?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn check_hex(src: &str, hex: &str) -> Result<()> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad(src, format!("bad sha256 digest {hex:?}")));
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON member, checked against DIGEST when one is given.
fn read_json(src: &str, store: &Store, name: &str, digest: Option<&str>) -> Result<Value> {
    let bytes = store
        .read_small(name, JSON_LIMIT)
        .map_err(|e| bad(src, format!("{name}: {e}")))?;
    if let Some(d) = digest {
        let got = format!("sha256:{}", sha256_hex(&bytes));
        if got != d {
            return Err(bad(src, format!("{name} has digest {got}, not {d}")));
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| bad(src, format!("{name}: bad JSON: {e}")))
}

fn resolve(src: &str, store: &Store) -> Result<Image> {
    if store.exists("index.json") {
        resolve_oci(src, store)
    } else if store.exists("manifest.json") {
        resolve_docker(src, store)
    } else {
        Err(bad(
            src,
            "neither an OCI layout (index.json) nor a docker save archive (manifest.json)",
        ))
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The one manifest of an index meant for this host.
fn pick_manifest<'v>(src: &str, index: &'v Value) -> Result<&'v Value> {
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| bad(src, "index has no manifests"))?;
    let runnable: Vec<&Value> = manifests
        .iter()
        .filter(|m| {
            // buildx's attestations: platform unknown/unknown.
            m["platform"]["os"].as_str() != Some("unknown")
        })
        .collect();
    let for_host: Vec<&Value> = runnable
        .iter()
        .copied()
        .filter(|m| {
            m["platform"].is_null()
                || (m["platform"]["os"].as_str() == Some("linux")
                    && m["platform"]["architecture"].as_str() == Some(host_arch()))
        })
        .collect();
    match (for_host.as_slice(), runnable.as_slice()) {
        ([one], _) => Ok(one),
        ([], [one]) => Ok(one),
        ([], []) => Err(bad(src, "index has no manifests")),
        ([], _) => Err(bad(
            src,
            format!("no image for linux/{} in the index", host_arch()),
        )),
        (many, _) => Err(bad(
            src,
            format!(
                "the index holds {} images for linux/{}; one expected",
                many.len(),
                host_arch()
            ),
        )),
    }
}

fn resolve_oci(src: &str, store: &Store) -> Result<Image> {
    let mut node = read_json(src, store, "index.json", None)?;
    // An index may point at an index (a multi-platform image).
    for _ in 0..4 {
        let desc = pick_manifest(src, &node)?.clone();
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| bad(src, "manifest descriptor without a digest"))?
            .to_string();
        let blob = blob_name(src, &digest)?;
        let next = read_json(src, store, &blob, Some(&digest))?;
        let media = next["mediaType"]
            .as_str()
            .or(desc["mediaType"].as_str())
            .unwrap_or("");
        if INDEX_TYPES.contains(&media) || next["manifests"].is_array() {
            node = next;
            continue;
        }
        return oci_manifest(src, store, &next);
    }
    Err(bad(src, "indexes nested too deep"))
}

fn oci_manifest(src: &str, store: &Store, manifest: &Value) -> Result<Image> {
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| bad(src, "manifest has no config"))?
        .to_string();
    let config = read_json(
        src,
        store,
        &blob_name(src, &config_digest)?,
        Some(&config_digest),
    )?;
    let diff_ids = diff_ids(src, &config)?;
    let descs = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad(src, "manifest has no layers"))?;
    if descs.len() != diff_ids.len() {
        return Err(bad(
            src,
            format!(
                "{} layers in the manifest, {} diff_ids in the config",
                descs.len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (desc, diff_id) in descs.iter().zip(diff_ids) {
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| bad(src, "layer without a digest"))?;
        let name = blob_name(src, digest)?;
        if !store.exists(&name) {
            return Err(bad(
                src,
                format!("layer {digest} is not in the image (foreign layers are not fetched)"),
            ));
        }
        layers.push(LayerRef {
            name,
            digest: Some(digest.to_string()),
            size: desc["size"].as_u64(),
            diff_id: Some(diff_id),
        });
    }
    Ok(Image {
        format: "oci",
        config,
        config_digest: Some(config_digest),
        layers,
    })
}

fn diff_ids(src: &str, config: &Value) -> Result<Vec<String>> {
    let ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad(src, "config has no rootfs.diff_ids"))?;
    ids.iter()
        .map(|d| {
            let d = d.as_str().ok_or_else(|| bad(src, "bad diff_id"))?;
            blob_name(src, d)?;
            Ok(d.to_string())
        })
        .collect()
}

fn resolve_docker(src: &str, store: &Store) -> Result<Image> {
    let manifest = read_json(src, store, "manifest.json", None)?;
    let entries = manifest
        .as_array()
        .ok_or_else(|| bad(src, "manifest.json is not a list"))?;
    let [entry] = entries.as_slice() else {
        return Err(bad(
            src,
            format!("manifest.json names {} images; one expected", entries.len()),
        ));
    };
    let config_name = entry["Config"]
        .as_str()
        .ok_or_else(|| bad(src, "manifest.json has no Config"))?;
    // Docker names the config by its digest (HEX.json or blobs/sha256/HEX).
    let stem = config_name
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".json");
    let digest =
        (stem.len() == 64 && check_hex(src, stem).is_ok()).then(|| format!("sha256:{stem}"));
    let config = read_json(src, store, config_name, digest.as_deref())?;
    let diff_ids = diff_ids(src, &config)?;
    let names = entry["Layers"]
        .as_array()
        .ok_or_else(|| bad(src, "manifest.json has no Layers"))?;
    if names.len() != diff_ids.len() {
        return Err(bad(
            src,
            format!(
                "{} layers in manifest.json, {} diff_ids in the config",
                names.len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (name, diff_id) in names.iter().zip(diff_ids) {
        let name = name.as_str().ok_or_else(|| bad(src, "bad layer name"))?;
        if source::clean(name).is_none() || !store.exists(name) {
            return Err(bad(src, format!("layer {name} is not in the archive")));
        }
        layers.push(LayerRef {
            name: name.to_string(),
            digest: None,
            size: None,
            diff_id: Some(diff_id),
        });
    }
    Ok(Image {
        format: "docker-save",
        config,
        config_digest: digest,
        layers,
    })
}

/// How a stream is compressed, from its first bytes.
enum Compression {
    None,
    Gzip,
    Zstd,
    Other(&'static str),
}

impl Compression {
    fn sniff(r: &mut impl BufRead) -> io::Result<Compression> {
        let head = r.fill_buf()?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Other("xz compression")
        } else if head.starts_with(b"BZh") {
            Compression::Other("bzip2 compression")
        } else {
            Compression::None
        })
    }

    fn decoder<'a>(self, r: Box<dyn BufRead + 'a>) -> Result<Box<dyn Read + 'a>, String> {
        Ok(match self {
            Compression::None => r,
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(ZstdFrames::new(r)),
            Compression::Other(what) => return Err(format!("{what} is not supported")),
        })
    }
}

/// Every zstd frame of a stream, one after the other (skippable frames
/// skipped), as `zstd -d` decodes them.
struct ZstdFrames<R: BufRead> {
    src: R,
    dec: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(src: R) -> Self {
        ZstdFrames {
            src,
            dec: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.dec.can_collect() < buf.len() && !self.dec.is_finished() {
                    let want = buf.len() - self.dec.can_collect();
                    self.dec
                        .decode_blocks(
                            &mut self.src,
                            ruzstd::decoding::BlockDecodingStrategy::UptoBytes(want),
                        )
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.dec.is_finished() && self.dec.can_collect() == 0 {
                    self.in_frame = false;
                } else {
                    continue;
                }
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    io::copy(&mut (&mut self.src).take(length as u64), &mut io::sink())?;
                }
                Err(e) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                }
            }
        }
    }
}

/// sha256 of what is read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Counts what is read and shows it on stderr, at most ten times a second.
struct Progress<R> {
    inner: R,
    shown: bool,
    label: String,
    done: u64,
    total: Option<u64>,
    last: Option<Instant>,
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

impl<R> Progress<R> {
    fn show(&mut self, force: bool) {
        if !self.shown {
            return;
        }
        if !force
            && self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let of = self
            .total
            .map(|t| format!(" / {}", mib(t)))
            .unwrap_or_default();
        let _ = write!(
            io::stderr(),
            "\r{} {}{of}\x1b[K",
            self.label,
            mib(self.done)
        );
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.show(false);
        Ok(n)
    }
}

fn apply_layer(
    src: &str,
    store: &Store,
    tree: &mut layer::Tree,
    l: &LayerRef,
    i: usize,
    n: usize,
    opts: &ImportOptions,
) -> Result<()> {
    let what = format!("layer {}/{n} ({})", i + 1, l.name);
    let (reader, size) = store
        .open(&l.name)
        .map_err(|e| bad(src, format!("{what}: {e}")))?;
    let blob = Hashing {
        inner: Progress {
            inner: reader,
            shown: opts.progress,
            label: format!("wardenctl: layer {}/{n}", i + 1),
            done: 0,
            total: l.size.or(Some(size)),
            last: None,
        },
        hash: Sha256::new(),
    };
    let mut blob = BufReader::with_capacity(1 << 16, blob);
    let compression =
        Compression::sniff(&mut blob).map_err(|e| bad(src, format!("{what}: {e}")))?;
    if let Compression::Other(c) = compression {
        return Err(bad(src, format!("{what}: {c} is not supported")));
    }
    // The decoder borrows the blob reader, so that what is left of the blob
    // after the tar's end (padding, a gzip trailer) is hashed too.
    let (diff_hash, tar_result) = {
        let decoder = compression
            .decoder(Box::new(&mut blob))
            .map_err(|e| bad(src, format!("{what}: {e}")))?;
        let mut archive = tar::Archive::new(Hashing {
            inner: decoder,
            hash: Sha256::new(),
        });
        let result = tree.apply(&mut archive);
        let mut rest = archive.into_inner();
        let drained = match &result {
            Ok(()) => io::copy(&mut rest, &mut io::sink())
                .map(|_| ())
                .map_err(|e| bad(src, format!("{what}: {e}"))),
            Err(_) => Ok(()),
        };
        (
            rest.hash.finalize(),
            result
                .map_err(|e| bad(src, format!("{what}: {e}")))
                .and(drained),
        )
    };
    tar_result?;
    io::copy(&mut blob, &mut io::sink()).map_err(|e| bad(src, format!("{what}: {e}")))?;
    let blob = blob.into_inner();
    let mut progress = blob.inner;
    progress.show(true);
    if progress.shown {
        let _ = writeln!(io::stderr());
    }
    let blob_digest = format!("sha256:{}", hex(&blob.hash.finalize()));
    if let Some(d) = &l.digest {
        if *d != blob_digest {
            return Err(bad(
                src,
                format!("{what}: digest is {blob_digest}, not {d}"),
            ));
        }
    }
    let diff = format!("sha256:{}", hex(&diff_hash));
    if let Some(d) = &l.diff_id {
        if *d != diff {
            return Err(bad(
                src,
                format!("{what}: uncompressed digest is {diff}, not the config's {d}"),
            ));
        }
    }
    Ok(())
}

/// What a container takes from its image: the parts of the config that
/// decide how a process starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRecord {
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub source: String,
    pub config_digest: Option<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl ImageRecord {
    fn from_config(config: &Value, source: &str, config_digest: Option<String>) -> Self {
        let c = &config["config"];
        ImageRecord {
            env: strings(&c["Env"]),
            working_dir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
            user: c["User"].as_str().unwrap_or("").to_string(),
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            source: source.to_string(),
            config_digest,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "source": self.source,
            "config_digest": self.config_digest,
            "config": {
                "Env": self.env,
                "WorkingDir": self.working_dir,
                "User": self.user,
                "Entrypoint": self.entrypoint,
                "Cmd": self.cmd,
            }
        })
    }

    pub fn from_json(v: &Value) -> Self {
        let mut r = ImageRecord::from_config(v, v["source"].as_str().unwrap_or(""), None);
        r.config_digest = v["config_digest"].as_str().map(String::from);
        r
    }

    /// The record of a rootfs, when it has one; a symlink is not followed
    /// and a malformed record is an error.
    pub fn of_rootfs(rootfs: &Path) -> Result<Option<ImageRecord>> {
        Self::read(&rootfs.join(CONFIG_FILE))
    }

    pub fn read(path: &Path) -> Result<Option<ImageRecord>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("open {}", path.display()))(e)),
        };
        let mut bytes = Vec::new();
        file.take(JSON_LIMIT)
            .read_to_end(&mut bytes)
            .map_err(Error::io(format!("read {}", path.display())))?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::BadArgument(format!("{}: bad image record: {e}", path.display()))
        })?;
        if !v["config"].is_object() {
            return Err(Error::BadArgument(format!(
                "{}: bad image record: no config",
                path.display()
            )));
        }
        Ok(Some(ImageRecord::from_json(&v)))
    }

    /// Writes the record (a container's copy).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(&self.to_json()).expect("json");
        text.push('\n');
        crate::instance::write_atomic(path, text.as_bytes())
    }

    /// Shell lines a job's script starts with: the image's Env exported
    /// (names a shell cannot export are left out) and a cd to its
    /// WorkingDir; the job fails when that directory cannot be entered.
    pub fn preamble(&self) -> String {
        let mut s = String::new();
        for kv in &self.env {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if is_shell_name(k) {
                s.push_str(&format!("export {k}={}\n", shell_quote(v)));
            }
        }
        if !self.working_dir.is_empty() {
            s.push_str(&format!(
                "cd {} || exit 1\n",
                shell_quote(&self.working_dir)
            ));
        }
        s
    }

    /// Entrypoint, then ARGS or (none given) Cmd.
    pub fn command(&self, args: &[String]) -> Vec<String> {
        let mut argv = self.entrypoint.clone();
        if args.is_empty() {
            argv.extend(self.cmd.iter().cloned());
        } else {
            argv.extend(args.iter().cloned());
        }
        argv
    }
}

pub fn is_shell_name(k: &str) -> bool {
    let mut bytes = k.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests;
