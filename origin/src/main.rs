//! shoal-origin: the origin (upstream fetch, metainfo, seeding).
//!
//! Not built yet: this binary refuses to run rather than pretend to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "shoal-origin: the origin (upstream fetch, metainfo, seeding) is not implemented yet"
    );
    ExitCode::FAILURE
}
