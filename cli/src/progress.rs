//! Progress bars: one per agent, drawn together with indicatif, or nothing
//! at all when the output is JSON or not a terminal (so logs and pipes stay
//! clean).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one run.
pub struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
}

impl Bars {
    /// Bars drawn on stderr, or hidden when `visible` is false.
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Bars {
            multi: MultiProgress::with_draw_target(target),
            style,
        }
    }

    /// A bar named `name` for `total` bytes.
    pub fn add(&self, name: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(self.style.clone());
        bar.set_prefix(name.to_owned());
        bar
    }

    /// A bar named `name` counting `total` things (nodes, files).
    pub fn add_count(&self, name: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        let style =
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos:>10}/{len:<10} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(name.to_owned());
        bar
    }

    /// Prints a line above the bars without tearing them.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.multi.is_hidden() {
            return;
        }
        let _ = self.multi.println(line);
    }
}
