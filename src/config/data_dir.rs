//! The data directory and the small private files the daemon keeps in it: the admin token
//! and the bound listen address. Also the 0600 atomic-write helper other modules reuse for
//! secrets.
//!
//! Files holding secrets are written to a temporary file created with mode 0600 (never a
//! moment with wider permissions), fsynced, moved into place, and the directory fsynced, so
//! a crash leaves either the old file or the new one, never a torn or empty one.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use subtle::ConstantTimeEq;

/// Name of the generated admin token file inside the data dir.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// Name of the file holding the bound address inside the data dir.
pub const LISTEN_ADDR_FILE: &str = "listen-addr";
/// Held (flock) by the daemon that uses the data dir, for as long as it runs.
pub const LOCK_FILE: &str = "lock";

/// Prefix of generated admin tokens, so a leaked one is recognisable in logs and scanners.
const ADMIN_TOKEN_PREFIX: &str = "pbadm_";
const ADMIN_TOKEN_RANDOM_BYTES: usize = 32;
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Why the data dir (or a file in it) cannot be used. One line each, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot access data dir {}: {source}", path.display())]
    Access { path: PathBuf, source: io::Error },
    #[error("data dir {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot create data dir {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("data dir {} is not writable: {source}", path.display())]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("cannot set mode 0700 on data dir {}: {source}", path.display())]
    Permissions { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("data dir {} is in use by another pandabridge (it holds {})", path.display(), path.join(LOCK_FILE).display())]
    InUse { path: PathBuf },
}

/// What [`prepare_data_dir`] did, for the startup log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirStatus {
    Created,
    /// Existed with acceptable permissions, or belongs to another user (left alone).
    Existing,
    /// Existed, was ours, and was group/world accessible; now 0700.
    PermissionsTightened {
        previous_mode: u32,
    },
}

