//! `cargo xtask bench [FILTER] [--bench NAME]... [--runs N] [--report-only] [--markdown]`
//! `cargo xtask bench --icount [FILTER] [--markdown]`
//!
//! Runs the criterion benches of `switchboard-bench` (every file in crates/bench/benches/, or the
//! `--bench` ones), then reads criterion's results (kept in `target/xtask/criterion/`) and prints, per
//! group, a table of throughput per input and library with the ratio `switchboard / peer`
//! (> 1 means switchboard is faster).
//!
//! Naming convention the benches follow: group = what is measured (`ws_decode`, `stomp_parse`),
//! function = library (`switchboard` for ours, `switchboard_*` for other paths of ours), and
//! parameter = input (`64KiB`); `BenchmarkId::new(library, input)`. A group without a
//! parameter uses the group's last `/` segment as the input.
//!
//! Only results written by this run are shown (so stale results of renamed benches never mix
//! in); `--report-only` skips running and shows everything found. Values are criterion's median
//! estimates; with `--runs N` the benches run N times and each shows its best median.
//!
//! `--icount` instead counts instructions with valgrind (cachegrind, no cache simulation) for
//! the WebSocket decode and encode paths (`ws_icount` in crates/bench): each path runs 1 and
//! 1 + N iterations and the difference / N is reported as instructions per payload byte. Counts
//! hold still on a loaded shared machine where wall-clock times do not; they do not weigh SIMD
//! or cache misses, so read them beside the criterion times, not instead of them.

use crate::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const USAGE: &str =
    "usage: cargo xtask bench [FILTER] [--bench NAME]... [--runs N] [--report-only] [--markdown]
       cargo xtask bench --icount [FILTER] [--markdown]";

/// Extra iterations in `--icount` runs (the count is (I(1 + N) - I(1)) / N).
const ICOUNT_ITERS: u64 = 4;

/// The name of our library in benchmark function ids.
const OURS: &str = "switchboard";

pub fn run(args: &[String]) -> Result {
    let mut filter = None;
    let mut benches = Vec::new();
    let mut report_only = false;
    let mut markdown = false;
    let mut icount = false;
    let mut runs = 1u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => benches.push(it.next().ok_or(USAGE)?.clone()),
            "--report-only" => report_only = true,
            "--markdown" => markdown = true,
            "--icount" => icount = true,
            "--runs" => runs = it.next().ok_or(USAGE)?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => return Err(format!("unknown flag `{s}`\n{USAGE}").into()),
            s if filter.is_none() => filter = Some(s.to_owned()),
            s => return Err(format!("unexpected argument `{s}`\n{USAGE}").into()),
        }
    }
    if icount {
        return run_icount(filter.as_deref(), markdown);
    }
    if benches.is_empty() {
        benches = bench_targets()?;
    }
    let results = if report_only {
        collect(&criterion_dir(), None)?
    } else {
        let mut best: Vec<Measurement> = Vec::new();
        for run in 1..=runs {
            if runs > 1 {
                eprintln!("xtask bench: run {run} of {runs}");
            }
            let started = SystemTime::now();
            let mut cmd = crate::cargo();
            cmd.env("CRITERION_HOME", criterion_dir());
            cmd.args(["bench", "-p", "switchboard-bench"]);
            for b in &benches {
                cmd.args(["--bench", b]);
            }
            if let Some(f) = &filter {
                cmd.args(["--", f]);
            }
            crate::exec(&mut cmd)?;
            merge_best(&mut best, collect(&criterion_dir(), Some(started))?);
        }
        best
    };
    if results.is_empty() {
        return Err("no criterion results found (did the filter match anything?)".into());
    }
    print!("{}", render(&results, markdown));
    let command = format!("cargo xtask bench {}", args.join(" "));
    crate::chart::draw_all(&charts(&results), &command)?;
    Ok(())
}

