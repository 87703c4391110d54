//! containerd's registry host configuration: `DIR/<registry>/hosts.toml`
//! naming the agent as a pull/resolve mirror and the real registry as
//! `server`, so containerd uses the agent (adding `?ns=<registry>`) and
//! falls back to the registry when the agent fails.

use std::path::{Path, PathBuf};

use shoal_registry::reference::parse_namespace;

use super::{ConfigureError, Outcome, check_agent_url, write_if_changed};

/// The upstream URL containerd should fall back to for `registry`: Docker
/// Hub's API lives at `registry-1.docker.io`, not `docker.io`.
pub fn upstream_server(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://registry-1.docker.io".into()
        }
        other => format!("https://{other}"),
    }
}

/// The `hosts.toml` for one registry.
pub fn hosts_toml(registry: &str, agent_url: &str) -> String {
    format!(
        "# Written by `shoal-agent configure containerd`: pulls go through the\n\
         # local Shoal agent; containerd falls back to `server` if it fails.\n\
         server = \"{server}\"\n\
         \n\
         [host.\"{agent_url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        server = upstream_server(registry),
    )
}

/// Writes `hosts_dir/<registry>/hosts.toml` for every registry and touches
/// nothing else. Every name is checked before any file is written.
pub fn configure(
    hosts_dir: &Path,
    registries: &[String],
    agent_url: &str,
) -> Result<Vec<(PathBuf, Outcome)>, ConfigureError> {
    let agent_url = check_agent_url(agent_url)?;
    let mut checked = Vec::with_capacity(registries.len());
    for name in registries {
        let registry = parse_namespace(name.trim()).map_err(|e| ConfigureError::Registry {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        if registry.starts_with('[') {
            return Err(ConfigureError::Registry {
                name: name.clone(),
                reason: "IPv6 literals cannot name a hosts directory".into(),
            });
        }
        checked.push(registry);
    }
    let mut outcomes = Vec::with_capacity(checked.len());
    for registry in checked {
        let path = hosts_dir.join(&registry).join("hosts.toml");
        let outcome = write_if_changed(&path, hosts_toml(&registry, &agent_url).as_bytes())?;
        outcomes.push((path, outcome));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "http://127.0.0.1:5050";

    #[test]
    fn writes_one_hosts_file_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        let registries = vec!["docker.io".to_string(), "ghcr.io".to_string()];
        let outcomes = configure(dir.path(), &registries, AGENT).unwrap();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(|(_, o)| *o == Outcome::Written));
        let docker = std::fs::read_to_string(dir.path().join("docker.io/hosts.toml")).unwrap();
        let parsed: toml::Table = toml::from_str(&docker).unwrap();
        assert_eq!(
            parsed["server"].as_str(),
            Some("https://registry-1.docker.io")
        );
        let caps = &parsed["host"][AGENT]["capabilities"];
        assert_eq!(
            caps.as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>(),
            ["pull", "resolve"]
        );
        let ghcr: toml::Table = toml::from_str(
            &std::fs::read_to_string(dir.path().join("ghcr.io/hosts.toml")).unwrap(),
        )
        .unwrap();
        assert_eq!(ghcr["server"].as_str(), Some("https://ghcr.io"));
    }

    #[test]
    fn is_idempotent_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("quay.io/hosts.toml");
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::write(&other, "server = \"https://quay.io\"\n").unwrap();
        let stray = dir.path().join("docker.io/notes.txt");
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, "mine").unwrap();
        let registries = vec!["docker.io".to_string()];
        configure(dir.path(), &registries, AGENT).unwrap();
        let first = std::fs::read(dir.path().join("docker.io/hosts.toml")).unwrap();
        let again = configure(dir.path(), &registries, &format!("{AGENT}/")).unwrap();
        assert_eq!(again[0].1, Outcome::Unchanged);
        assert_eq!(
            std::fs::read(dir.path().join("docker.io/hosts.toml")).unwrap(),
            first
        );
        assert_eq!(
            std::fs::read_to_string(&other).unwrap(),
            "server = \"https://quay.io\"\n"
        );
        assert_eq!(std::fs::read_to_string(&stray).unwrap(), "mine");
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("docker.io"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries.len(), 2, "no temp files left: {entries:?}");
    }

    #[test]
    fn refuses_bad_names_before_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../etc", "a/b", "", "ghcr.io:0"] {
            let registries = vec!["docker.io".to_string(), bad.to_string()];
            assert!(
                configure(dir.path(), &registries, AGENT).is_err(),
                "{bad:?}"
            );
        }
        assert!(configure(dir.path(), &["ghcr.io".into()], "ftp://x").is_err());
        assert!(configure(dir.path(), &["ghcr.io".into()], "http://a\"b").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
