//! The benchmark's output: one Markdown table (measurement, target, measured, holds) plus notes,
//! and the number formats it uses, so every scenario reads the same in a terminal, in
//! `docs/bench.md` and in the README.

use std::fmt;

use hdrhistogram::Histogram;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub measurement: String,
    pub target: String,
    pub measured: String,
    /// Whether the target holds; `None` where it is not judged (smoke runs, missing data).
    pub holds: Option<bool>,
}

/// A titled table with notes underneath.
#[derive(Debug, Default)]
pub struct Table {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// Adds a row; `holds` is dropped when `judge` is false.
    pub fn row(
        &mut self,
        measurement: impl Into<String>,
        target: impl Into<String>,
        measured: impl Into<String>,
        holds: Option<bool>,
        judge: bool,
    ) {
        self.rows.push(Row {
            measurement: measurement.into(),
            target: target.into(),
            measured: measured.into(),
            holds: holds.filter(|_| judge),
        });
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        writeln!(f)?;
        writeln!(f, "| measurement | target | measured | holds |")?;
        writeln!(f, "| --- | --- | --- | --- |")?;
        for row in &self.rows {
            let holds = match row.holds {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            writeln!(
                f,
                "| {} | {} | {} | {} |",
                row.measurement, row.target, row.measured, holds
            )?;
        }
        if !self.notes.is_empty() {
            writeln!(f)?;
            for note in &self.notes {
                writeln!(f, "- {note}")?;
            }
        }
        Ok(())
    }
}

/// `19 500`: thousands separated by a space, as the issue writes them.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A duration in microseconds with a readable unit: `850 µs`, `3.4 ms`, `2.10 s`.
pub fn micros(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=9_999 => format!("{:.2} ms", us as f64 / 1e3),
        10_000..=999_999 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// `p50 1.20 ms · p99 3.40 ms · max 9.00 ms`, or `no samples`.
pub fn latency(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {} · p99 {} · max {}",
        micros(h.value_at_quantile(0.5)),
        micros(h.value_at_quantile(0.99)),
        micros(h.max())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_counts_with_spaces() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(19_500), "19 500");
        assert_eq!(count(1_234_567), "1 234 567");
    }

    #[test]
    fn formats_durations_by_magnitude() {
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(3_400), "3.40 ms");
        assert_eq!(micros(25_000), "25.0 ms");
        assert_eq!(micros(2_100_000), "2.10 s");
    }

    #[test]
    fn renders_a_markdown_table() {
        let mut t = Table::new("title");
        t.row("a", "≤ 1", "0.5", Some(true), true);
        t.row("b", "≤ 1", "2", Some(false), false);
        t.notes.push("n".into());
        let text = t.to_string();
        assert!(text.contains("| a | ≤ 1 | 0.5 | yes |"));
        assert!(text.contains("| b | ≤ 1 | 2 | – |"));
        assert!(text.ends_with("- n\n"));
    }
}
