//! Docker Engine's `daemon.json`: `registry-mirrors` lists the agent, so
//! Docker Hub pulls go through it (Docker only mirrors docker.io, and falls
//! back to the Hub when the mirror fails). Every other key is kept.

use std::path::Path;

use serde_json::{Map, Value};

use super::{ConfigureError, Outcome, check_agent_url, write_if_changed};

/// The daemon.json text with the agent first in `registry-mirrors`, other
/// mirrors kept after it and every other key untouched.
pub fn with_mirror(existing: &str, agent_url: &str) -> Result<String, String> {
    let mut root: Map<String, Value> = if existing.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str(existing).map_err(|e| e.to_string())? {
            Value::Object(map) => map,
            _ => return Err("not a JSON object".into()),
        }
    };
    let mut mirrors = vec![Value::String(agent_url.to_string())];
    match root.get("registry-mirrors") {
        None => {}
        Some(Value::Array(old)) => mirrors.extend(
            old.iter()
                .filter(|m| m.as_str().map(|s| s.trim_end_matches('/')) != Some(agent_url))
                .cloned(),
        ),
        Some(_) => return Err("registry-mirrors is not a list".into()),
    }
    root.insert("registry-mirrors".into(), Value::Array(mirrors));
    let mut text = serde_json::to_string_pretty(&Value::Object(root)).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// Updates `path` (created if missing). A file that is not a JSON object is
/// refused and left as it is.
pub fn configure(path: &Path, agent_url: &str) -> Result<Outcome, ConfigureError> {
    let agent_url = check_agent_url(agent_url)?;
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigureError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let text = with_mirror(&existing, &agent_url).map_err(|reason| ConfigureError::Existing {
        path: path.to_path_buf(),
        reason,
    })?;
    write_if_changed(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "http://127.0.0.1:5050";

    #[test]
    fn keeps_other_keys_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(
            &path,
            r#"{"log-driver":"journald","registry-mirrors":["https://mirror.example"],"debug":true}"#,
        )
        .unwrap();
        assert_eq!(configure(&path, AGENT).unwrap(), Outcome::Written);
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["log-driver"], "journald");
        assert_eq!(json["debug"], true);
        assert_eq!(
            json["registry-mirrors"],
            serde_json::json!([AGENT, "https://mirror.example"])
        );
        assert_eq!(configure(&path, AGENT).unwrap(), Outcome::Unchanged);
    }

    #[test]
    fn creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/daemon.json");
        configure(&path, AGENT).unwrap();
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"registry-mirrors": [AGENT]}));
    }

    #[test]
    fn refuses_a_file_it_cannot_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        for bad in ["[1,2]", "{not json", r#"{"registry-mirrors":"x"}"#] {
            std::fs::write(&path, bad).unwrap();
            assert!(configure(&path, AGENT).is_err(), "{bad}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
        }
    }
}