/// One chart per group: a bar per library for every input, throughput when the bench declared
/// one (MiB/s or Melem/s), otherwise the median time.
fn charts(results: &[Measurement]) -> Vec<crate::chart::Chart> {
    let mut groups: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for m in results {
        groups.entry(&m.group).or_default().push(m);
    }
    let mut out = Vec::new();
    for (group, ms) in groups {
        let functions: BTreeSet<(u8, String)> =
            ms.iter().map(|m| function_key(&m.function)).collect();
        let functions: Vec<String> = functions.into_iter().map(|(_, f)| f).collect();
        let inputs: BTreeSet<(String, u64, String)> =
            ms.iter().map(|m| input_key(&m.input)).collect();
        let kind = ms.iter().find_map(|m| m.throughput.map(|(k, _)| k));
        type Value = fn(&Measurement) -> Option<f64>;
        let (y_label, better, value): (&str, &str, Value) = match kind {
            Some(ThroughputKind::Bytes) => ("MiB/s", "higher", |m| {
                m.rate().map(|r| r / (1u64 << 20) as f64)
            }),
            Some(ThroughputKind::Elements) => ("Melem/s", "higher", |m| m.rate().map(|r| r / 1e6)),
            None => ("µs", "lower", |m| Some(m.ns / 1e3)),
        };
        out.push(crate::chart::Chart {
            name: format!("bench-{}", group.replace(['/', ' '], "_")),
            title: format!("{group}: criterion median ({better} is better)"),
            y_label: y_label.into(),
            series: functions.clone(),
            groups: inputs
                .iter()
                .map(|(_, _, input)| {
                    let values = functions
                        .iter()
                        .map(|f| {
                            ms.iter()
                                .find(|m| m.input == *input && m.function == *f)
                                .filter(|m| !m.instructions)
                                .and_then(|m| value(m))
                        })
                        .collect();
                    (input.clone(), values)
                })
                .collect(),
            lower_bounds: Vec::new(),
        });
    }
    out
}

/// The bench targets: every `crates/bench/benches/*.rs`.
fn bench_targets() -> Result<Vec<String>> {
    let dir = crate::project_root().join("crates/bench/benches");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "rs")
            && let Some(stem) = p.file_stem()
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(format!("no benches in {}", dir.display()).into());
    }
    Ok(names)
}

/// Where our runs keep criterion's results: `target/xtask/criterion` (criterion reads
/// `CRITERION_HOME`), apart from `target/criterion`, so a `cargo bench` someone runs at the same
/// time on the same machine does not land in our table.
fn criterion_dir() -> PathBuf {
    crate::xtask_dir().join("criterion")
}

/// What one benchmark measured.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    group: String,
    function: String,
    input: String,
    /// Median time per iteration, in nanoseconds (or instructions, if `instructions`).
    ns: f64,
    throughput: Option<(ThroughputKind, f64)>,
    /// `ns` counts instructions (`--icount`), not nanoseconds.
    instructions: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ThroughputKind {
    Bytes,
    Elements,
}

impl Measurement {
    /// Units per second (bytes or elements), if the bench declared a throughput.
    fn rate(&self) -> Option<f64> {
        let (_, per_iter) = self.throughput?;
        (self.ns > 0.0).then(|| per_iter * 1e9 / self.ns)
    }

    /// "how much better than `other`": throughput ratio, or inverse time ratio.
    fn ratio_over(&self, other: &Measurement) -> f64 {
        match (self.rate(), other.rate()) {
            (Some(a), Some(b)) if b > 0.0 => a / b,
            _ => other.ns / self.ns,
        }
    }

    fn display(&self) -> String {
        if self.instructions {
            return match self.throughput {
                Some((_, per_iter)) if per_iter > 0.0 => format!("{:.3} i/B", self.ns / per_iter),
                _ => format!("{:.0} i", self.ns),
            };
        }
        match (self.throughput, self.rate()) {
            (Some((ThroughputKind::Bytes, _)), Some(r)) => format_bytes_rate(r),
            (Some((ThroughputKind::Elements, _)), Some(r)) => format!("{:.2} Melem/s", r / 1e6),
            _ => format_time(self.ns),
        }
    }
}

