//! Where segments are kept: a [`Store`] puts, gets, lists and deletes them by key, and
//! when `put` returns Ok the bytes are durable. [`DirStore`] keeps them in a directory
//! (fsynced), [`S3Store`] in an S3 bucket; [`open`] picks one from the configuration.
//!
//! Keys are relative paths of `[0-9a-z.-]` segments separated by `/` (see [`check_key`]);
//! names starting with `.` are the stores' own (temporary files, probes) and are neither
//! accepted nor listed.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::config::{Config, S3Config};

/// Why a store did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Nothing is stored under the key.
    #[error("no archive segment {0}")]
    NotFound(String),
    /// The storage failed: what was being done, and the storage's own words (never a
    /// secret).
    #[error("archive storage failed: {0}")]
    Failed(String),
    /// The key is not one a store takes.
    #[error("{0:?} is not an archive key (relative segments of 0-9, a-z, . and -)")]
    InvalidKey(String),
}

/// Segments' storage.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores `bytes` under `key`; when it returns Ok the bytes are durable.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError>;
    /// The bytes under `key`; [`StoreError::NotFound`] when there are none.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Removes the key; a missing key is Ok.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every stored key with its last-modified time (for the sweep of files no event
    /// records). Only keys [`check_key`] accepts are listed: a sweep never sees what a
    /// store did not write.
    async fn list(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
    /// Writes, reads back and deletes a small probe object: Ok when storage takes
    /// segments now.
    async fn probe(&self) -> Result<(), StoreError>;
    /// Removes what an interrupted write left (a temporary or probe file) older than
    /// `before`; how many. Object storage leaves nothing: a PUT is whole or absent.
    async fn remove_leftovers(&self, _before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Where it stores, for the log and the pages, never with a secret:
    /// `directory /abs/path` or `s3://bucket/prefix`.
    fn describe(&self) -> String;
}

/// The store the configuration names: S3 when `ARCHIVE_URL` is set, else the directory
/// `ARCHIVE_DIR`. Nothing is created or contacted here: a bad directory or bucket shows
/// as a storage failure when it is used (or probed), not as a crash at start.
pub fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    match &config.archive_s3 {
        Some(s3) => Ok(Arc::new(S3Store::new(s3)?)),
        None => {
            let root = std::path::absolute(&config.archive_dir).map_err(|e| {
                StoreError::Failed(format!(
                    "the archive directory {} has no absolute path: {e}",
                    config.archive_dir.display()
                ))
            })?;
            Ok(Arc::new(DirStore::new(root)))
        }
    }
}

/// Ok when `key` is a relative path of non-empty `[0-9a-z.-]` segments separated by `/`,
/// none starting with `.` (so no `.`, `..`, hidden names or absolute paths), at most
/// 1024 bytes.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let segment_ok = |s: &str| {
        !s.is_empty() && !s.starts_with('.') && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'.' | b'-'))
    };
    if key.len() <= 1024 && key.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err(StoreError::InvalidKey(key.to_owned()))
    }
}

/// The name of a probe object: hidden, and new each time (so replicas probing at once
/// do not delete each other's).
fn probe_name() -> String {
    format!(".probe-{}", uuid::Uuid::new_v4().simple())
}

fn probe_bytes() -> Bytes {
    Bytes::from_static(b"pulseguardian archive storage probe\n")
}

// ------------------------------------------------------------------ directory ---

/// Segments as files under `root`, one directory a queue. A put is durable: the bytes
/// are written to a temporary file, fsynced, renamed into place, and the directory is
/// fsynced (and so is the parent of every directory created).
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store under `root` (absolute, for a clear `describe`). Nothing is created yet.
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: String,
        f: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| StoreError::Failed(format!("{what}: the blocking task failed: {e}")))?
    }
}

fn io_failed(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Failed(format!("{what} {}: {e}", path.display()))
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_failed("syncing the directory", dir, e))
}

