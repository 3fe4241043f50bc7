//! Where output goes: data on stdout (text or JSON), logs and progress on stderr, progress
//! hidden when stderr is not a terminal or with `-q`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{OutputFormat, OutputOptions};

#[derive(Debug, Clone)]
pub struct Printer {
    pub format: OutputFormat,
    pub verbose: bool,
    pub quiet: bool,
}

impl Printer {
    pub fn new(output: &OutputOptions) -> Printer {
        Printer {
            format: output.format,
            verbose: output.verbose,
            quiet: output.quiet,
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A log line on stderr (hidden with `-q`).
    pub fn log(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A problem worth seeing even with `-q`, on stderr.
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("{}", msg.as_ref());
    }

    /// A log line shown only with `-v`.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A spinner (no known length) or bar on stderr; hidden unless stderr is a terminal.
    pub fn progress(&self, len: Option<u64>, what: &str) -> ProgressBar {
        self.shown(what, || match len {
            Some(n) => ProgressBar::new(n).with_style(style(
                "{msg} [{bar:30}] {pos}/{len} ({elapsed})",
                ProgressStyle::default_bar,
            )),
            None => ProgressBar::new_spinner().with_style(style(
                "{spinner} {msg} {pos} ({elapsed})",
                ProgressStyle::default_spinner,
            )),
        })
    }

    /// A bar counting `total` bytes, with throughput and time left; hidden unless stderr is a
    /// terminal.
    pub fn progress_bytes(&self, total: u64, what: &str) -> ProgressBar {
        self.shown(what, || {
            ProgressBar::new(total).with_style(style(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
                ProgressStyle::default_bar,
            ))
        })
    }

    /// The bar `make` makes, labelled `what` and drawn on a terminal; a hidden one (which
    /// still counts) when quiet or when stderr is a log.
    fn shown(&self, what: &str, make: impl FnOnce() -> ProgressBar) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let pb = make();
        pb.set_message(what.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// Write `data` to stdout. A closed pipe (`| head`) is not an error.
    pub fn data(&self, data: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match out.write_all(data.as_bytes()).and_then(|_| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// Write a JSON value (pretty, with a final newline) to stdout, streamed: a report of
    /// 100,000 specs is never held as one string.
    pub fn json(&self, value: &impl serde::Serialize) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let written = serde_json::to_writer_pretty(&mut out, value)
            .map_err(std::io::Error::from)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush());
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// An error that ends the run, with its causes, on stderr: `error: …`, or with `--output
    /// json` an `{"error": …, "causes": […]}` object, so a JSON reader never parses prose.
    pub fn error(&self, err: &(dyn std::error::Error + 'static)) {
        let mut causes = Vec::new();
        let mut cur = err.source();
        while let Some(c) = cur {
            causes.push(c.to_string());
            cur = c.source();
        }
        if self.is_json() {
            let value = serde_json::json!({ "error": err.to_string(), "causes": causes });
            eprintln!("{value}");
        } else {
            let mut line = format!("error: {err}");
            for c in &causes {
                line.push_str(&format!(": {c}"));
            }
            eprintln!("{line}");
        }
    }

    /// A report: `value` as JSON with `--output json`, else `text`.
    pub fn emit(&self, value: &impl serde::Serialize, text: &str) -> std::io::Result<()> {
        if self.is_json() {
            self.json(value)
        } else {
            self.data(text)
        }
    }
}

/// Left-aligned columns separated by two spaces; numeric-looking columns are right-aligned
/// when `right` says so.
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A progress style from `template`, or `fallback` should the template not parse.
fn style(template: &str, fallback: fn() -> ProgressStyle) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| fallback())
}

/// A short age: `45s`, `12m`, `5h`, `3d`.
pub fn short_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub use model::time::rfc3339;

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", "SIZE"],
            &[
                vec!["libelf".into(), "1 B".into()],
                vec!["a".into(), "10 KiB".into()],
            ],
            &[false, true],
        );
        assert_eq!(t, "NAME      SIZE\nlibelf     1 B\na       10 KiB\n");
    }

    #[test]
    fn units() {
        assert_eq!(short_age(Duration::from_secs(3 * 86400 + 5)), "3d");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(
            rfc3339(std::time::SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
    }
}
