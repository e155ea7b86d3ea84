//! Reading what the real SMTP sink (scripts/smtp_sink.py) received: one `.eml` and one
//! `.json` sidecar per message in `SMTP_SINK_DIR`.

use std::path::PathBuf;
use std::time::Duration;

pub const SMTP_URL: &str = "smtp://127.0.0.1:2525";

fn dir() -> PathBuf {
    PathBuf::from(std::env::var("SMTP_SINK_DIR").unwrap_or_else(|_| "/tmp/pulseguardian-mail".into()))
}

#[derive(Debug, Clone)]
pub struct Received {
    pub rcpt: Vec<String>,
    pub subject: String,
    pub body: String,
    pub message_id: String,
    /// The header section as received.
    pub headers: String,
}

/// Every message received so far with `addr` among its envelope recipients, oldest first.
pub fn to(addr: &str) -> Vec<Received> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    names.sort_by_key(|p| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
        let mut parts = stem.splitn(2, '-');
        (
            parts.next().and_then(|n| n.parse::<u128>().ok()).unwrap_or(0),
            parts.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0),
        )
    });
    let mut out = Vec::new();
    for eml in names {
        let Ok(meta) = std::fs::read(eml.with_extension("json")) else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&meta) else {
            continue;
        };
        let rcpt: Vec<String> = meta["rcpt_tos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_lowercase))
            .collect();
        if !rcpt.iter().any(|r| r == &addr.to_lowercase()) {
            continue;
        }
        let Ok(raw) = std::fs::read(&eml) else { continue };
        let text = String::from_utf8_lossy(&raw);
        let headers = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
        let Some(msg) = mail_parser::MessageParser::default().parse(&raw) else {
            continue;
        };
        out.push(Received {
            rcpt,
            subject: msg.subject().unwrap_or_default().to_owned(),
            body: msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
            message_id: msg.message_id().unwrap_or_default().to_owned(),
            headers,
        });
    }
    out
}

/// Waits until `addr` has received at least `n` messages.
pub async fn wait_for(addr: &str, n: usize) -> Vec<Received> {
    crate::support::wait_for(&format!("{n} emails to {addr}"), Duration::from_secs(20), || async {
        let got = to(addr);
        (got.len() >= n).then_some(got)
    })
    .await
}

/// A unique address for one test.
pub fn address(who: &str) -> String {
    format!("{who}-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