/// Makes `dir` and any missing parents, fsyncing the parent of each one created.
fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    missing.reverse();
    for d in missing {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(io_failed("creating the directory", d, e)),
        }
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` durably; on any failure the temporary file is removed.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(StoreError::Failed(format!("{} is not a file path", path.display())));
    };
    ensure_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_failed("creating", &tmp, e))?;
        f.write_all(bytes).map_err(|e| io_failed("writing", &tmp, e))?;
        f.sync_all().map_err(|e| io_failed("syncing", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_failed(&format!("renaming {} to", tmp.display()), path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    sync_dir(dir)
}

/// Every regular file under `dir` whose path relative to `root` is a key, with its mtime.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, DateTime<Utc>)>) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) && dir == root => return Ok(()),
        Err(e) => return Err(io_failed("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_failed("listing", dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(|e| io_failed("reading", &path, e))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let Some(key) = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| p.to_str())
                .map(|p| p.replace(std::path::MAIN_SEPARATOR, "/"))
                .filter(|k| check_key(k).is_ok())
            else {
                continue;
            };
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| io_failed("reading the time of", &path, e))?;
            out.push((key, DateTime::<Utc>::from(modified)));
        }
    }
    Ok(())
}

/// Removes the temporary and probe files under `dir` last changed before `before`.
fn remove_leftovers(dir: &Path, before: std::time::SystemTime) -> Result<u64, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(0),
        Err(e) => return Err(io_failed("listing", dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io_failed("listing", dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io_failed("reading", &path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() && !name.starts_with('.') {
            removed += remove_leftovers(&path, before)?;
        } else if kind.is_file() && (name.starts_with(".probe-") || (name.starts_with('.') && name.contains(".tmp-"))) {
            let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < before);
            if old {
                std::fs::remove_file(&path).map_err(|e| io_failed("removing", &path, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[async_trait::async_trait]
impl Store for DirStore {
    async fn remove_leftovers(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = std::time::SystemTime::from(before);
        self.blocking("removing interrupted writes".to_owned(), move |root| {
            remove_leftovers(root, before)
        })
        .await
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        let key = key.to_owned();
        self.blocking(format!("storing {key}"), move |root| {
            write_durably(&root.join(&key), &bytes)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        let key = key.to_owned();
        self.blocking(format!("reading {key}"), move |root| {
            let path = root.join(&key);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(e) if is_missing(&e) => Err(StoreError::NotFound(key)),
                Err(e) => Err(io_failed("reading", &path, e)),
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let key = key.to_owned();
        self.blocking(format!("deleting {key}"), move |root| {
            let path = root.join(&key);
            match std::fs::remove_file(&path) {
                Ok(()) => sync_dir(path.parent().unwrap_or(root)),
                Err(e) if is_missing(&e) => Ok(()),
                Err(e) => Err(io_failed("deleting", &path, e)),
            }
        })
        .await
    }

    async fn list(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.blocking("listing the archive".to_owned(), |root| {
            let mut out = Vec::new();
            walk(root, root, &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.blocking("probing the archive directory".to_owned(), |root| {
            let path = root.join(probe_name());
            let bytes = probe_bytes();
            write_durably(&path, &bytes)?;
            let back = std::fs::read(&path).map_err(|e| io_failed("reading back", &path, e));
            let removed = std::fs::remove_file(&path).map_err(|e| io_failed("removing", &path, e));
            if back? != bytes {
                return Err(StoreError::Failed(format!("{} read back other bytes", path.display())));
            }
            removed
        })
        .await
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

// ------------------------------------------------------------------------- S3 ---

/// How long one request to S3 may take, and how long to keep retrying one.
const S3_TIMEOUT: Duration = Duration::from_secs(30);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(20);
const S3_RETRIES: usize = 3;

/// Segments as objects of an S3 bucket (or an S3-compatible server), under a prefix.
pub struct S3Store {
    client: object_store::aws::AmazonS3,
    bucket: String,
    /// Empty for the bucket's root.
    prefix: ObjectPath,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("at", &self.describe())
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A client for the bucket; nothing is contacted yet. Keys and secrets not given in
    /// `config` come from the environment or the instance's role, as the AWS tools find
    /// them.
    pub fn new(config: &S3Config) -> Result<S3Store, StoreError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_timeout(S3_TIMEOUT)
                    .with_connect_timeout(S3_CONNECT_TIMEOUT),
            )
            .with_allow_http(config.allow_http)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig::default(),
                max_retries: S3_RETRIES,
                retry_timeout: S3_RETRY_TIMEOUT,
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(id) = &config.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token.expose());
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::Failed(format!("configuring S3 for bucket {}: {e}", config.bucket)))?;
        Ok(S3Store {
            client,
            bucket: config.bucket.clone(),
            // `parse`, not `from`: `Path::from` percent-encodes non-ASCII and `%`, so the
            // prefix `été` would become the object prefix `%C3%A9t%C3%A9`.
            prefix: ObjectPath::parse(&config.prefix).map_err(|e| {
                StoreError::Failed(format!(
                    "the prefix {:?} of bucket {}: {e}",
                    config.prefix, config.bucket
                ))
            })?,
        })
    }

    fn location(&self, name: &str) -> ObjectPath {
        let mut path = self.prefix.clone();
        for part in name.split('/') {
            path = path.child(part);
        }
        path
    }

    fn failed(&self, what: &str, name: &str, e: object_store::Error) -> StoreError {
        StoreError::Failed(format!("{what} {name} in {}: {e}", self.describe()))
    }

    async fn put_object(&self, name: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.client
            .put(&self.location(name), object_store::PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            // Not found, for a put, is the bucket: a failure like any other.
            .map_err(|e| self.failed("storing", name, e))
    }

    async fn get_object(&self, name: &str) -> Result<Bytes, StoreError> {
        let not_found = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound(name.to_owned()),
            e => self.failed("reading", name, e),
        };
        let got = self.client.get(&self.location(name)).await.map_err(not_found)?;
        got.bytes().await.map_err(not_found)
    }

    async fn delete_object(&self, name: &str) -> Result<(), StoreError> {
        match self.client.delete(&self.location(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("deleting", name, e)),
        }
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        self.put_object(key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        self.get_object(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        self.delete_object(key).await
    }

    async fn list(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let objects: Vec<object_store::ObjectMeta> = self
            .client
            .list(prefix)
            .try_collect()
            .await
            .map_err(|e| StoreError::Failed(format!("listing {}: {e}", self.describe())))?;
        let mut out: Vec<(String, DateTime<Utc>)> = objects
            .into_iter()
            .filter_map(|o| {
                let parts: Vec<String> = o
                    .location
                    .prefix_match(&self.prefix)?
                    .map(|p| p.as_ref().to_owned())
                    .collect();
                let key = parts.join("/");
                check_key(&key).is_ok().then_some((key, o.last_modified))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn probe(&self) -> Result<(), StoreError> {
        let name = probe_name();
        let bytes = probe_bytes();
        self.put_object(&name, bytes.clone()).await?;
        let back = self.get_object(&name).await;
        let removed = self.delete_object(&name).await;
        match back {
            Ok(back) if back == bytes => removed,
            Ok(_) => Err(StoreError::Failed(format!(
                "the probe {name} in {} read back other bytes",
                self.describe()
            ))),
            Err(StoreError::NotFound(_)) => Err(StoreError::Failed(format!(
                "the probe {name} in {} was stored but is not there",
                self.describe()
            ))),
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        if self.prefix.as_ref().is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn bytes(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    /// Every name under `dir`, relative, hidden ones too.
    fn everything(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn given_a_directory_store_when_segments_are_put_then_they_get_list_and_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path().join("archive"));
        // given nothing stored yet (not even the directory), then the list is empty
        assert_eq!(store.list().await.unwrap(), vec![]);
        let before = Utc::now() - chrono::Duration::seconds(5);
        store.put("aa/1.ndjson.gz", bytes("one")).await.unwrap();
        store.put("aa/2.ndjson.gz", bytes("two")).await.unwrap();
        store.put("bb/1.ndjson.gz", bytes("three")).await.unwrap();
        assert_eq!(store.get("aa/2.ndjson.gz").await.unwrap(), bytes("two"));
        let listed = store.list().await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["aa/1.ndjson.gz", "aa/2.ndjson.gz", "bb/1.ndjson.gz"]);
        assert!(listed.iter().all(|(_, t)| *t > before && *t <= Utc::now()));
        // when a key is put again, then it holds the new bytes
        store.put("aa/2.ndjson.gz", bytes("two again")).await.unwrap();
        assert_eq!(store.get("aa/2.ndjson.gz").await.unwrap(), bytes("two again"));
        store.delete("aa/1.ndjson.gz").await.unwrap();
        assert_eq!(
            store.get("aa/1.ndjson.gz").await,
            Err(StoreError::NotFound("aa/1.ndjson.gz".into()))
        );
        assert_eq!(store.list().await.unwrap().len(), 2);
        // and a missing key, or one below a file, is not found, and deleting it is Ok
        assert!(matches!(store.get("zz/9").await, Err(StoreError::NotFound(_))));
        assert!(matches!(
            store.get("bb/1.ndjson.gz/x").await,
            Err(StoreError::NotFound(_))
        ));
        store.delete("aa/1.ndjson.gz").await.unwrap();
        store.delete("zz/never").await.unwrap();
        store.delete("bb/1.ndjson.gz/x").await.unwrap();
        assert!(store.describe().starts_with("directory /"), "{}", store.describe());
    }

    #[tokio::test]
    async fn given_puts_and_a_probe_then_no_temporary_or_probe_file_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path());
        let puts = (0..16).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put(&format!("q/{i:02}.ndjson.gz"), bytes("x")).await })
        });
        for p in puts {
            p.await.unwrap().unwrap();
        }
        store.probe().await.unwrap();
        let mut expected: Vec<String> = (0..16).map(|i| format!("q/{i:02}.ndjson.gz")).collect();
        expected.push("q".into());
        expected.sort();
        assert_eq!(everything(tmp.path()), expected);
    }

    #[tokio::test]
    async fn given_a_write_that_fails_then_its_temporary_file_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path());
        store.put("q/inner", bytes("x")).await.unwrap();
        // when a key names a non-empty directory, then the rename fails
        let err = store.put("q", bytes("y")).await.unwrap_err();
        assert!(matches!(&err, StoreError::Failed(m) if m.contains("renaming")), "{err}");
        assert_eq!(everything(tmp.path()), ["q", "q/inner"]);
    }

    #[tokio::test]
    async fn given_a_directory_that_cannot_be_written_then_put_and_probe_fail_with_the_os_error() {
        let tmp = tempfile::tempdir().unwrap();
        // given a parent that is a regular file (refused even to root)
        std::fs::write(tmp.path().join("file"), b"").unwrap();
        let store = DirStore::new(tmp.path().join("file/sub"));
        let err = store.put("q/1", bytes("x")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Failed(m) if m.contains("Not a directory")),
            "{err}"
        );
        let err = store.probe().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Failed(m) if m.contains("Not a directory")),
            "{err}"
        );
        // and a root that cannot exist holds nothing
        assert_eq!(store.list().await, Ok(vec![]));

        // given a read-only directory, when permissions hold (not for root), then it fails too
        let ro = tmp.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let enforced = std::fs::write(ro.join("check"), b"").is_err();
        if enforced {
            let store = DirStore::new(&ro);
            let err = store.probe().await.unwrap_err();
            assert!(
                matches!(&err, StoreError::Failed(m) if m.contains("ermission denied")),
                "{err}"
            );
            let err = store.put("q/1", bytes("x")).await.unwrap_err();
            assert!(matches!(err, StoreError::Failed(_)), "{err}");
        }
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn given_keys_that_are_not_plain_relative_paths_then_every_operation_refuses_them() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path().join("archive"));
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".probe",
            "a/.hidden",
            "A/b",
            "a b",
            "a\\b",
            "a\0b",
            "ü",
        ] {
            let refused = Err(StoreError::InvalidKey(key.to_owned()));
            assert_eq!(check_key(key), refused, "{key:?}");
            assert_eq!(store.put(key, bytes("x")).await, refused, "{key:?}");
            assert_eq!(store.get(key).await.map(|_| ()), refused, "{key:?}");
            assert_eq!(store.delete(key).await, refused, "{key:?}");
        }
        assert!(check_key(&"a".repeat(1025)).is_err());
        assert!(check_key("0123abcdef/00000000000000000001-ab.ndjson.gz").is_ok());
        assert!(!tmp.path().join("archive").exists());
    }

    #[tokio::test]
    async fn given_files_the_store_did_not_write_then_list_skips_them() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path());
        store.put("q/1", bytes("x")).await.unwrap();
        std::fs::write(tmp.path().join("q/.1.tmp-abc"), b"").unwrap();
        std::fs::write(tmp.path().join("q/README.md"), b"").unwrap();
        std::fs::write(tmp.path().join(".probe-1"), b"").unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("etc")).unwrap();
        let keys: Vec<String> = store.list().await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["q/1"]);
    }

    #[tokio::test]
    async fn given_interrupted_writes_when_they_are_old_then_they_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path());
        store.put("q/1", bytes("x")).await.unwrap();
        std::fs::write(tmp.path().join("q/.1.tmp-abc"), b"half").unwrap();
        std::fs::write(tmp.path().join(".probe-1"), b"").unwrap();
        std::fs::write(tmp.path().join("q/README.md"), b"").unwrap();
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(store.remove_leftovers(an_hour_ago).await.unwrap(), 0, "too young");
        let later = Utc::now() + chrono::Duration::seconds(5);
        assert_eq!(store.remove_leftovers(later).await.unwrap(), 2);
        assert!(!tmp.path().join("q/.1.tmp-abc").exists() && !tmp.path().join(".probe-1").exists());
        assert!(
            tmp.path().join("q/README.md").exists(),
            "a file the store did not write stays"
        );
        assert_eq!(store.get("q/1").await.unwrap(), bytes("x"));
    }

    #[tokio::test]
    async fn given_no_s3_url_then_open_gives_the_archive_directory_made_absolute_and_creates_nothing() {
        let mut config = Config::from_lookup(|_| None).unwrap();
        config.archive_dir = PathBuf::from("relative/archive-that-is-not-there");
        let store = open(&config).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            store.describe(),
            format!("directory {}", cwd.join("relative/archive-that-is-not-there").display())
        );
        assert!(!cwd.join("relative").exists());
    }

    #[test]
    fn given_an_s3_url_then_open_describes_the_bucket_and_prefix_without_secrets() {
        let vars = |url: &'static str| {
            move |k: &str| match k {
                "ARCHIVE_URL" => Some(url.to_owned()),
                "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
                "AWS_SECRET_ACCESS_KEY" => Some("very-secret-value".to_owned()),
                "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9".to_owned()),
                "AWS_ALLOW_HTTP" => Some("true".to_owned()),
                _ => None,
            }
        };
        let store = open(&Config::from_lookup(vars("s3://pulse-archive/prod/queues")).unwrap()).unwrap();
        assert_eq!(store.describe(), "s3://pulse-archive/prod/queues");
        assert!(!format!("{store:?}").contains("very-secret-value"));
        let store = open(&Config::from_lookup(vars("s3://pulse-archive")).unwrap()).unwrap();
        assert_eq!(store.describe(), "s3://pulse-archive");
    }
}
