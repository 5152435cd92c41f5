//! Draws one grouped bar chart as a PNG with plotters (bitmap backend, text through ab_glyph).
//!
//! The chart is described by a small spec, one tab-separated record per line (`<TAB>` below is
//! one tab character); xtask writes it next to the PNG, so the figures stay readable as text:
//!
//! ```text
//! title <TAB> delivered msgs/s
//! subtitle <TAB> machine, command, date
//! ylabel <TAB> msgs/s
//! scale <TAB> log            (or linear)
//! series <TAB> switchboard <TAB> rabbitmq <TAB> activemq
//! group <TAB> topic 1 -> 10 <TAB> 1143827 <TAB> 33122 <TAB> -
//! ```
//!
//! One group of bars per `group` line (its label under it), one bar per series (a legend names
//! them), each bar labelled with its value; `-` is a missing value (no bar, "n/a"), and a value
//! written `>V` is a lower bound (the bar is drawn at `V`, labelled "≥V"). Text needs a
//! TrueType font; without one the chart is drawn without any text.
//!
//! plotters lives in xtask, not in crates/bench: there its `ab_glyph` feature would unify into
//! criterion's plotters, whose SVG reports then fail for want of a registered font.

use crate::Result;
use plotters::prelude::*;

/// What to draw.
#[derive(Debug, Default)]
struct Spec {
    title: String,
    subtitle: String,
    y_label: String,
    log: bool,
    series: Vec<String>,
    groups: Vec<(String, Vec<Option<f64>>)>,
    /// (group, series) of the values that are lower bounds.
    lower_bounds: Vec<(usize, usize)>,
}

fn parse(text: &str) -> Result<Spec> {
    let mut s = Spec::default();
    for (n, line) in text.lines().enumerate() {
        let mut f = line.split('\t');
        let key = f.next().unwrap_or("");
        let rest: Vec<&str> = f.collect();
        let first = || rest.first().copied().unwrap_or("").to_owned();
        match key {
            "" => {}
            "title" => s.title = first(),
            "subtitle" => s.subtitle = first(),
            "ylabel" => s.y_label = first(),
            "scale" => s.log = first() == "log",
            "series" => s.series = rest.iter().map(|x| x.to_string()).collect(),
            "group" => {
                let (label, values) = rest.split_first().ok_or("group without a label")?;
                let gi = s.groups.len();
                let values = values
                    .iter()
                    .enumerate()
                    .map(|(si, v)| match *v {
                        "-" | "" => Ok(None),
                        v => {
                            let v = match v.strip_prefix('>') {
                                Some(v) => {
                                    s.lower_bounds.push((gi, si));
                                    v
                                }
                                None => v,
                            };
                            v.parse::<f64>()
                                .map(|x| Some(x).filter(|x| x.is_finite()))
                                .map_err(|_| format!("line {}: not a number: {v}", n + 1))
                        }
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                s.groups.push((label.to_string(), values));
            }
            other => return Err(format!("line {}: unknown record `{other}`", n + 1).into()),
        }
    }
    if s.series.is_empty() || s.groups.is_empty() {
        return Err("nothing to draw (no series or no group)".into());
    }
    Ok(s)
}

/// A short form of a value for a bar's label: 3 significant digits, k/M suffixes.
fn short(v: f64) -> String {
    let (x, suffix) = if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else if x.abs() >= 0.1 || x == 0.0 {
        2
    } else {
        // Two significant digits for small values (CPU seconds per message...).
        (-x.abs().log10().floor()) as usize + 1
    };
    format!("{x:.digits$}{suffix}")
}

/// About how wide a character of a group label is, in pixels (13 px DejaVu Sans).
const LABEL_CHAR_PX: i32 = 7;

/// A group's label on as many lines as it needs to fit `room` pixels, broken after commas
/// (then spaces).
fn label_lines(label: &str, room: i32) -> Vec<String> {
    let fits = |s: &str| LABEL_CHAR_PX * s.chars().count() as i32 <= room * 95 / 100;
    if fits(label) {
        return vec![label.to_owned()];
    }
    let sep = if label.contains(", ") { ", " } else { " " };
    let mut lines: Vec<String> = Vec::new();
    for word in label.split(sep) {
        match lines.last_mut() {
            Some(last) if fits(&format!("{last}{sep}{word}")) => {
                last.push_str(sep);
                last.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn draw(s: &Spec, out: &std::path::Path, text: bool) -> Result {
    let (w, h) = (1100u32, 620u32);
    let root = BitMapBackend::new(out, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let values: Vec<f64> = s
        .groups
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .filter(|v| *v > 0.0 || !s.log)
        .collect();
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1e-9);
    let min_pos = values
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let n = s.groups.len() as f64;
    let mut area = root.clone();
    if text {
        let (top, rest) = root.split_vertically(58);
        top.draw(&Text::new(
            s.title.clone(),
            (12, 6),
            ("sans-serif", 20).into_font().color(&BLACK),
        ))?;
        top.draw(&Text::new(
            s.subtitle.clone(),
            (12, 34),
            ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
        ))?;
        area = rest;
    }
    let mut builder = ChartBuilder::on(&area);
    builder.margin(12);
    if text {
        builder.x_label_area_size(72).y_label_area_size(80);
    }
    let bars = s.series.len() as f64;
    let slot = 0.8 / bars;
    let rect = |gi: usize, si: usize| {
        let x0 = gi as f64 + 0.1 + si as f64 * slot;
        (x0 + slot * 0.06, x0 + slot * 0.94)
    };
    macro_rules! body {
        ($chart:expr, $lo:expr) => {{
            let mut chart = $chart;
            let mut mesh = chart.configure_mesh();
            mesh.disable_x_mesh().x_labels(0);
            if text {
                mesh.y_desc(s.y_label.clone())
                    .y_label_formatter(&|v| short(*v))
                    .label_style(("sans-serif", 13));
            } else {
                mesh.y_labels(0);
            }
            mesh.draw()?;
            for (si, name) in s.series.iter().enumerate() {
                let color = COLORS[si % COLORS.len()];
                let series =
                    chart.draw_series(s.groups.iter().enumerate().filter_map(|(gi, (_, v))| {
                        let v = v.get(si).copied().flatten()?;
                        let (x0, x1) = rect(gi, si);
                        Some(Rectangle::new(
                            [(x0, $lo), (x1, v.max($lo))],
                            color.filled(),
                        ))
                    }))?;
                if text {
                    series.label(name.clone()).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                    });
                }
            }
            if text {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 14))
                    .draw()?;
                let style = ("sans-serif", 11).into_font().color(&BLACK);
                for (gi, (label, v)) in s.groups.iter().enumerate() {
                    for si in 0..s.series.len() {
                        let (x0, x1) = rect(gi, si);
                        let mid = (x0 + x1) / 2.0;
                        let (px, py) = match v.get(si).copied().flatten() {
                            Some(v) => {
                                let (px, py) = chart.backend_coord(&(mid, v.max($lo)));
                                let bound = s.lower_bounds.contains(&(gi, si));
                                let t = format!("{}{}", if bound { "≥" } else { "" }, short(v));
                                (px - 3 * t.len() as i32, (py - 14, t))
                            }
                            None => {
                                let (px, py) = chart.backend_coord(&(mid, $lo));
                                (px - 9, (py - 14, "n/a".to_owned()))
                            }
                        };
                        root.draw(&Text::new(py.1, (px, py.0), style.clone()))?;
                    }
                    let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, $lo));
                    let room =
                        chart.backend_coord(&(1.0, $lo)).0 - chart.backend_coord(&(0.0, $lo)).0;
                    for (li, line) in label_lines(label, room).iter().enumerate() {
                        let width = LABEL_CHAR_PX * line.chars().count() as i32;
                        root.draw(&Text::new(
                            line.clone(),
                            (px - width / 2, py + 8 + 16 * li as i32),
                            ("sans-serif", 13).into_font().color(&BLACK),
                        ))?;
                    }
                }
            }
        }};
    }
    if s.log && min_pos.is_finite() {
        let lo = 10f64.powf(min_pos.log10().floor());
        // A decade of headroom above the tallest bar, for its label and the legend.
        let hi = 10f64.powf((max * 1.5).log10().ceil() + 1.0);
        body!(
            builder.build_cartesian_2d(0.0..n, (lo..hi).log_scale())?,
            lo
        )
    } else {
        body!(builder.build_cartesian_2d(0.0..n, 0.0..max * 1.4)?, 0.0)
    }
    root.present()?;
    Ok(())
}

