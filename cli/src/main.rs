//! shoal: the user's command (demo, dev up, status).
//!
//! Not built yet: this binary refuses to run rather than pretend to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("shoal: the command line (demo, dev up, status) is not implemented yet");
    ExitCode::FAILURE
}
