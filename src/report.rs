//! Writing run reports for scripts (`--stats-json`).

use serde::Serialize;
use std::path::Path;

/// Writes `value` as pretty JSON to `path`, atomically: a temporary file
/// beside it is renamed into place, so a reader never sees half a file.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, json + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files() {
        let dir = std::env::temp_dir().join(format!("rudp-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.json");
        write_json_atomic(&p, &serde_json::json!({"a": 1})).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["a"], 1);
        assert!(!dir.join("s.json.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