fn format_bytes_rate(r: f64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if r >= GIB {
        format!("{:.2} GiB/s", r / GIB)
    } else {
        format!("{:.1} MiB/s", r / MIB)
    }
}

fn format_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Keeps, per benchmark, the fastest of several runs: on a shared machine noise only ever adds
/// time, so the best run is the closest to what the code costs.
fn merge_best(best: &mut Vec<Measurement>, run: Vec<Measurement>) {
    for m in run {
        let same = |b: &&mut Measurement| {
            b.group == m.group && b.function == m.function && b.input == m.input
        };
        match best.iter_mut().find(same) {
            Some(b) if m.ns < b.ns => *b = m,
            Some(_) => {}
            None => best.push(m),
        }
    }
}

/// Finds every `new/benchmark.json` under `dir` (modified after `since`, if given).
fn collect(dir: &Path, since: Option<SystemTime>) -> Result<Vec<Measurement>> {
    let mut found = Vec::new();
    find_new_dirs(dir, 0, &mut found);
    let mut out = Vec::new();
    for new in found {
        let bench = new.join("benchmark.json");
        if let Some(t) = since {
            let fresh = std::fs::metadata(&bench)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m >= t);
            if !fresh {
                continue;
            }
        }
        let parsed = std::fs::read_to_string(&bench)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                let e = std::fs::read_to_string(new.join("estimates.json"))
                    .map_err(|e| e.to_string())?;
                parse_measurement(&b, &e)
            });
        match parsed {
            Ok(m) => out.push(m),
            Err(e) => eprintln!("xtask bench: skipping {}: {e}", new.display()),
        }
    }
    Ok(out)
}

fn find_new_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 5 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") && p.join("benchmark.json").is_file() {
            out.push(p);
        } else if p
            .file_name()
            .is_none_or(|n| n != "report" && n != "base" && n != "change")
        {
            find_new_dirs(&p, depth + 1, out);
        }
    }
}

fn parse_measurement(
    benchmark_json: &str,
    estimates_json: &str,
) -> std::result::Result<Measurement, String> {
    let b = json::parse(benchmark_json)?;
    let e = json::parse(estimates_json)?;
    let group = b
        .get("group_id")
        .and_then(|v| v.as_str())
        .ok_or("no group_id")?;
    let function = b.get("function_id").and_then(|v| v.as_str());
    let value = b.get("value_str").and_then(|v| v.as_str());
    let (group, function, input) = match (function, value) {
        (Some(f), Some(v)) => (group.to_owned(), f.to_owned(), v.to_owned()),
        (Some(f), None) => match group.rsplit_once('/') {
            Some((g, i)) => (g.to_owned(), f.to_owned(), i.to_owned()),
            None => (group.to_owned(), f.to_owned(), String::new()),
        },
        (None, v) => (
            group.to_owned(),
            String::new(),
            v.unwrap_or_default().to_owned(),
        ),
    };
    let ns = e
        .get("median")
        .and_then(|m| m.get("point_estimate"))
        .and_then(|v| v.as_f64())
        .ok_or("no median.point_estimate")?;
    let throughput = b.get("throughput").and_then(|t| {
        [
            ("Bytes", ThroughputKind::Bytes),
            ("BytesDecimal", ThroughputKind::Bytes),
            ("Elements", ThroughputKind::Elements),
        ]
        .into_iter()
        .find_map(|(k, kind)| t.get(k).and_then(|v| v.as_f64()).map(|n| (kind, n)))
    });
    Ok(Measurement {
        group,
        function,
        input,
        ns,
        throughput,
        instructions: false,
    })
}

