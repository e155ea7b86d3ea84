//! What careful users and operators noticed: reserved names matched like the original,
//! the client's address behind a trusted proxy, the dev mailbox only for direct local
//! requests, email headers, a new queue's page before the guardian saw it, a deleted
//! queue leaving the list at once, bounded owner lists, and a database made by an
//! earlier version fixed by the migrations.

use pulseguardian::domain::event::{AccountCreated, EmailVerified, Event, SignInMethod};
use pulseguardian::domain::{Actor, QueueRef};
use pulseguardian::events::store::NewEvent;
use sea_orm::ConnectionTrait;

use crate::browser::Site;
use crate::mailbox;
use crate::support::{Backend, TestDb, user};

async fn account(site: &Site, name: &str, owner: &str) {
    site.app()
        .record(vec![
            NewEvent::new(
                format!("account/{name}"),
                Event::AccountCreated(AccountCreated {
                    name: name.into(),
                    owners: vec![owner.into()],
                    vhosts: vec![site.vhost.name.clone()],
                }),
                &Actor::Cli,
            ),
            NewEvent::new(
                format!("user/{owner}"),
                Event::EmailVerified(EmailVerified {
                    email: owner.into(),
                    method: SignInMethod::EmailLink,
                }),
                &user(owner),
            ),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn reserved_names_are_matched_from_the_start_like_the_original() {
    let admin = mailbox::address("reserver");
    let site = Site::start(
        Backend::Sqlite,
        &[
            ("RESERVED_USERS_REGEX", "rese[r]ved|taskcluster-"),
            ("WARN_QUEUE_SIZE", "3"),
            ("DEL_QUEUE_SIZE", "6"),
            ("ADMIN_EMAILS", admin.as_str()),
        ],
    )
    .await;
    let owner = mailbox::address("tc");
    for name in ["reserved-name", "taskcluster-foo"] {
        account(&site, name, &owner).await;
        site.vhost.fill(&format!("queue/{name}/big"), 8).await;
    }
    site.observe().await;
    for name in ["reserved-name", "taskcluster-foo"] {
        assert!(
            site.vhost.exists(&format!("queue/{name}/big")).await,
            "{name} left alone"
        );
    }
    let a = site.person(&admin).await;
    let page = a
        .get(&QueueRef::new(site.vhost.name.clone(), "queue/taskcluster-foo/big").path())
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("leaves it alone"), "{}", page.body);
    assert!(
        !page.text().contains("Deletion size"),
        "no thresholds for a queue the guardian ignores"
    );
    let r = a
        .post_form(
            "/accounts",
            &[
                ("name", &site.name("taskcluster-")),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
                ("owners", &admin),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.field_error("f-name").as_deref(),
        Some("this name is reserved on this broker")
    );
}

async fn ask_link(site: &Site, b: &crate::browser::Browser, forwarded: Option<&str>) -> u16 {
    let token = b.csrf().await;
    let mut req = b.http.post(format!("{}/auth/email", site.url)).form(&[
        ("email", mailbox::address("proxied").as_str()),
        ("csrf", token.as_str()),
    ]);
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit_and_the_dev_mailbox_stays_closed() {
    // No SMTP server: the dev mailbox is on.
    let site = Site::start(
        Backend::Sqlite,
        &[("SMTP_URL", ""), ("TRUSTED_PROXIES", "127.0.0.1/32")],
    )
    .await;
    let b = site.browser();
    for i in 0..12 {
        assert_eq!(
            ask_link(&site, &b, Some(&format!("198.51.100.{i}"))).await,
            200,
            "client {i}"
        );
    }
    let mut last = 0;
    for _ in 0..11 {
        last = ask_link(&site, &b, Some("198.51.100.77")).await;
    }
    assert_eq!(last, 429, "one client is limited");
    // A client cannot forge its way out: the rightmost address that is not a proxy counts.
    let forged = ask_link(&site, &b, Some("203.0.113.1, 198.51.100.77")).await;
    assert_eq!(forged, 429);

    // The dev mailbox: this machine, directly; never through a proxy.
    let direct = b.http.get(format!("{}/dev/mailbox", site.url)).send().await.unwrap();
    assert_eq!(direct.status(), 200);
    for h in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let proxied = b
            .http
            .get(format!("{}/dev/mailbox", site.url))
            .header(h, "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(proxied.status(), 404, "{h}");
    }

    // Without TRUSTED_PROXIES the header is the client's own word, and ignored.
    let plain = Site::start(Backend::Sqlite, &[("SMTP_URL", "")]).await;
    let b = plain.browser();
    let mut last = 0;
    for i in 0..11 {
        last = ask_link(&plain, &b, Some(&format!("198.51.100.{i}"))).await;
    }
    assert_eq!(last, 429, "every request is the same client");
}

#[tokio::test]
async fn emails_carry_addresses_without_an_empty_display_name() {
    let site = Site::start(Backend::Sqlite, &[("WARN_QUEUE_SIZE", "3"), ("DEL_QUEUE_SIZE", "6")]).await;
    let owner = mailbox::address("headers");
    account(&site, "hdr", &owner).await;
    site.vhost.fill("queue/hdr/q", 4).await;
    site.observe().await;
    site.send_queued_emails().await;
    let mails = mailbox::wait_for(&owner, 1).await;
    let headers = &mails[0].headers;
    assert!(
        headers.contains(&format!("To: {owner}")) || headers.contains(&format!("To: <{owner}>")),
        "{headers}"
    );
    assert!(!headers.contains("\"\""), "{headers}");
}

#[tokio::test]
async fn a_new_queue_has_its_page_at_once_and_a_deleted_one_leaves_the_list_at_once() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let owner = mailbox::address("fresh");
    account(&site, "fresh", &owner).await;
    let b = site.person(&owner).await;
    site.vhost.fill("queue/fresh/seen", 1).await;
    site.observe().await;
    // Made after the last cycle: read from the broker.
    site.vhost.fill("queue/fresh/new", 2).await;
    let page = b
        .get(&QueueRef::new(site.vhost.name.clone(), "queue/fresh/new").path())
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.text().contains("messages"));
    // Deleted by its owner: gone from the list before the next cycle.
    let path = QueueRef::new(site.vhost.name.clone(), "queue/fresh/seen").path();
    let p = b.post_form(&format!("{path}/delete"), &[("confirm", "yes")]).await;
    assert_eq!(p.status, 303);
    let list = b.get("/queues").await;
    assert!(!list.text().contains("queue/fresh/seen"), "{}", list.body);
}

#[tokio::test]
async fn owner_lists_are_bounded() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let me = mailbox::address("many");
    let b = site.person(&me).await;
    let owners: Vec<String> = (0..21).map(|i| format!("o{i}-{me}")).collect();
    let head = site.head().await;
    let r = b
        .post_form(
            "/accounts",
            &[
                ("name", &site.name("many")),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
                ("owners", &owners.join("\n")),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    let e = r.field_error("owners-new").unwrap_or_default();
    assert!(e.contains("at most 20 owners"), "{e:?}");
    assert_eq!(site.head().await, head);
}

#[tokio::test]
async fn a_database_made_by_an_earlier_version_is_fixed_by_the_migrations() {
    use migrations::MigratorTrait;
    use pulseguardian::events::hash;
    let db = TestDb::new(Backend::MySql).await;
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    // The schema of the first version, made with the server's default collation.
    migrations::Migrator::up(&conn, Some(5)).await.unwrap();
    let collation = |table: &'static str, column: &'static str| {
        let conn = conn.clone();
        async move {
            pulseguardian::db::query_string(
                &conn,
                "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                [table.into(), column.into()],
            )
            .await
            .unwrap()
            .unwrap()
        }
    };
    assert!(
        collation("queues", "name").await.ends_with("_ci"),
        "case-insensitive before"
    );
    let payload = r#"{"email":"old@example.com"}"#;
    let at = pulseguardian::db::now();
    let id = uuid::Uuid::now_v7().to_string();
    let row = hash::Hashed {
        seq: 1,
        id: &id,
        stream: "roles",
        version: 1,
        kind: "AdminGranted",
        schema: 1,
        actor: "cli",
        correlation_id: None,
        causation_id: None,
        occurred_at: &at,
        payload,
    };
    let h = hash::chain(hash::GENESIS, &row);
    conn.execute_raw(pulseguardian::db::stmt(
        conn.get_database_backend(),
        "INSERT INTO events (seq, id, stream, version, kind, schema_version, actor, occurred_at, payload, prev_hash, hash) \
         VALUES (1, ?, 'roles', 1, 'AdminGranted', 1, 'cli', ?, ?, ?, ?)",
        [id.into(), at.into(), payload.into(), hash::GENESIS.into(), h.clone().into()],
    ))
    .await
    .unwrap();
    conn.execute_raw(pulseguardian::db::stmt(
        conn.get_database_backend(),
        "UPDATE event_head SET seq = 1, hash = ? WHERE id = 1",
        [h.into()],
    ))
    .await
    .unwrap();

    // This version's migrations: exact names, real sizes, stream keys.
    migrations::Migrator::up(&conn, None).await.unwrap();
    for (table, column) in [
        ("queues", "name"),
        ("queues", "vhost"),
        ("events", "stream"),
        ("users", "email"),
    ] {
        let c = collation(table, column).await;
        assert!(c.ends_with("_bin"), "{table}.{column} compares byte-exact: {c}");
    }
    let key = pulseguardian::db::query_string(&conn, "SELECT stream_key FROM events WHERE seq = 1", [])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key, pulseguardian::events::store::stream_key("roles"));
    assert_eq!(
        pulseguardian::events::store::verify(&conn, &[])
            .await
            .unwrap()
            .first_bad,
        None
    );
    // Names that differ in case, or only in a trailing space, are two rows now.
    for name in ["queue/a/Jobs", "queue/a/jobs", "queue/a/jobs "] {
        conn.execute_raw(pulseguardian::db::stmt(
            conn.get_database_backend(),
            "INSERT INTO queues (vhost, name, warned, unbounded, deleted) VALUES ('/', ?, 0, 0, 0)",
            [name.into()],
        ))
        .await
        .unwrap();
    }
    // The append-only log cannot be truncated any more.
    assert!(conn.execute_unprepared("TRUNCATE TABLE events").await.is_err());
    conn.close().await.ok();
}
