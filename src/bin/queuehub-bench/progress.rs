//! The progress bar a scenario shows while it runs: drawn on stdout when stdout is a
//! terminal, hidden otherwise (in scripts, logs and tests).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar; see the module docs.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar counting `unit` up to `total`.
    pub fn new(label: &str, unit: &str, total: u64) -> Progress {
        let target = if std::io::stdout().is_terminal() {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let template = format!(
            "{label:>9} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}})"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        Progress { bar }
    }

    /// Moves the bar to `position`.
    pub fn set(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Removes the bar (the report follows).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
