//! Autobahn results: reading wstest's `index.json`, judging cases, and the checked-in
//! expected-results files (`xtask/autobahn/expected-{server,client}.json`) each run is diffed
//! against.
//!
//! xtask has no dependencies, so this holds a small JSON reader of its own: enough for the
//! reports wstest writes and the files we write.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::Result;

/// What Autobahn said about one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `OK`, `NON-STRICT`, `INFORMATIONAL`, `UNIMPLEMENTED`, `FAILED`, ...
    pub behavior: String,
    /// The closing handshake's verdict, same vocabulary.
    pub behavior_close: String,
}

impl Outcome {
    /// Strict: both verdicts `OK` or `INFORMATIONAL` (no `NON-STRICT`, no `UNIMPLEMENTED`).
    pub fn passes(&self) -> bool {
        let good = |b: &str| b == "OK" || b == "INFORMATIONAL";
        good(&self.behavior) && good(&self.behavior_close)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.behavior, self.behavior_close)
    }
}

/// Case id (`"6.4.1"`) to outcome, ordered the way Autobahn numbers cases.
pub type Results = BTreeMap<CaseId, Outcome>;

/// A case id that sorts numerically (`9.10.1` after `9.2.1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaseId(Vec<u32>, String);

impl CaseId {
    fn parse(s: &str) -> CaseId {
        CaseId(
            s.split('.')
                .map(|p| p.parse().unwrap_or(u32::MAX))
                .collect(),
            s.to_string(),
        )
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.1)
    }
}

/// Reads wstest's `index.json` (`{agent: {case: {behavior, behaviorClose, ...}}}`); the run must
/// have exactly one agent.
pub fn read_index(path: &Path) -> Result<(String, Results)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json = Json::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let agents = json.as_object().ok_or("index.json is not an object")?;
    let [(agent, cases)] = agents else {
        let names: Vec<&str> = agents.iter().map(|(a, _)| a.as_str()).collect();
        return Err(format!("expected one agent in {}, found {names:?}", path.display()).into());
    };
    Ok((agent.clone(), outcomes(cases)?))
}

fn outcomes(cases: &Json) -> Result<Results> {
    let mut results = Results::new();
    for (case, r) in cases.as_object().ok_or("cases are not an object")? {
        let field = |k: &str| {
            r.get(k)
                .and_then(Json::as_str)
                .map(String::from)
                .ok_or_else(|| format!("case {case}: no string `{k}`"))
        };
        results.insert(
            CaseId::parse(case),
            Outcome {
                behavior: field("behavior")?,
                behavior_close: field("behaviorClose")?,
            },
        );
    }
    Ok(results)
}

/// Reads an expected-results file; a missing file is an empty expectation.
pub fn read_expected(path: &Path) -> Result<Results> {
    match std::fs::read_to_string(path) {
        Ok(text) => outcomes(&Json::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Results::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display()).into()),
    }
}

/// Writes `results` as an expected-results file, one case per line so diffs stay readable.
pub fn write_expected(path: &Path, results: &Results) -> Result {
    let mut s = String::from("{\n");
    let n = results.len();
    for (i, (case, o)) in results.iter().enumerate() {
        s.push_str(&format!(
            "  \"{case}\": {{\"behavior\": \"{}\", \"behaviorClose\": \"{}\"}}{}\n",
            o.behavior,
            o.behavior_close,
            if i + 1 < n { "," } else { "" }
        ));
    }
    s.push_str("}\n");
    std::fs::write(path, s)?;
    Ok(())
}

/// How a run differs from the expectation, case by case.
#[derive(Debug, Default)]
pub struct Diff {
    /// Cases the expectation says pass and that now fail: named regressions.
    pub regressions: Vec<(CaseId, Outcome, Outcome)>,
    /// Any other change of verdict (including fixes).
    pub changed: Vec<(CaseId, Outcome, Outcome)>,
    /// Cases the expected file does not list yet.
    pub unexpected: Vec<CaseId>,
}

pub fn diff(expected: &Results, actual: &Results) -> Diff {
    let mut d = Diff::default();
    for (case, got) in actual {
        match expected.get(case) {
            None => d.unexpected.push(case.clone()),
            Some(want) if want == got => {}
            Some(want) if want.passes() && !got.passes() => {
                d.regressions
                    .push((case.clone(), want.clone(), got.clone()))
            }
            Some(want) => d.changed.push((case.clone(), want.clone(), got.clone())),
        }
    }
    d
}

/// The JSON subset wstest writes (all of JSON, numbers kept as text).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> std::result::Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Json> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> std::result::Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, b: u8) -> std::result::Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected `{}`", b as char))
        }
    }

    fn value(&mut self) -> std::result::Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    fields.push((key, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(fields));
                        }
                        _ => return self.err("expected `,` or `}`"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return self.err("expected `,` or `]`"),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.i += 1;
                }
                Ok(Json::Number(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            _ => self.err("expected a value"),
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> std::result::Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("bad literal")
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(code) = hex else {
                                return self.err("bad \\u escape");
                            };
                            self.i += 4;
                            // Surrogate halves are not paired up: report text only needs to
                            // survive, not round-trip exactly.
                            let c = char::from_u32(code).unwrap_or('\u{fffd}');
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
   "switchboard": {
      "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 2,
                "remoteCloseCode": 1000, "reportfile": "x_case_1_1_1.json"},
      "9.10.1": {"behavior": "FAILED", "behaviorClose": "OK", "duration": 1,
                 "remoteCloseCode": null, "reportfile": "x.json"},
      "9.2.1": {"behavior": "NON-STRICT", "behaviorClose": "INFORMATIONAL", "duration": 1,
                "remoteCloseCode": 1000, "reportfile": "x.json"},
      "12.1.1": {"behavior": "INFORMATIONAL", "behaviorClose": "OK", "duration": 1,
                 "remoteCloseCode": 1000, "reportfile": "a \"q\" \u00e9"}
   }
}"#;

    #[test]
    fn reads_index_and_judges_strictly() {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("index.json");
        std::fs::write(&path, INDEX).unwrap();
        let (agent, results) = read_index(&path).unwrap();
        assert_eq!(agent, "switchboard");
        let order: Vec<String> = results.keys().map(|c| c.to_string()).collect();
        assert_eq!(order, ["1.1.1", "9.2.1", "9.10.1", "12.1.1"]);
        let passing: Vec<bool> = results.values().map(Outcome::passes).collect();
        assert_eq!(passing, [true, false, false, true]);

        // Round trip through the expected-results format, then a diff naming a regression.
        let expected_path = dir.join("expected.json");
        write_expected(&expected_path, &results).unwrap();
        let mut expected = read_expected(&expected_path).unwrap();
        assert_eq!(expected, results);
        assert!(diff(&expected, &results).regressions.is_empty());
        expected.remove(&CaseId::parse("12.1.1"));
        let mut actual = results.clone();
        actual.insert(
            CaseId::parse("1.1.1"),
            Outcome {
                behavior: "FAILED".into(),
                behavior_close: "OK".into(),
            },
        );
        let d = diff(&expected, &actual);
        assert_eq!(d.regressions.len(), 1);
        assert_eq!(d.regressions[0].0.to_string(), "1.1.1");
        assert_eq!(d.unexpected, [CaseId::parse("12.1.1")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_broken_json() {
        assert!(Json::parse("{\"a\": }").is_err());
        assert!(Json::parse("[1, 2").is_err());
        assert!(Json::parse("\"abc").is_err());
        assert_eq!(Json::parse(" [true, null] ").unwrap().as_str(), None);
    }
}