/// `--icount`: instruction counts of the `ws_icount` matrix under cachegrind.
fn run_icount(filter: Option<&str>, markdown: bool) -> Result {
    let valgrind_ok = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !valgrind_ok {
        return Err("--icount needs valgrind (apt-get install valgrind)".into());
    }
    crate::exec(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard-bench",
        "--bin",
        "ws_icount",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"));
    let bin = target.join("release/ws_icount");
    let list = std::process::Command::new(&bin).arg("list").output()?;
    let list = String::from_utf8(list.stdout)?;
    let mut results = Vec::new();
    for line in list.lines() {
        let [what, lib, size, bytes] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            continue;
        };
        let input = size_label(size.parse().unwrap_or(0));
        let id = format!("ws_icount_{what}/{lib}/{input}");
        if filter.is_some_and(|f| !id.contains(f)) {
            continue;
        }
        let count = |iters: u64| instructions(&bin, &[what, lib, size, &iters.to_string()]);
        let per_iter = (count(1 + ICOUNT_ITERS)? - count(1)?) as f64 / ICOUNT_ITERS as f64;
        eprintln!("xtask bench: {id}: {per_iter:.0} instructions per iteration");
        results.push(Measurement {
            group: format!("ws_icount_{what}"),
            function: lib.to_owned(),
            input,
            ns: per_iter.max(1.0),
            throughput: Some((ThroughputKind::Bytes, bytes.parse().unwrap_or(0.0))),
            instructions: true,
        });
    }
    if results.is_empty() {
        return Err("the filter matched no ws_icount path".into());
    }
    print!("{}", render(&results, markdown));
    Ok(())
}

/// Instructions executed by `bin args` (cachegrind's "I refs").
fn instructions(bin: &Path, args: &[&str]) -> Result<u64> {
    let out = std::process::Command::new("valgrind")
        .args([
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ])
        .arg(bin)
        .args(args)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "valgrind {} {}: {}\n{stderr}",
            bin.display(),
            args.join(" "),
            out.status
        )
        .into());
    }
    stderr
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("I")?;
            let rest = rest.trim_start().strip_prefix("refs:")?;
            rest.trim().replace(',', "").parse().ok()
        })
        .ok_or_else(|| format!("no \"I refs\" in valgrind's output:\n{stderr}").into())
}

/// `16B`, `1KiB`, `1MiB` (as the benches label sizes).
fn size_label(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

/// Sort key for inputs: a text prefix, then the size its `<n>B|KiB|MiB|GiB` part names, so
/// `16B < 125B < 1KiB < 64KiB < 1MiB`.
fn input_key(s: &str) -> (String, u64, String) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let n: u64 = s[start..i].parse().unwrap_or(0);
            let rest = &s[i..];
            let mult = [
                ("GiB", 1u64 << 30),
                ("MiB", 1 << 20),
                ("KiB", 1 << 10),
                ("B", 1),
            ]
            .into_iter()
            .find(|(u, _)| rest.starts_with(u))
            .map_or(1, |(_, m)| m);
            return (s[..start].to_owned(), n.saturating_mul(mult), s.to_owned());
        }
        i += 1;
    }
    (s.to_owned(), 0, s.to_owned())
}

/// Column order: ours first, our other paths next, then the rest alphabetically.
fn function_key(f: &str) -> (u8, String) {
    let rank = if f == OURS {
        0
    } else if f.starts_with(OURS) {
        1
    } else {
        2
    };
    (rank, f.to_owned())
}

