//! The JSON profile file, shared by its two owners: the cost model ([`super::cost`]: `format`, `cpu_model`,
//! `topology`, `source`, `cache`, `classes`) and the energy curves ([`super::energy`]: `energy`).
//!
//! Each owner reads the whole object, replaces only its own keys and writes it back ([`update`]), so re-running
//! the cost calibration never drops measured energy curves, and measuring energy never drops the cost model.
//! Writes go to a temporary file that is renamed over the profile: a reader never sees half a file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Top-level keys in the order they are written (others follow, alphabetically).
const KEY_ORDER: &[&str] = &["format", "cpu_model", "topology", "source", "cache", "classes", "energy"];

/// Why a profile file could not be read or written; the message names the file.
#[derive(Debug)]
pub(crate) enum FileError {
    Io(PathBuf, io::Error),
    /// The file exists but is not a JSON object.
    Format(PathBuf, String),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            FileError::Format(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Parse profile text: it must be one JSON object. The error says where the JSON is broken (line and column).
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the profile is not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Read the profile at `path`: `Ok(None)` when the file does not exist.
pub(crate) fn read_object(path: &Path) -> Result<Option<Map<String, Value>>, FileError> {
    match fs::read_to_string(path) {
        Ok(t) => parse_object(&t).map(Some).map_err(|e| FileError::Format(path.to_path_buf(), e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError::Io(path.to_path_buf(), e)),
    }
}

/// Pretty JSON with the top-level keys in [`KEY_ORDER`] (two-space indentation, trailing newline).
pub(crate) fn to_pretty(root: &Map<String, Value>) -> String {
    let rank = |k: &str| KEY_ORDER.iter().position(|o| *o == k).unwrap_or(KEY_ORDER.len());
    let mut keys: Vec<&String> = root.keys().collect();
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    let mut s = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("\n  ");
        s.push_str(&Value::String(k.to_string()).to_string());
        s.push_str(": ");
        // Nested values one level deeper. JSON strings never hold a raw newline (it is escaped), so every '\n'
        // of the pretty output is a line break between tokens.
        let v = serde_json::to_string_pretty(&root[k.as_str()]).expect("serializing JSON values cannot fail");
        s.push_str(&v.replace('\n', "\n  "));
    }
    if !keys.is_empty() {
        s.push('\n');
    }
    s.push_str("}\n");
    s
}

/// Read the profile at `path` (an empty object if it does not exist), let `edit` replace its own keys, and write
/// it back atomically. A file that exists but is not a JSON object is an error, never overwritten: it may hold
/// the other owner's data.
pub(crate) fn update(path: &Path, edit: impl FnOnce(&mut Map<String, Value>)) -> Result<(), FileError> {
    let mut root = match read_object(path) {
        Ok(r) => r.unwrap_or_default(),
        Err(FileError::Format(p, e)) => {
            return Err(FileError::Format(
                p,
                format!("{e}; not overwriting it (it may hold energy curves or a cost model): fix or remove it"),
            ))
        }
        Err(e) => return Err(e),
    };
    edit(&mut root);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| FileError::Io(dir.to_path_buf(), e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, to_pretty(&root)).map_err(|e| FileError::Io(tmp.clone(), e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        FileError::Io(path.to_path_buf(), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_orders_known_keys_first_and_round_trips() {
        let v = json!({ "zzz": [1, 2], "energy": {"version": 1}, "format": "x", "classes": [{"name": "a\nb"}] });
        let Value::Object(m) = v.clone() else { unreachable!() };
        let s = to_pretty(&m);
        let pos = |k: &str| s.find(&format!("\"{k}\"")).unwrap();
        assert!(pos("format") < pos("classes") && pos("classes") < pos("energy") && pos("energy") < pos("zzz"), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
        assert!(s.ends_with("}\n"));
        assert_eq!(to_pretty(&Map::new()), "{}\n");
    }

    #[test]
    fn update_keeps_other_keys_and_refuses_corrupt_files() {
        let dir = std::env::temp_dir().join(format!("asymo-test-profile-update-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let p = dir.join("sub/p.json");
        update(&p, |m| {
            m.insert("a".into(), json!(1));
        })
        .unwrap();
        update(&p, |m| {
            m.insert("b".into(), json!(2));
        })
        .unwrap();
        assert_eq!(read_object(&p).unwrap().unwrap(), json!({"a": 1, "b": 2}).as_object().unwrap().clone());
        fs::write(&p, "{\"a\": ").unwrap();
        let e = update(&p, |_| {}).unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("line 1") && e.contains("not overwriting"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"a\": ");
        fs::write(&p, "[1]").unwrap();
        assert!(update(&p, |_| {}).unwrap_err().to_string().contains("not a JSON object"));
        assert!(read_object(&dir.join("missing.json")).unwrap().is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
