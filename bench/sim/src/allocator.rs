//! The simulator's allocator and its settings, fixed before it allocates
//! much.
//!
//! A run at 10,000 agents holds ~6 GB of torrents, connections and events
//! and touches them at random: every event costs a few cache misses, and
//! with 4 KiB pages a TLB miss with each. mimalloc (already in the tree
//! through the tracker) with two settings that its defaults leave off:
//!
//! - `MIMALLOC_ALLOW_LARGE_OS_PAGES=1`: arenas in 2 MiB pages (transparent
//!   huge pages by `madvise`), so most of those misses skip the page walk;
//! - `MIMALLOC_PURGE_DELAY=-1`: freed pages stay mapped instead of being
//!   returned after 10 ms and faulted back in (and zeroed by the kernel)
//!   when the next burst of events reuses them.
//!
//! At N = 1,000 with a 1 GiB blob the two cut the run from 43.7 to 34.3 s
//! wall and its system time from 4.2 to 1.9 s (RESULTS.md, "Simulation
//! speed, third pass"). mimalloc reads them from the environment only when the
//! process starts, so the simulator starts itself once more with them set.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The settings, unless the environment already names one of them.
const SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"),
    ("MIMALLOC_PURGE_DELAY", "-1"),
];

/// Replaces the process with itself under [`SETTINGS`], unless one of them
/// is set already (see [`shoal_telemetry::restart::with_env`]). Returns
/// only when it did not, with the reason if `exec` failed (the run then
/// goes on under mimalloc's defaults, slower but the same).
pub fn apply() -> Option<std::io::Error> {
    shoal_telemetry::restart::with_env(&SETTINGS)
}
