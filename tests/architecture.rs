//! The rules of the house, read from the code: which module may use which, where the
//! read models' SQL lives, and that no module imports another that imports it back.
//!
//! It reads every `src/**/*.rs` as text: the `crate::...` and `super::...` paths each
//! file names (outside its `#[cfg(test)]` module), and the SQL in its string literals.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file, as a module path (`app::queues`, `web::views::layout`), and its text
/// without its tests.
struct Source {
    module: String,
    text: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // The unit tests of a file may reach anywhere.
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            Source {
                module: parts.join("::"),
                text,
            }
        })
        .collect()
}

/// Every module path a file names: `crate::a::b::C` gives `a::b::C`; `super::x` is
/// resolved against the file's own module. Grouped imports give their prefix and each
/// member (`crate::auth::{Action, Principal}` gives `auth::Action`, `auth::Principal`).
fn uses(s: &Source) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let own: Vec<&str> = s.module.split("::").collect();
    let text = &s.text;
    for (start, prefix) in text
        .match_indices("crate::")
        .map(|(i, _)| (i, "crate::"))
        .chain(text.match_indices("super::").map(|(i, _)| (i, "super::")))
    {
        // Not part of a longer word (`pulseguardian_crate::`).
        if start > 0
            && text[..start]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let rest = &text[start + prefix.len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':').to_owned();
        let base = if prefix == "super::" {
            // `super` is the module above (a file's folder module, a folder's parent).
            let parent = &own[..own.len().saturating_sub(1)];
            let mut p = parent.join("::");
            let mut tail = path.as_str();
            while let Some(t) = tail.strip_prefix("super::") {
                p = p.rsplit_once("::").map(|(a, _)| a.to_owned()).unwrap_or_default();
                tail = t;
            }
            if p.is_empty() {
                tail.to_owned()
            } else {
                format!("{p}::{tail}")
            }
        } else {
            path
        };
        let after = &rest[rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len())..];
        if let Some(group) = after.strip_prefix('{') {
            let group: String = group.chars().take_while(|c| *c != '}').collect();
            for member in group.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let member = member.split_whitespace().next().unwrap_or(member);
                if member == "self" {
                    out.insert(base.trim_end_matches(':').to_owned());
                } else {
                    out.insert(format!("{}::{member}", base.trim_end_matches(':')));
                }
            }
        } else {
            out.insert(base);
        }
    }
    out
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn the_domain_imports_nothing_of_the_crate_but_itself() {
    for s in sources().iter().filter(|s| top(&s.module) == "domain") {
        for u in uses(s) {
            assert_eq!(top(&u), "domain", "{} uses {u}", s.module);
        }
        for clock in ["Utc::now", "SystemTime::now", "Instant::now", "sea_orm", "tokio::"] {
            assert!(!s.text.contains(clock), "{} uses {clock}", s.module);
        }
    }
}

#[test]
fn the_event_log_knows_nothing_of_its_readers() {
    let readers = [
        "projections",
        "observations",
        "app",
        "guardian",
        "web",
        "cli",
        "startup",
        "auth",
        "mail",
    ];
    for s in sources().iter().filter(|s| top(&s.module) == "events") {
        for u in uses(s) {
            assert!(!readers.contains(&top(&u)), "{} uses {u}", s.module);
        }
    }
}

#[test]
fn only_the_read_side_reads_or_writes_read_model_sql() {
    let read_models = [
        "users",
        "accounts",
        "account_owners",
        "api_tokens",
        "queues",
        "outbox",
        "outbox_claims",
        "broker_status",
        "projection_failures",
        "samples",
        "latest_observation",
        "observation_stamp",
        "observation_parts",
        "archives",
        "archive_segments",
        "queue_activity",
        "alert_recipients",
        "webhooks",
        "webhook_outbox",
    ];
    let verbs = ["FROM", "JOIN", "INTO", "UPDATE", "TABLE"];
    for s in sources() {
        if matches!(top(&s.module), "projections" | "observations") {
            continue;
        }
        let words: Vec<&str> = s
            .text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        for pair in words.windows(2) {
            assert!(
                !(verbs.contains(&pair[0]) && read_models.contains(&pair[1])),
                "{} has SQL on the read model {:?}",
                s.module,
                pair[1]
            );
        }
    }
}

#[test]
fn the_web_speaks_only_to_the_application_the_policy_and_its_views() {
    let allowed_auth = ["auth::Principal", "auth::Action", "auth::Forbidden", "auth::policy"];
    for s in sources().iter().filter(|s| top(&s.module) == "web") {
        for u in uses(s) {
            let ok = match top(&u) {
                "web" | "app" | "domain" => true,
                "auth" => allowed_auth.iter().any(|a| u == *a || u.starts_with(&format!("{a}::"))),
                _ => false,
            };
            assert!(ok, "{} uses {u}", s.module);
        }
    }
}

#[test]
fn views_take_data_and_return_markup() {
    for s in sources().iter().filter(|s| s.module.starts_with("web::views")) {
        let words: BTreeSet<&str> = s.text.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
        for banned in [
            "Session",
            "Context",
            "sea_orm",
            "QueryResult",
            "Request",
            "Data",
            "DatabaseConnection",
        ] {
            assert!(!words.contains(banned), "{} mentions {banned}", s.module);
        }
    }
}

#[test]
fn nothing_imports_startup_or_cli_but_the_entry_points() {
    for s in sources() {
        for u in uses(&s) {
            if top(&u) == "cli" {
                assert_eq!(s.module, "main", "{} uses {u}", s.module);
            }
            if top(&u) == "startup" {
                assert!(matches!(s.module.as_str(), "cli" | "main"), "{} uses {u}", s.module);
            }
        }
    }
}

#[test]
fn the_guardian_shell_makes_no_decision_of_its_own() {
    for s in sources().iter().filter(|s| top(&s.module) == "guardian") {
        assert!(
            !s.text.contains("Event::Queue") && !s.text.contains("Event::Broker"),
            "{} builds a guardian event itself instead of taking it from domain::plan",
            s.module
        );
    }
}

/// The module a path names: the longest prefix that is a module of the crate.
fn module_of(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|p| modules.contains(p))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let sources = sources();
    let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &sources {
        for u in uses(s) {
            if let Some(m) = module_of(&u, &modules)
                && m != s.module
            {
                edges.entry(s.module.clone()).or_default().insert(m);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|p| p == m).unwrap_or(0);
                let mut circle = path[from..].to_vec();
                circle.push(m.to_owned());
                return Some(circle);
            }
            _ => {}
        }
        state.insert(m.to_owned(), 1);
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        let mut path = Vec::new();
        if let Some(circle) = visit(m, &edges, &mut state, &mut path) {
            panic!("an import circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn every_module_says_what_it_owns_on_its_first_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for s in sources() {
        let file = if root.join(s.module.replace("::", "/")).join("mod.rs").exists() {
            root.join(s.module.replace("::", "/")).join("mod.rs")
        } else {
            root.join(format!("{}.rs", s.module.replace("::", "/")))
        };
        let first = std::fs::read_to_string(&file).unwrap();
        let first = first.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("//!"),
            "{} does not open with a //! line",
            file.display()
        );
    }
}
