//! Debian packages for xtask: installing into the host, and fetching `.deb`s of another Debian
//! release through a private apt state directory that leaves the host's apt untouched.
//!
//! The private apt's sources are derived at run time from the host's own
//! (`/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.list` and deb822 `*.sources`): the same
//! mirrors, with the host's release name swapped for the wanted one. No mirror is written down
//! anywhere in this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, exec};

/// True when xtask runs as root (CI does), read from `/proc` so xtask needs no libc binding.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// `apt-get update` then `apt-get install -y` of `packages` into the host (root only).
pub fn apt_install(packages: &[&str]) -> Result {
    exec(Command::new("apt-get").args(["-q", "update"]))?;
    exec(
        Command::new("apt-get")
            .args(["-q", "-y", "install", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// An apt configuration of its own (state, cache, sources) under one directory.
pub struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    /// Lays out `dir` and writes its sources: the host's Debian sources with the host's release
    /// name replaced by `release` (e.g. `bullseye`), `main` component only.
    pub fn new(dir: &Path, release: &str) -> Result<PrivateApt> {
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "preferences.d",
        ] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("state/status"), "")?;
        std::fs::write(dir.join("sources.list"), "")?;
        let host = host_release()?;
        let entries = host_entries()?;
        let derived = retarget(&entries, &host, release);
        if derived.is_empty() {
            return Err(format!(
                "no Debian `{host}` entry in the host's apt sources to derive `{release}` sources from"
            )
            .into());
        }
        std::fs::write(
            dir.join("sources.list.d")
                .join(format!("{release}.sources")),
            render(&derived),
        )?;
        Ok(PrivateApt {
            dir: dir.to_path_buf(),
        })
    }

    /// `apt-get` with every directory pointed into this private configuration.
    fn apt_get(&self) -> Command {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let mut cmd = Command::new("apt-get");
        for (key, value) in [
            ("Dir::State", d("state")),
            ("Dir::State::status", d("state/status")),
            ("Dir::Cache", d("cache")),
            ("Dir::Etc::SourceList", d("sources.list")),
            ("Dir::Etc::SourceParts", d("sources.list.d")),
            ("Dir::Etc::Preferences", d("preferences")),
            ("Dir::Etc::PreferencesParts", d("preferences.d")),
            ("Debug::NoLocking", "1".into()),
            ("APT::Sandbox::User", "root".into()),
            ("Acquire::Languages", "none".into()),
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".into(),
            ),
        ] {
            cmd.arg("-o").arg(format!("{key}={value}"));
        }
        cmd.arg("-q");
        cmd
    }

    /// Fetches the package lists, then the `.deb` files of `packages` into `into`.
    pub fn download(&self, packages: &[&str], into: &Path) -> Result {
        exec(self.apt_get().arg("update"))?;
        std::fs::create_dir_all(into)?;
        exec(
            self.apt_get()
                .arg("download")
                .args(packages)
                .current_dir(into),
        )
    }
}

/// The host's release name (`VERSION_CODENAME` in `/etc/os-release`).
fn host_release() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "no VERSION_CODENAME in /etc/os-release".into())
}

/// One `deb` source: what both the one-line and the deb822 formats say.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    /// A keyring path (embedded keys are dropped; apt then falls back to its trusted keys).
    signed_by: Option<String>,
}

fn host_entries() -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        entries.extend(text.lines().filter_map(parse_one_line));
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match path.extension().and_then(|e| e.to_str()) {
                Some("list") => entries.extend(text.lines().filter_map(parse_one_line)),
                Some("sources") => entries.extend(parse_deb822(&text)),
                _ => {} // apt ignores other names (`*.disabled`, `*.save`, ...), so do we
            }
        }
    }
    Ok(entries)
}

