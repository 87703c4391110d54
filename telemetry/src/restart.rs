//! Restarting a process in place under environment settings that a C
//! library reads only when the process starts (glibc's malloc tunables for
//! the agent, mimalloc's options for the simulator). Setting them through
//! the libraries' C APIs instead would need `unsafe`, which the workspace
//! forbids.

use std::os::unix::process::CommandExt as _;

/// Replaces the process (same pid, same arguments) with itself under
/// `settings`, unless the environment names any of them already: because
/// this is that second start, or because someone chose other values.
/// Returns only when it did not replace the process, with the reason if
/// `exec` failed (the caller then runs on without the settings).
pub fn with_env(settings: &[(&str, &str)]) -> Option<std::io::Error> {
    if settings
        .iter()
        .any(|(name, _)| std::env::var_os(name).is_some())
    {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return Some(error),
    };
    Some(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(settings.iter().copied())
            .exec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_the_environment_already_names_is_left_alone() {
        // Had it not been, the test process would have been replaced.
        assert!(with_env(&[("PATH", "/nowhere")]).is_none());
    }
}
