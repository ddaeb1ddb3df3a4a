//! What the client prints and writes: JSON documents with the Atlas API's field names, plain
//! tables for people, and PEM files written atomically, mode 0600, never over an existing file
//! unless asked (`--force`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CliError, Exit};

/// Prints a JSON document on standard output.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::other(format!("cannot render json: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A list as the Atlas API answers it: `results`, and `totalCount` when counted.
pub fn list_json(results: Vec<serde_json::Value>, total_count: Option<i64>) -> serde_json::Value {
    let mut list = serde_json::json!({ "results": results });
    if let Some(total) = total_count {
        list["totalCount"] = serde_json::json!(total);
    }
    list
}

/// Prints rows as columns separated by at least two spaces, the first row a header.
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{line}");
    }
}

/// An Atlas timestamp (UTC, seconds, `Z`) of a protobuf timestamp; `null` when absent.
pub fn timestamp(t: Option<prost_types::Timestamp>) -> serde_json::Value {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// A timestamp as text for a table.
pub fn timestamp_text(t: Option<prost_types::Timestamp>) -> String {
    match timestamp(t) {
        serde_json::Value::String(s) => s,
        _ => "-".to_owned(),
    }
}

/// A file the client will write: checked before the call that produces its contents, so a
/// certificate is not issued only to be refused a place.
#[derive(Debug)]
pub struct OutFile {
    path: PathBuf,
    force: bool,
}

impl OutFile {
    /// Checks that `path` may be written: it does not exist, or `force` allows replacing it
    /// (and it is a regular file); its directory exists.
    pub fn check(path: &Path, force: bool) -> Result<Self, CliError> {
        match std::fs::symlink_metadata(path) {
            Ok(metadata) if !force => {
                let what = if metadata.is_file() { "file" } else { "path" };
                return Err(exists(path, what));
            }
            Ok(metadata) if !metadata.is_file() => {
                return Err(CliError::usage(format!(
                    "{} is not a regular file; --force replaces only files",
                    path.display()
                )));
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(CliError::other(format!(
                    "cannot use {}: {error}",
                    path.display()
                )));
            }
        }
        let dir = parent(path);
        if !dir.is_dir() {
            return Err(CliError::usage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            force,
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` atomically: into a new temporary file (0600) beside the target,
    /// synced, then linked to the target name, which fails if a file appeared there meanwhile
    /// (or, with `--force`, renamed over it). A reader never sees a partial file.
    ///
    /// If the contents were written but cannot take the target name (a file appeared there, a
    /// file system without hard links, …), the temporary file is kept, not removed: it may be
    /// the only copy of an issued private key. The error names it.
    pub fn write(&self, contents: &[u8]) -> Result<(), WriteError> {
        self.write_with(contents, |temp, target| std::fs::hard_link(temp, target))
    }

    /// [`Self::write`], linking with `link` (a test's stand-in for a file system that refuses
    /// hard links).
    fn write_with(
        &self,
        contents: &[u8],
        link: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
    ) -> Result<(), WriteError> {
        let dir = parent(&self.path);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io = |what: &str, error: std::io::Error| {
            CliError::other(format!("cannot {what} {}: {error}", self.path.display()))
        };
        let (temp_path, mut temp) = loop {
            let candidate = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&candidate)
            {
                Ok(file) => break (candidate, file),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(io("create a temporary file for", error).into()),
            }
        };
        if let Err(error) = temp.write_all(contents).and_then(|()| temp.sync_all()) {
            // Incomplete or not durable: nothing worth keeping.
            let _ = std::fs::remove_file(&temp_path);
            return Err(io("write", error).into());
        }
        drop(temp);
        let placed = if self.force {
            std::fs::rename(&temp_path, &self.path).map_err(|e| io("replace", e))
        } else {
            match link(&temp_path, &self.path) {
                Ok(()) => {
                    // The target name holds the contents now; the temporary one goes.
                    let _ = std::fs::remove_file(&temp_path);
                    Ok(())
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(exists(&self.path, "file"))
                }
                Err(error) => Err(io("create", error)),
            }
        };
        if let Err(error) = placed {
            let message = format!(
                "{error}; the contents are kept in {} (mode 0600): move it where you want \
                 it, e.g. mv -n {} {}",
                temp_path.display(),
                temp_path.display(),
                self.path.display()
            );
            return Err(WriteError {
                error: CliError::new(error.exit(), message),
                kept: Some(temp_path),
            });
        }
        if let Ok(dir) = std::fs::File::open(dir) {
            // Makes the new name durable (best effort: some file systems refuse it).
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// A failed [`OutFile::write`]: the error, and the temporary file holding the contents if
/// they were written but could not take the target name.
#[derive(Debug)]
pub struct WriteError {
    error: CliError,
    kept: Option<PathBuf>,
}

impl WriteError {
    /// The temporary file that still holds the contents, if any.
    pub fn kept(&self) -> Option<&Path> {
        self.kept.as_deref()
    }

    /// The error (its message names the kept file, if any).
    pub fn error(&self) -> &CliError {
        &self.error
    }
}

impl From<CliError> for WriteError {
    fn from(error: CliError) -> Self {
        Self { error, kept: None }
    }
}

impl From<WriteError> for CliError {
    fn from(failure: WriteError) -> Self {
        failure.error
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn exists(path: &Path, what: &str) -> CliError {
    CliError::new(
        Exit::Conflict,
        format!(
            "{what} {} exists: give --force to replace it, or another --out",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn out_files_are_private_and_never_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.pem");
        OutFile::check(&path, false).unwrap().write(b"one").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            OutFile::check(&path, false).unwrap_err().exit(),
            Exit::Conflict
        );
        // A file that appears between the check and the write is not replaced either.
        // Its contents are kept, 0600, in the temporary file the error names.
        let late = OutFile::check(&dir.path().join("b.pem"), false).unwrap();
        std::fs::write(dir.path().join("b.pem"), "theirs").unwrap();
        let failure = late.write(b"ours").unwrap_err();
        assert_eq!(failure.error().exit(), Exit::Conflict);
        assert_eq!(std::fs::read(dir.path().join("b.pem")).unwrap(), b"theirs");
        let kept = failure.kept().expect("the contents are kept").to_owned();
        assert!(
            failure
                .error()
                .to_string()
                .contains(&kept.display().to_string())
        );
        assert_eq!(std::fs::read(&kept).unwrap(), b"ours");
        std::fs::remove_file(&kept).unwrap();
        OutFile::check(&path, true).unwrap().write(b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temporary file is left behind after a write that succeeded.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn contents_that_cannot_be_linked_into_place_are_kept_and_named() {
        // A file system without hard links (vfat, some FUSE and SMB mounts) refuses the link:
        // the temporary file, maybe the only copy of an issued key, stays.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pem");
        let failure = OutFile::check(&path, false)
            .unwrap()
            .write_with(b"only copy", |_, _| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "operation not permitted",
                ))
            })
            .unwrap_err();
        assert_eq!(failure.error().exit(), Exit::Other);
        assert!(!path.exists());
        let kept = failure.kept().expect("the contents are kept");
        let message = failure.error().to_string();
        assert!(message.contains(&kept.display().to_string()), "{message}");
        assert!(message.contains("operation not permitted"), "{message}");
        assert_eq!(std::fs::read(kept).unwrap(), b"only copy");
        let mode = std::fs::metadata(kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