/// `deb [opt=val ...] URI SUITE COMPONENT...`; `None` for comments, `deb-src` and the like.
fn parse_one_line(line: &str) -> Option<Entry> {
    let line = line.split('#').next()?.trim();
    let rest = line.strip_prefix("deb")?;
    if !rest.starts_with([' ', '\t']) {
        return None; // deb-src
    }
    let mut rest = rest.trim_start();
    let mut signed_by = None;
    if let Some(opts) = rest.strip_prefix('[') {
        let (opts, after) = opts.split_once(']')?;
        for opt in opts.split_whitespace() {
            if let Some(v) = opt.strip_prefix("signed-by=") {
                signed_by = Some(v.to_string());
            }
        }
        rest = after.trim_start();
    }
    let mut words = rest.split_whitespace();
    let uri = words.next()?.to_string();
    let suite = words.next()?.to_string();
    Some(Entry {
        uris: vec![uri],
        suites: vec![suite],
        components: words.map(String::from).collect(),
        signed_by,
    })
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`, `Enabled:`),
/// separated by blank lines.
fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            entries.extend(deb822_entry(&fields));
            fields.clear();
        } else if line.trim_start().starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            // A continuation line (e.g. an embedded key): belongs to the previous field.
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    entries
}

fn deb822_entry(fields: &[(String, String)]) -> Option<Entry> {
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let words = |key: &str| -> Vec<String> {
        get(key)
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    if !words("types").iter().any(|t| t == "deb")
        || get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no"))
    {
        return None;
    }
    let signed_by = get("signed-by")
        .filter(|v| !v.is_empty() && !v.contains('\n') && !v.contains("BEGIN PGP"))
        .map(String::from);
    Some(Entry {
        uris: words("uris"),
        suites: words("suites"),
        components: words("components"),
        signed_by,
    })
}

/// Keeps the entries that serve the host's Debian release (`from`, `from-updates`,
/// `from-security`) and points them at `to`; only the `main` component.
fn retarget(entries: &[Entry], from: &str, to: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for e in entries {
        let suites: Vec<String> = e
            .suites
            .iter()
            .filter_map(|s| match s.strip_prefix(from) {
                Some("") => Some(to.to_string()),
                Some(suffix @ ("-updates" | "-security")) => Some(format!("{to}{suffix}")),
                _ => None,
            })
            .collect();
        if suites.is_empty() || !e.components.iter().any(|c| c == "main") {
            continue;
        }
        let entry = Entry {
            uris: e.uris.clone(),
            suites,
            components: vec!["main".into()],
            signed_by: e.signed_by.clone(),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

fn render(entries: &[Entry]) -> String {
    let mut s = String::from("# Derived by xtask from the host's apt sources.\n");
    for e in entries {
        s.push_str(&format!(
            "\nTypes: deb\nURIs: {}\nSuites: {}\nComponents: {}\n",
            e.uris.join(" "),
            e.suites.join(" "),
            e.components.join(" ")
        ));
        if let Some(key) = &e.signed_by {
            s.push_str(&format!("Signed-By: {key}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 abc
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: http://other.invalid/node
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://mirror.invalid/debian
Suites: bookworm-backports
Components: main
";

    #[test]
    fn deb822_and_retarget() {
        let entries = parse_deb822(DEB822);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].signed_by, None);
        let derived = retarget(&entries, "bookworm", "bullseye");
        assert_eq!(derived.len(), 2);
        assert_eq!(derived[0].suites, ["bullseye", "bullseye-updates"]);
        assert_eq!(derived[0].components, ["main"]);
        assert_eq!(derived[1].suites, ["bullseye-security"]);
        let text = render(&derived);
        assert!(text.contains("Suites: bullseye bullseye-updates\n"));
        assert!(!text.contains("bookworm"));
    }

    #[test]
    fn one_line_format() {
        let lines = "\
# deb http://mirror.invalid/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm main non-free
deb-src http://mirror.invalid/debian bookworm main
deb http://cloud.invalid/apt cloud-sdk-bookworm main
deb http://mirror.invalid/debian bookworm-backports main
";
        let entries: Vec<Entry> = lines.lines().filter_map(parse_one_line).collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].signed_by.as_deref(), Some("/k.gpg"));
        let derived = retarget(&entries, "bookworm", "bullseye");
        assert_eq!(derived.len(), 1);
        assert_eq!(derived[0].suites, ["bullseye"]);
        assert_eq!(derived[0].uris, ["http://mirror.invalid/debian"]);
    }
}