fn render(results: &[Measurement], markdown: bool) -> String {
    let mut groups: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for m in results {
        groups.entry(&m.group).or_default().push(m);
    }
    let mut out = String::new();
    for (group, ms) in groups {
        let functions: BTreeSet<(u8, String)> =
            ms.iter().map(|m| function_key(&m.function)).collect();
        let functions: Vec<String> = functions.into_iter().map(|(_, f)| f).collect();
        let inputs: BTreeSet<(String, u64, String)> =
            ms.iter().map(|m| input_key(&m.input)).collect();
        let mut rows = vec![{
            let mut h = vec!["input".to_owned()];
            h.extend(functions.iter().cloned());
            h
        }];
        for (_, _, input) in &inputs {
            let find = |f: &str| ms.iter().find(|m| m.input == *input && m.function == f);
            let ours = find(OURS);
            let mut row = vec![input.clone()];
            for f in &functions {
                let cell = match (find(f), ours) {
                    (None, _) => "-".to_owned(),
                    (Some(m), Some(o)) if f != OURS => {
                        format!("{} ({:.2}x)", m.display(), o.ratio_over(m))
                    }
                    (Some(m), _) => m.display(),
                };
                row.push(cell);
            }
            rows.push(row);
        }
        let instr = ms.iter().any(|m| m.instructions);
        let note = match (
            functions.iter().any(|f| f == OURS) && functions.len() > 1,
            instr,
        ) {
            (true, false) => {
                " — median; (Nx) = switchboard / that column, > 1 means switchboard is faster"
            }
            (true, true) => {
                " — instructions per payload byte; (Nx) = that column / switchboard, > 1 means switchboard runs fewer"
            }
            (false, false) => " — median",
            (false, true) => " — instructions per payload byte",
        };
        if markdown {
            let _ = writeln!(out, "\n**{group}**{note}\n");
            for (i, r) in rows.iter().enumerate() {
                let _ = writeln!(out, "| {} |", r.join(" | "));
                if i == 0 {
                    let _ = writeln!(out, "|{}", "---|".repeat(r.len()));
                }
            }
        } else {
            let _ = writeln!(out, "\n{group}{note}");
            let widths: Vec<usize> = (0..rows[0].len())
                .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
                .collect();
            for r in &rows {
                let mut line = String::new();
                for (c, cell) in r.iter().enumerate() {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
                }
                let _ = writeln!(out, "  {}", line.trim_end());
            }
        }
    }
    out
}

