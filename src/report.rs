//! Writing run reports for scripts (`--stats-json`).

use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Writes `value` as pretty JSON to `path`.
///
/// A regular file (or a new one) is replaced atomically: the JSON goes to a
/// uniquely named temporary file, created exclusively in the same
/// directory, which is renamed over `path`, so a reader never sees half a
/// file and nothing planted beside `path` is followed. Anything else
/// (`/dev/null`, a FIFO, a terminal) is written in place: replacing a
/// device node with a regular file would break it. A symbolic link is
/// followed, and what it names is treated the same way. A directory is an
/// error.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(std::io::Error::other)? + "\n";
    let target = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => Err(std::io::Error::other("it is a directory")),
        Ok(m) if !m.is_file() => {
            let mut f = std::fs::OpenOptions::new().write(true).open(&target)?;
            f.write_all(json.as_bytes())
        }
        Ok(m) => replace(&target, json.as_bytes(), Some(m.permissions())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            replace(&target, json.as_bytes(), None)
        }
        Err(e) => Err(e),
    }
}

/// Atomic replacement through an exclusively created temporary file beside
/// `target`, keeping the old file's permissions (a new file gets the usual
/// 0644 less the umask, as `File::create` would give it).
fn replace(
    target: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".rudp-stats-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(p) = permissions.or_else(default_permissions) {
        tmp.as_file().set_permissions(p)?;
    }
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(unix)]
fn default_permissions() -> Option<std::fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    // The process's umask, read without changing it (changing it, even
    // briefly, would race with other threads creating files).
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o022);
    Some(std::fs::Permissions::from_mode(0o666 & !mask))
}

/// Elsewhere the temporary file's own permissions stand.
#[cfg(not(unix))]
fn default_permissions() -> Option<std::fs::Permissions> {
    None
}

/// A line of advice in the command line's terms for an error the library
/// words without them (the library does not know its settings came from
/// `--psk`).
pub fn hint(e: &rudp::Error) -> Option<&'static str> {
    match e {
        rudp::Error::NoAnswerKeyed { .. } => {
            Some("hint: the client and server need the same --psk key file, or none")
        }
        rudp::Error::NoAnswerSecure { .. } => Some(
            "hint: if the server is running, its key may not be the one this client expects \
             (--server-key or known_hosts); the server prints its key when it starts",
        ),
        rudp::Error::Connection {
            source: rudp::ConnectionError::VersionMismatch { ours: 3, theirs },
            ..
        } if theirs.iter().all(|&v| v < 3) => Some(
            "hint: the server speaks only the clear protocol (no encryption); \
             connect with --insecure to use it anyway",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_nothing_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_json_atomic(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json_atomic(&p, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["a"], 2);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    /// Issue #12 item 8: a device node stays a device, a planted
    /// `PATH.tmp` symlink is not followed, and a symlink's target is
    /// written, not the link replaced.
    #[cfg(unix)]
    #[test]
    fn special_files_and_planted_links_are_safe() {
        use std::os::unix::fs::{symlink, FileTypeExt};
        let v = serde_json::json!({"x": 1});
        write_json_atomic(Path::new("/dev/null"), &v).unwrap();
        let m = std::fs::metadata("/dev/null").unwrap();
        assert!(m.file_type().is_char_device(), "/dev/null was replaced");

        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("s.json");
        symlink(&victim, dir.path().join("s.json.tmp")).unwrap();
        write_json_atomic(&p, &v).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

        let link = dir.path().join("link.json");
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        symlink(&real, &link).unwrap();
        write_json_atomic(&link, &v).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("\"x\": 1"));

        let err = write_json_atomic(dir.path(), &v).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }
}
