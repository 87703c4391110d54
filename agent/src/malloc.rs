//! The agent's glibc malloc policy, fixed before the agent allocates much.
//!
//! glibc serves allocations above an adaptive threshold with mmap, and
//! raises that threshold to the size of each mmapped chunk freed. After the
//! first 4 MiB piece buffer is freed, pieces, 1 MiB client chunks and
//! 256 KiB frames all come from per-thread arenas, whose freed space stays
//! resident: a cold 4 GiB pull peaked at 79-81 MiB that way, against
//! 54-57 MiB with the threshold pinned at 1 MiB and two arenas, and was as
//! fast (BENCHMARKS.md, agent memory). glibc reads its tunables only when a
//! process starts, and `mallopt` would need `unsafe`, which the workspace
//! forbids; so the agent starts itself once more with them set.

/// What the agent runs under unless its environment already names tunables.
pub const TUNABLES: &str = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.arena_max=2";

/// Replaces the process (same pid, same arguments) with itself under
/// [`TUNABLES`], unless `GLIBC_TUNABLES` is set already (see
/// [`shoal_telemetry::restart::with_env`]). Returns only when it did not
/// replace the process, with the reason if `exec` failed (the agent then
/// runs on under glibc's defaults).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn apply() -> Option<std::io::Error> {
    shoal_telemetry::restart::with_env(&[("GLIBC_TUNABLES", TUNABLES)])
}

/// Other C libraries have their own allocators, which these tunables do
/// not concern.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn apply() -> Option<std::io::Error> {
    None
}