/// Just enough JSON to read criterion's output files (std only: xtask has no dependencies).
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Value>),
        Obj(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }
        pub fn as_f64(&self) -> Option<f64> {
            match self {
                Value::Num(n) => Some(*n),
                _ => None,
            }
        }
    }

    pub fn parse(s: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("JSON: {what} at byte {}", self.i))
        }

        fn eat(&mut self, lit: &str) -> bool {
            if self.s[self.i..].starts_with(lit.as_bytes()) {
                self.i += lit.len();
                true
            } else {
                false
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > 64 {
                return self.err("nesting too deep");
            }
            self.ws();
            match self.s.get(self.i) {
                None => self.err("unexpected end"),
                Some(b'{') => {
                    self.i += 1;
                    let mut kv = Vec::new();
                    self.ws();
                    if self.eat("}") {
                        return Ok(Value::Obj(kv));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.ws();
                        if !self.eat(":") {
                            return self.err("expected ':'");
                        }
                        kv.push((k, self.value(depth + 1)?));
                        self.ws();
                        if self.eat(",") {
                            continue;
                        }
                        if self.eat("}") {
                            return Ok(Value::Obj(kv));
                        }
                        return self.err("expected ',' or '}'");
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.eat("]") {
                        return Ok(Value::Arr(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        if self.eat(",") {
                            continue;
                        }
                        if self.eat("]") {
                            return Ok(Value::Arr(items));
                        }
                        return self.err("expected ',' or ']'");
                    }
                }
                Some(b'"') => self.string().map(Value::Str),
                Some(_) if self.eat("null") => Ok(Value::Null),
                Some(_) if self.eat("true") => Ok(Value::Bool(true)),
                Some(_) if self.eat("false") => Ok(Value::Bool(false)),
                Some(_) => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && matches!(
                            self.s[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    match text.parse() {
                        Ok(n) => Ok(Value::Num(n)),
                        Err(_) => self.err("bad value"),
                    }
                }
            }
        }

        fn string(&mut self) -> Result<String, String> {
            if !self.eat("\"") {
                return self.err("expected a string");
            }
            let mut out = String::new();
            loop {
                let Some(&c) = self.s.get(self.i) else {
                    return self.err("unterminated string");
                };
                self.i += 1;
                match c {
                    b'"' => return Ok(out),
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            return self.err("unterminated escape");
                        };
                        self.i += 1;
                        match e {
                            b'n' => out.push('\n'),
                            b't' => out.push('\t'),
                            b'r' => out.push('\r'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'u' => {
                                let hex = self
                                    .s
                                    .get(self.i..self.i + 4)
                                    .and_then(|h| std::str::from_utf8(h).ok());
                                let Some(code) = hex.and_then(|h| u32::from_str_radix(h, 16).ok())
                                else {
                                    return self.err("bad \\u escape");
                                };
                                self.i += 4;
                                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            }
                            other => out.push(other as char),
                        }
                    }
                    _ => {
                        // copy a run of plain bytes (valid UTF-8: the input is a &str)
                        let start = self.i - 1;
                        while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\') {
                            self.i += 1;
                        }
                        out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap_or(""));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH: &str = r#"{"group_id":"ws_decode","function_id":"tungstenite","value_str":"64KiB",
        "throughput":{"Bytes":1048576},"full_id":"ws_decode/tungstenite/64KiB",
        "directory_name":"ws_decode/tungstenite/64KiB","title":"ws_decode/tungstenite/64KiB"}"#;
    const EST: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,
        "upper_bound":3.0},"point_estimate":2.0,"standard_error":0.1},
        "median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2e6},
        "point_estimate":1.0e6,"standard_error":0.5},"slope":null}"#;

    #[test]
    fn reads_criterion_files() {
        let m = parse_measurement(BENCH, EST).unwrap();
        assert_eq!(m.group, "ws_decode");
        assert_eq!(m.function, "tungstenite");
        assert_eq!(m.input, "64KiB");
        assert_eq!(m.ns, 1.0e6);
        assert_eq!(m.throughput, Some((ThroughputKind::Bytes, 1048576.0)));
        assert_eq!(m.display(), "1000.0 MiB/s");
    }

    #[test]
    fn one_chart_per_group() {
        let theirs = parse_measurement(BENCH, EST).unwrap();
        let ours = Measurement {
            function: OURS.to_owned(),
            ns: theirs.ns / 2.0,
            ..theirs.clone()
        };
        let charts = charts(&[theirs.clone(), ours]);
        assert_eq!(charts.len(), 1);
        let c = &charts[0];
        assert_eq!(c.name, format!("bench-{}", theirs.group.replace('/', "_")));
        assert_eq!(c.series[0], OURS); // ours first, as in the tables
        assert_eq!(c.groups.len(), 1);
        let v = &c.groups[0].1;
        // Twice as fast = twice the throughput.
        assert!((v[0].unwrap() / v[1].unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn ratio_and_order() {
        let theirs = parse_measurement(BENCH, EST).unwrap();
        let ours = Measurement {
            function: OURS.to_owned(),
            ns: 0.5e6,
            ..theirs.clone()
        };
        let icount = Measurement {
            instructions: true,
            ..theirs.clone()
        };
        assert_eq!(icount.display(), "0.954 i/B");
        assert_eq!(size_label(65536), "64KiB");
        let mut best = vec![theirs.clone()];
        merge_best(
            &mut best,
            vec![
                Measurement {
                    ns: 2e6,
                    ..theirs.clone()
                },
                ours.clone(),
            ],
        );
        assert_eq!(best.len(), 2);
        assert_eq!(best[0].ns, 1e6);
        assert!((ours.ratio_over(&theirs) - 2.0).abs() < 1e-9);
        let mut inputs = vec!["1MiB", "16B", "64KiB", "125B", "1KiB"];
        inputs.sort_by_key(|s| input_key(s));
        assert_eq!(inputs, ["16B", "125B", "1KiB", "64KiB", "1MiB"]);
        let table = render(&[ours, theirs], false);
        assert!(table.contains("(2.00x)"), "{table}");
    }

    #[test]
    fn json_edge_cases() {
        let v = json::parse(r#"{"a":[1,-2.5e3,true,null],"b":"x\"\u00e9y"}"#).unwrap();
        assert_eq!(v.get("b").and_then(|b| b.as_str()), Some("x\"éy"));
        assert!(json::parse("{").is_err());
        assert!(json::parse(r#"{"a":1} x"#).is_err());
    }
}