/// Makes sure `dir` is a usable data directory: creates it (and missing parents) with mode
/// 0700, tightens an existing directory of ours to 0700 (it holds secrets), and proves it is
/// writable by creating and removing a file, so an unusable dir fails at startup with a clear
/// reason rather than at the first webhook.
pub fn prepare_data_dir(dir: &Path) -> Result<DataDirStatus, DataDirError> {
    let mut status = DataDirStatus::Existing;
    // `metadata` follows symlinks on purpose: a symlinked data dir is a common deployment.
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(DataDirError::NotADirectory {
                path: dir.to_owned(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|source| DataDirError::Create {
                    path: dir.to_owned(),
                    source,
                })?;
            // The umask may have removed bits from the requested mode; set it exactly.
            set_dir_mode(dir)?;
            status = DataDirStatus::Created;
        }
        Err(source) => {
            return Err(DataDirError::Access {
                path: dir.to_owned(),
                source,
            })
        }
    }

    let our_uid = probe_writable(dir)?;
    let meta = fs::metadata(dir).map_err(|source| DataDirError::Access {
        path: dir.to_owned(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    // Only our own directory is changed: chmod-ing someone else's (possible as root) would
    // surprise whoever set it up.
    if meta.uid() == our_uid && mode & 0o777 != DIR_MODE {
        set_dir_mode(dir)?;
        if status == DataDirStatus::Existing {
            status = DataDirStatus::PermissionsTightened {
                previous_mode: mode,
            };
        }
    }
    Ok(status)
}

fn set_dir_mode(dir: &Path) -> Result<(), DataDirError> {
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(|source| {
        DataDirError::Permissions {
            path: dir.to_owned(),
            source,
        }
    })
}

/// Creates and removes a file in `dir`. Returns the uid that owns files we create, which is
/// how we learn our effective uid without `unsafe` libc calls.
fn probe_writable(dir: &Path) -> Result<u32, DataDirError> {
    let not_writable = |source| DataDirError::NotWritable {
        path: dir.to_owned(),
        source,
    };
    let probe = dir.join(format!(
        ".write-probe.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&probe)
        .map_err(not_writable)?;
    let uid = file.metadata().map(|m| m.uid());
    drop(file);
    fs::remove_file(&probe).map_err(not_writable)?;
    uid.map_err(not_writable)
}

/// Writes `bytes` to `path` atomically with mode 0600, replacing any existing file: temp file
/// in the same directory (created 0600), fsync, rename, fsync of the directory. For secrets
/// and other small files that must never be seen half-written or world-readable.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp_sibling(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

/// Like [`write_private_file`] but never replaces an existing file: returns `Ok(false)` if
/// `path` already exists. Used for the admin token so two daemons starting at once on the
/// same data dir cannot each believe their own generated token is the stored one.
fn create_private_file(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let tmp = write_temp_sibling(path, bytes)?;
    // `link` fails if the target exists, unlike `rename`: an atomic create-if-absent.
    let linked = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    };
    let _ = fs::remove_file(&tmp);
    if linked? {
        sync_parent(path)?;
        return Ok(true);
    }
    Ok(false)
}

fn write_temp_sibling(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// fsync the directory so the rename itself survives a power loss.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Writes the bound address to `DATA_DIR/listen-addr` (`IP:PORT` and a newline), so scripts
/// and tests that started the daemon with port 0 can find it.
pub fn write_listen_addr(dir: &Path, addr: SocketAddr) -> Result<(), DataDirError> {
    let path = dir.join(LISTEN_ADDR_FILE);
    write_private_file(&path, format!("{addr}\n").as_bytes())
        .map_err(|source| DataDirError::Write { path, source })
}

/// Removes `DATA_DIR/listen-addr` if present. Call before binding, so a script waiting for the
/// file never reads the port of a previous run.
pub fn clear_listen_addr(dir: &Path) -> Result<(), DataDirError> {
    let path = dir.join(LISTEN_ADDR_FILE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DataDirError::Write { path, source }),
    }
}

/// Why no admin token could be established.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("invalid admin token: {0}")]
    Invalid(String),
    #[error("cannot read admin token file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("admin token file {}: {reason}; fix it or delete it to generate a new token", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("cannot write admin token file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot get random bytes for the admin token: {0}")]
    Random(rand::Error),
}

/// Where the admin token came from; the caller logs this (and the path), never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminTokenSource {
    /// `--admin-token`, `PANDABRIDGE_ADMIN_TOKEN` or the config file; nothing written to disk.
    Explicit,
    /// Read from an existing `DATA_DIR/admin-token`.
    File(PathBuf),
    /// Generated on this start and stored at this path.
    Generated(PathBuf),
}

/// The bearer token guarding the admin API. `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken {
    secret: String,
    source: AdminTokenSource,
}

impl AdminToken {
    /// The token itself, for comparing or handing to a client. Do not log it.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    pub fn source(&self) -> &AdminTokenSource {
        &self.source
    }

    /// True on the start that generated the token: the caller logs where it was stored.
    pub fn was_generated(&self) -> bool {
        matches!(self.source, AdminTokenSource::Generated(_))
    }

    /// Constant-time comparison with a presented bearer token, so response timing does not
    /// reveal how many leading characters were right.
    pub fn matches(&self, presented: &str) -> bool {
        self.secret.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// The admin token to use: `explicit` if given (never written to disk); else the trimmed
/// contents of `DATA_DIR/admin-token`; else a new random `pbadm_…` token stored there with
/// mode 0600. Expects `dir` to exist ([`prepare_data_dir`]).
pub fn load_or_create_admin_token(
    dir: &Path,
    explicit: Option<&str>,
) -> Result<AdminToken, AdminTokenError> {
    if let Some(token) = explicit {
        check_token(token).map_err(AdminTokenError::Invalid)?;
        return Ok(AdminToken {
            secret: token.to_owned(),
            source: AdminTokenSource::Explicit,
        });
    }

    let path = dir.join(ADMIN_TOKEN_FILE);
    if let Some(secret) = read_token_file(&path)? {
        return Ok(AdminToken {
            secret,
            source: AdminTokenSource::File(path),
        });
    }

    let secret = generate_token()?;
    let created =
        create_private_file(&path, format!("{secret}\n").as_bytes()).map_err(|source| {
            AdminTokenError::Write {
                path: path.clone(),
                source,
            }
        })?;
    if created {
        return Ok(AdminToken {
            secret,
            source: AdminTokenSource::Generated(path),
        });
    }
    // Another process created the file between our read and our write: use its token.
    match read_token_file(&path)? {
        Some(secret) => Ok(AdminToken {
            secret,
            source: AdminTokenSource::File(path),
        }),
        None => Err(AdminTokenError::BadFile {
            path,
            reason: "disappeared while being created".to_owned(),
        }),
    }
}

/// Reads and validates an existing token file; `None` if there is none.
fn read_token_file(path: &Path) -> Result<Option<String>, AdminTokenError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AdminTokenError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    // Trimmed because operators write these files with `echo`, which adds a newline.
    let token = text.trim();
    check_token(token).map_err(|reason| AdminTokenError::BadFile {
        path: path.to_owned(),
        reason,
    })?;
    // A token file others can read is a leaked token waiting to happen; we own it, so tighten.
    let meta = fs::metadata(path).map_err(|source| AdminTokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(path, Permissions::from_mode(FILE_MODE)).map_err(|source| {
            AdminTokenError::Write {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    Ok(Some(token.to_owned()))
}

fn generate_token() -> Result<String, AdminTokenError> {
    let mut bytes = [0u8; ADMIN_TOKEN_RANDOM_BYTES];
    // The OS generator directly: this is a long-lived credential.
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(AdminTokenError::Random)?;
    let mut token = String::with_capacity(ADMIN_TOKEN_PREFIX.len() + 2 * bytes.len());
    token.push_str(ADMIN_TOKEN_PREFIX);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    Ok(token)
}

/// A token must be sendable as `Authorization: Bearer <token>`: non-empty, printable ASCII,
/// no spaces. Rejecting anything else at startup beats a daemon nobody can authenticate to.
pub(super) fn check_token(token: &str) -> Result<&str, String> {
    if token.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    Ok(token)
}

/// The data dir's lock, held while it lives (see [`lock_data_dir`]).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// How long [`lock_data_dir`] waits for a daemon that is still finishing its stop.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes `DATA_DIR/lock` (an exclusive `flock`, released when the process ends however it
/// ends), so that a second daemon on the same data dir stops before it touches anything of the
/// first's: its `listen-addr`, its secrets, its store.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|source| DataDirError::Write {
            path: path.clone(),
            source,
        })?;
    match crate::flock::lock_within(&file, LOCK_PATIENCE) {
        Ok(true) => Ok(DataDirLock { _file: file }),
        Ok(false) => Err(DataDirError::InUse {
            path: dir.to_owned(),
        }),
        Err(source) => Err(DataDirError::Write { path, source }),
    }
}
