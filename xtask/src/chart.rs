//! PNG charts of the comparisons (`cargo xtask load ... --compare`, `cargo xtask bench`): one
//! grouped bar chart per table, under `target/xtask/charts/`.
//!
//! xtask writes the data as a small tab-separated spec next to each PNG (`*.tsv`) and draws it
//! with plotters (`draw.rs`). Text is set in DejaVu Sans from Debian's `fonts-dejavu-core` (installed with
//! apt when missing and xtask runs as root); without the font the chart is drawn without text,
//! and xtask says so. Every chart's subtitle names the machine, the command and the date.

mod draw;

use crate::Result;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The font charts are drawn with, from Debian's `fonts-dejavu-core`.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT_PACKAGE: &str = "fonts-dejavu-core";

/// One grouped bar chart: a group of bars per row (scenario, input), a bar per series (server,
/// library).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chart {
    /// File name without extension (`load-stomp-throughput`).
    pub name: String,
    pub title: String,
    pub y_label: String,
    pub series: Vec<String>,
    /// Group label and one value per series (`None`: no result).
    pub groups: Vec<(String, Vec<Option<f64>>)>,
    /// (group, series) of the values that are only lower bounds (drawn labelled "≥").
    pub lower_bounds: Vec<(usize, usize)>,
}

impl Chart {
    /// Log scale when the positive values span more than 20x (otherwise the small bars vanish).
    pub fn log_scale(&self) -> bool {
        let values = self.groups.iter().flat_map(|(_, v)| v.iter().flatten());
        let (lo, hi) = values
            .filter(|v| **v > 0.0)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        hi > 0.0 && hi / lo > 20.0
    }

    /// The spec [`draw::render`] reads (the format is in draw.rs).
    pub fn spec(&self, subtitle: &str) -> String {
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        let mut out = String::new();
        let _ = writeln!(out, "title\t{}", clean(&self.title));
        let _ = writeln!(out, "subtitle\t{}", clean(subtitle));
        let _ = writeln!(out, "ylabel\t{}", clean(&self.y_label));
        let scale = if self.log_scale() { "log" } else { "linear" };
        let _ = writeln!(out, "scale\t{scale}");
        let series: Vec<String> = self.series.iter().map(|s| clean(s)).collect();
        let _ = writeln!(out, "series\t{}", series.join("\t"));
        for (gi, (label, values)) in self.groups.iter().enumerate() {
            let _ = write!(out, "group\t{}", clean(label));
            for (si, v) in values.iter().enumerate() {
                match v {
                    Some(v) if v.is_finite() => {
                        let bound = if self.lower_bounds.contains(&(gi, si)) {
                            ">"
                        } else {
                            ""
                        };
                        let _ = write!(out, "\t{bound}{v}");
                    }
                    _ => out.push_str("\t-"),
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Where charts go: `target/xtask/charts/`.
pub fn dir() -> PathBuf {
    crate::xtask_dir().join("charts")
}

/// "host, N CPUs, load average a b c" — what a reader needs to weigh the figures.
pub fn machine() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default();
    format!("{host}: {cpus} x {model}, load average {}", load_average())
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// UTC date and time, from `date` (xtask has no date library).
pub fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

/// The font, installing `fonts-dejavu-core` if it is missing and we may (root).
fn font() -> Option<&'static str> {
    if Path::new(FONT).exists() {
        return Some(FONT);
    }
    if crate::apt::is_root() {
        eprintln!("xtask chart: installing {FONT_PACKAGE} with apt for the charts' text");
        if let Err(e) = crate::apt::apt_install(&[FONT_PACKAGE]) {
            eprintln!("xtask chart: {e}");
        }
    }
    Path::new(FONT).exists().then_some(FONT)
}

/// Writes each chart's spec and draws it; returns the PNG paths. `command` is what produced
/// the figures (it goes into every subtitle with machine and date).
pub fn draw_all(charts: &[Chart], command: &str) -> Result<Vec<PathBuf>> {
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    let dir = dir();
    std::fs::create_dir_all(&dir)?;
    let font = font();
    if font.is_none() {
        eprintln!(
            "xtask chart: no {FONT} (Debian: {FONT_PACKAGE}): drawing the charts without text"
        );
    }
    let subtitle = format!("{}; `{command}`; {}", machine(), now_utc());
    let mut written = Vec::new();
    for c in charts {
        let spec = dir.join(format!("{}.tsv", c.name));
        let png = dir.join(format!("{}.png", c.name));
        std::fs::write(&spec, c.spec(&subtitle))?;
        draw::render(&c.spec(&subtitle), &png, font)
            .map_err(|e| format!("drawing {} failed: {e}", png.display()))?;
        written.push(png);
    }
    for p in &written {
        eprintln!("xtask: chart written: {}", p.display());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_lines_and_scale() {
        let mut c = Chart {
            name: "x".into(),
            title: "msgs/s".into(),
            y_label: "msgs/s".into(),
            series: vec!["switchboard".into(), "rabbitmq".into()],
            groups: vec![("topic\t1".into(), vec![Some(1000.0), None])],
            lower_bounds: Vec::new(),
        };
        assert!(!c.log_scale());
        let s = c.spec("m; cmd; date");
        assert_eq!(
            s,
            "title\tmsgs/s\nsubtitle\tm; cmd; date\nylabel\tmsgs/s\nscale\tlinear\n\
             series\tswitchboard\trabbitmq\ngroup\ttopic 1\t1000\t-\n"
        );
        c.groups
            .push(("b".into(), vec![Some(10.0), Some(f64::NAN)]));
        assert!(c.log_scale()); // 1000 / 10 > 20
        assert!(c.spec("").ends_with("group\tb\t10\t-\n"));
        c.lower_bounds.push((1, 0));
        assert!(c.spec("").ends_with("group\tb\t>10\t-\n"));
    }

    #[test]
    fn machine_line_names_the_load() {
        assert!(machine().contains("load average"));
        assert!(!load_average().is_empty());
    }
}