/// Registers `font` (once per process) as plotters' "sans-serif".
fn register_font(font: &str) -> Result<bool> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if let Some(ok) = REGISTERED.get() {
        return Ok(*ok);
    }
    // plotters keeps the font for the whole process: leaking it once is its API.
    let bytes: &'static [u8] = Box::leak(std::fs::read(font)?.into_boxed_slice());
    let ok = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok();
    Ok(*REGISTERED.get_or_init(|| ok))
}

/// Draws the chart `spec` (the format above) into the PNG file `out`, with text set in `font`
/// (a TrueType file) or without text.
pub fn render(spec: &str, out: &std::path::Path, font: Option<&str>) -> Result {
    let s = parse(spec)?;
    let text = match font {
        Some(f) => register_font(f)?,
        None => false,
    };
    draw(&s, out, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_spec() {
        let s = parse("title\tT\nscale\tlog\nseries\ta\tb\ngroup\tg 1\t10\t-\ngroup\th\t>5\t1\n")
            .unwrap();
        assert_eq!(s.title, "T");
        assert!(s.log);
        assert_eq!(s.series, ["a", "b"]);
        assert_eq!(s.groups[0], ("g 1".to_owned(), vec![Some(10.0), None]));
        assert_eq!(s.groups[1], ("h".to_owned(), vec![Some(5.0), Some(1.0)]));
        assert_eq!(s.lower_bounds, [(1, 0)]);
        assert!(parse("series\ta\n").is_err());
        assert!(parse("series\ta\ngroup\tg\tx\n").is_err());
    }

    #[test]
    fn long_labels_break_after_commas() {
        assert_eq!(label_lines("a, b", 1000), ["a, b"]);
        assert_eq!(
            label_lines("queue 1 -> 1, 128 B, client-individual", 150),
            ["queue 1 -> 1, 128 B", "client-individual"]
        );
    }

    #[test]
    fn short_values() {
        assert_eq!(short(1_143_827.0), "1.14M");
        assert_eq!(short(33_122.0), "33.1k");
        assert_eq!(short(4.41), "4.41");
        assert_eq!(short(250.0), "250");
        assert_eq!(short(0.0007), "0.00070");
        assert_eq!(short(0.0299), "0.030");
    }
}
