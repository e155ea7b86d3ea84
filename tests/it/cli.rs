//! The command line as a person uses it: the binary, its exit codes and its one-line errors.

use crate::support::{Backend, TestDb, run_binary};

fn sqlite_env(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("cli.db").display())
}

#[test]
fn each_bad_variable_stops_the_program_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_env(dir.path());
    for (var, value) in [
        ("WARN_QUEUE_SIZE", "many"),
        ("DEL_QUEUE_SIZE", "100"),
        ("ARCHIVE_QUEUE_SIZE", "9000"),
        ("GUARDIAN_SCHEDULE", "5 minutes"),
        ("PUBLIC_URL", "example.com"),
        ("RABBIT_MANAGEMENT_URL", "ftp://x"),
        ("BIND", "nowhere"),
        ("SMTP_URL", "imap://x"),
        ("LOG_FORMAT", "yaml"),
        ("DATABASE_URL", "postgres://x/y"),
    ] {
        let (code, out, err) = run_binary(&["migrate"], &[("DATABASE_URL", &db), (var, value)], dir.path());
        assert_ne!(code, 0, "{var}={value} was accepted");
        assert_eq!(err.lines().count(), 1, "{var}: not one line: {err:?}");
        assert!(
            err.starts_with(&format!("error: configuration error: {var}: ")),
            "{var}: {err:?}"
        );
        assert!(out.is_empty());
    }
    assert!(!dir.path().join("cli.db").exists(), "bad configuration touched nothing");
}

#[test]
fn a_dotenv_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "WARN_QUEUE_SIZE=lots\n").unwrap();
    let (code, _, err) = run_binary(&["migrate"], &[("DATABASE_URL", &sqlite_env(dir.path()))], dir.path());
    assert_ne!(code, 0);
    assert!(err.contains("WARN_QUEUE_SIZE"), "{err}");
}

#[tokio::test]
async fn migrate_is_idempotent_on_both_databases() {
    for backend in [Backend::MySql, Backend::Sqlite] {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            let (code, out, err) = run_binary(&["migrate"], &[("DATABASE_URL", &db.url)], dir.path());
            assert_eq!(code, 0, "{backend:?}: {err}");
            assert!(out.contains("schema is current"));
        }
    }
}

#[tokio::test]
async fn roles_are_granted_and_the_last_admin_kept() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", db.url.as_str())];
    let run = |args: &[&str]| run_binary(args, &env, dir.path());

    let (code, out, _) = run(&["admin", "grant", "Alice@Example.com"]);
    assert_eq!((code, out.trim()), (0, "alice@example.com is now admin"));
    let (code, out, _) = run(&["admin", "grant", "alice@example.com"]);
    assert_eq!(
        (code, out.trim()),
        (0, "alice@example.com was already admin; nothing changed")
    );
    let (code, _, err) = run(&["admin", "revoke", "alice@example.com"]);
    assert_ne!(code, 0);
    assert_eq!(
        err.trim(),
        "error: alice@example.com is the last admin and cannot lose the role"
    );
    let (code, _, _) = run(&["admin", "grant", "bob@example.com", "--role", "auditor"]);
    assert_eq!(code, 0);
    let (code, _, err) = run(&["admin", "grant", "not-an-email"]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, out, _) = run(&["audit", "export"]);
    assert_eq!(code, 0);
    let events: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "AdminGranted");
    assert_eq!(events[0]["actor"], "cli");
    assert_eq!(events[1]["kind"], "AuditorGranted");
    for field in [
        "seq",
        "id",
        "stream",
        "version",
        "kind",
        "schema",
        "actor",
        "occurred_at",
        "payload",
        "hash",
        "prev_hash",
    ] {
        assert!(events[1].get(field).is_some(), "export lacks {field}");
    }
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);

    let (code, out, _) = run(&["audit", "export", "--after", "1", "--format", "csv"]);
    assert_eq!(code, 0);
    let mut rows = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        &header[..11],
        &[
            "seq",
            "id",
            "stream",
            "version",
            "kind",
            "schema",
            "actor",
            "occurred_at",
            "payload",
            "hash",
            "prev_hash"
        ]
    );
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0][4], "AuditorGranted");
    assert_eq!(&records[0][8], r#"{"email":"bob@example.com"}"#);

    let (code, out, _) = run(&["audit", "verify"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("intact: 2 events"), "{out}");
}
