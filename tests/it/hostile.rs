//! Hostile input at its real maximum, on MariaDB (each test database is made with the
//! server's default collation, `utf8mb4_general_ci` here, and migrated) and SQLite:
//! 255-byte queue and vhost names of any UTF-8, names that differ only in case, accents
//! or a trailing space, 254-character emails and 64-character account names through
//! every action that records them; oversized bodies; redirect encodings; queues of
//! vhosts that are not guarded. One bad value never stops the rest.

use std::time::Duration;

use pulseguardian::domain::event::{AccountCreated, EmailVerified, Event, SignInMethod};
use pulseguardian::domain::{Actor, QueueRef};
use pulseguardian::events::store::{self, NewEvent};
use pulseguardian::guardian::{Guardian, Outcome};
use sea_orm::ConnectionTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{Site, encode};
use crate::mailbox;
use crate::on_both;
use crate::rabbit::TestVhost;
use crate::support::{Backend, user};

/// A 254-character address (the SMTP maximum): a 64-character local part and a domain
/// of 189, every label within DNS's 63.
pub fn longest_email(tag: &str) -> String {
    let uid = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let local = format!("{tag}-{uid}-")
        .chars()
        .chain(std::iter::repeat('l'))
        .take(64)
        .collect::<String>();
    let domain = format!("{}.{}.{}.example.org", "a".repeat(63), "b".repeat(63), "c".repeat(49));
    let e = format!("{local}@{domain}");
    assert_eq!(e.len(), 254, "{e}");
    e
}

/// A 64-character account name (the contract's maximum), unique.
fn longest_account(tag: &str) -> String {
    let uid = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let n: String = format!("{tag}{uid}.-_")
        .chars()
        .chain(std::iter::repeat('z'))
        .take(64)
        .collect();
    assert_eq!(n.len(), 64);
    n
}

/// `prefix` padded with `filler` to exactly `bytes` bytes of UTF-8.
fn padded(prefix: &str, filler: &str, bytes: usize) -> String {
    let mut s = prefix.to_owned();
    for c in filler.chars().cycle() {
        if s.len() + c.len_utf8() > bytes {
            break;
        }
        s.push(c);
    }
    while s.len() < bytes {
        s.push('x');
    }
    s
}

async fn events_of(site: &Site, kind: &str) -> Vec<pulseguardian::events::StoredEvent> {
    site.events_of(kind).await
}

async fn no_projection_failures(site: &Site) {
    let failures = pulseguardian::projections::failures(&site.app().db).await.unwrap();
    assert!(failures.is_empty(), "the projector set events aside: {failures:?}");
}

on_both!(the_longest_and_oddest_names_go_through_the_whole_cycle_and_the_pages);

async fn the_longest_and_oddest_names_go_through_the_whole_cycle_and_the_pages(backend: Backend) {
    let vhost = TestVhost::hostile().await;
    let site = Site::start(
        backend,
        &[
            ("RABBIT_VHOSTS", vhost.name.as_str()),
            ("WARN_QUEUE_SIZE", "3"),
            ("DEL_QUEUE_SIZE", "6"),
        ],
    )
    .await;
    let acct = longest_account("h");
    let owner = longest_email("owner");
    site.app()
        .record(vec![
            NewEvent::new(
                format!("account/{acct}"),
                Event::AccountCreated(AccountCreated {
                    name: acct.clone(),
                    owners: vec![owner.clone()],
                    vhosts: vec![vhost.name.clone()],
                }),
                &Actor::Cli,
            ),
            NewEvent::new(
                format!("user/{owner}"),
                Event::EmailVerified(EmailVerified {
                    email: owner.clone(),
                    method: SignInMethod::EmailLink,
                }),
                &user(&owner),
            ),
        ])
        .await
        .unwrap();
    let base = format!("queue/{acct}/");
    // Two 255- and 254-byte names that differ only in a trailing space.
    let long_no_space = padded(&base, ". %/#😀 ", 254);
    let long = format!("{long_no_space} ");
    let upper = format!("{base}Jobs");
    let lower = format!("{base}jobs");
    let accent = format!("{base}jobé");
    let plain = format!("{base}jobe");
    let unknown_owner = padded("queue/", "o", 200) + "/q";
    for (q, n) in [
        (&long, 4),
        (&long_no_space, 4),
        (&upper, 8),
        (&lower, 4),
        (&accent, 4),
        (&plain, 1),
        (&unknown_owner, 8),
    ] {
        assert!(q.len() <= 255, "{} bytes", q.len());
        vhost.fill(q, n).await;
    }

    // One cycle guards every queue, each on its own stream.
    let g = Guardian::new(site.app().clone());
    let Outcome::Guarded(r) = g.cycle().await.unwrap() else {
        panic!("not guarded")
    };
    assert_eq!(r.deleted, 2, "the case-colliding upper one and the ownerless one");
    no_projection_failures(&site).await;
    let warned: Vec<String> = events_of(&site, "QueueWarned")
        .await
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.payload).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for q in [&long, &long_no_space, &lower, &accent] {
        assert_eq!(
            warned.iter().filter(|w| *w == q).count(),
            1,
            "{q:?} warned once: {warned:?}"
        );
    }
    assert!(
        !vhost.exists(&upper).await && vhost.exists(&lower).await,
        "Jobs deleted, jobs kept"
    );
    assert!(!vhost.exists(&unknown_owner).await);
    let streams: std::collections::BTreeSet<String> = site.events().await.into_iter().map(|e| e.stream).collect();
    for q in [&long, &long_no_space, &upper, &lower, &accent] {
        assert!(streams.contains(&QueueRef::new(vhost.name.clone(), q.clone()).stream()));
    }
    // Steady: nothing new.
    let head = site.head().await;
    let Outcome::Guarded(r) = g.cycle().await.unwrap() else {
        panic!()
    };
    assert_eq!((r.events, site.head().await), (0, head));

    // The owner, with the longest address, sees each on the pages and the API.
    let b = site.person(&owner).await;
    let token = b
        .create_token(&padded("label ", "é", 100).chars().take(100).collect::<String>())
        .await;
    let api = site
        .browser()
        .http
        .get(format!("{}/api/v1/queues", site.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let list: Vec<serde_json::Value> = api.json().await.unwrap();
    for q in [&long, &long_no_space, &lower, &accent, &plain] {
        let row = list
            .iter()
            .find(|r| r["name"] == q.as_str())
            .unwrap_or_else(|| panic!("{q:?} listed"));
        assert_eq!(row["vhost"], vhost.name.as_str());
    }
    for q in [&long, &long_no_space, &lower, &accent] {
        let page = b.get(&QueueRef::new(vhost.name.clone(), q.clone()).path()).await;
        assert_eq!(page.status, 200, "{q:?}");
        assert!(page.body.contains("QueueWarned"));
    }
    // A person deletes one; the longest address goes into its record.
    let path = QueueRef::new(vhost.name.clone(), long.clone()).path();
    let p = b.post_form(&format!("{path}/delete"), &[("confirm", "yes")]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(!vhost.exists(&long).await && vhost.exists(&long_no_space).await);
    no_projection_failures(&site).await;
    let rec = pulseguardian::projections::queues::one(&site.app().db, &QueueRef::new(vhost.name.clone(), long.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.last_action, Some(format!("deleted by {owner}")));
    assert_eq!(store::verify(&site.app().db, &[]).await.unwrap().first_bad, None);
}

on_both!(the_longest_addresses_go_through_every_action_that_records_them);

async fn the_longest_addresses_go_through_every_action_that_records_them(backend: Backend) {
    let admin = longest_email("admin");
    let site = Site::start(backend, &[("ADMIN_EMAILS", admin.as_str())]).await;
    let a = site.person(&admin).await;
    let other = longest_email("other");
    let third = longest_email("third");
    // Roles.
    for (role, change) in [("auditor", "grant"), ("auditor", "revoke"), ("admin", "grant")] {
        let p = a
            .post_form(
                "/admin/users/roles",
                &[("email", &other), ("role", role), ("change", change)],
            )
            .await;
        assert!(
            p.location
                .as_deref()
                .unwrap_or_default()
                .starts_with("/admin/users?done="),
            "{p:?}"
        );
    }
    // An account with the longest name and two owners of the longest addresses.
    let name = site.name("l");
    let name = format!("{name}{}", "z".repeat(64 - name.len()));
    site.forget_user_later(&name);
    let owners = format!("{admin}\n{other}");
    let p = a
        .post_form(
            "/accounts",
            &[
                ("name", &name),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
                ("owners", &owners),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let p = a
        .post_form(
            &format!("/accounts/{name}/owners"),
            &[("owners", &format!("{admin}\n{third}"))],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let token = a.create_token("t").await;
    assert!(token.starts_with("pgt_"));
    let p = a
        .post_form(&format!("/accounts/{name}/delete"), &[("confirm", &name)])
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    no_projection_failures(&site).await;
    for kind in [
        "AccountCreated",
        "AccountOwnersChanged",
        "AccountDeleted",
        "ApiTokenCreated",
        "AdminGranted",
    ] {
        assert!(!events_of(&site, kind).await.is_empty(), "{kind}");
    }
    let people = a.get("/admin/users").await;
    for e in [&admin, &other] {
        assert!(people.body.contains(e.as_str()), "{e} listed");
    }
    // Owner emails went to the longest addresses.
    site.send_queued_emails().await;
    mailbox::wait_for(&other, 1).await;
    mailbox::wait_for(&third, 1).await;
}

on_both!(addresses_and_names_that_differ_only_in_case_or_accent_are_different);

async fn addresses_and_names_that_differ_only_in_case_or_accent_are_different(backend: Backend) {
    let site = Site::start(backend, &[]).await;
    let uid = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let plain = format!("ann.lee-{uid}@example.com");
    let accented = format!("ann.lée-{uid}@example.com");
    let (p, q) = (site.person(&plain).await, site.person(&accented).await);
    let name = site.name("Case");
    let lower = name.to_lowercase();
    site.forget_user_later(&lower);
    for (b, n, owner) in [(&p, &name, &plain), (&q, &lower, &accented)] {
        let r = b
            .post_form(
                "/accounts",
                &[
                    ("name", n),
                    ("password", "a long enough password"),
                    ("password_confirm", "a long enough password"),
                    ("owners", owner),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{n}: {}", r.body);
    }
    let mine = p.get("/accounts").await;
    assert!(mine.text().contains(&name) && !mine.text().contains(&format!("account-{lower}\"")));
    let theirs = q.get("/accounts").await;
    assert!(theirs.text().contains(&lower) && !theirs.text().contains(&format!("account-{name}\"")));
    let db = &site.app().db;
    let people = pulseguardian::db::query_i64(
        db,
        "SELECT COUNT(*) FROM users WHERE email IN (?, ?)",
        [plain.as_str().into(), accented.as_str().into()],
    )
    .await
    .unwrap();
    assert_eq!(people, 2, "two people");
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let addr = site.url.trim_start_matches("http://").to_owned();
    // A declared 10 GB body with a CSRF header, before any sign-in: refused at once.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /auth/email HTTP/1.1\r\nHost: x\r\nX-CSRF-Token: forged\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000000\r\n\r\nabc",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A chunked body (no declared length) past the bound.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /auth/email HTTP/1.1\r\nHost: x\r\nX-CSRF-Token: forged\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'x'; 8192];
    for _ in 0..12 {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || s.write_all(&chunk).await.is_err()
            || s.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The API answers in JSON.
    let r = site
        .browser()
        .http
        .delete(format!("{}/api/v1/queues/x/y", site.url))
        .body(vec![b'x'; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger than"));
    // Within the bound, forms work as before.
    assert_eq!(site.browser().get("/healthz").await.status, 200);
}

#[tokio::test]
async fn redirect_encodings_a_browser_would_normalise_never_leave_the_site() {
    let targets = [
        "/\t/evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "/%2F%2Fevil.example",
        "/%2f/evil.example",
        "/%5C%5Cevil.example",
        "//%09evil.example",
        "/\n/evil.example",
        "https:evil.example",
        "/%0d%0aLocation:%20https://evil.example",
        " /evil.example",
    ];
    // Sign-in links are limited to ten per client at once: a site per five targets.
    for chunk in targets.chunks(5) {
        let site = Site::start(Backend::Sqlite, &[]).await;
        for target in chunk {
            let target = *target;
            check_redirect(&site, target).await;
        }
    }
}

async fn check_redirect(site: &Site, target: &str) {
    {
        let email = mailbox::address("redir");
        let b = site.browser();
        let page = b.get(&format!("/signin?next={}", encode(target))).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("evil.example"), "{target:?} carried along");
        let sent = b.post_form("/auth/email", &[("email", &email), ("next", target)]).await;
        assert_eq!(sent.status, 200);
        let link = crate::browser::sign_in_link(&email, 1).await;
        let followed = b.follow_link(&link).await;
        assert_eq!(followed.location.as_deref(), Some("/queues"), "{target:?}");
        let again = b.get(&format!("/signin?next={}", encode(target))).await;
        assert_eq!(again.location.as_deref(), Some("/queues"), "{target:?}");
    }
}

#[tokio::test]
async fn queues_of_vhosts_that_are_not_guarded_are_not_there() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let foreign = TestVhost::new().await;
    let owner = mailbox::address("foreign");
    let b = site.person(&owner).await;
    let name = site.name("f");
    let p = b
        .post_form(
            "/accounts",
            &[
                ("name", &name),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
                ("owners", &owner),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let q = format!("queue/{name}/elsewhere");
    foreign.fill(&q, 2).await;
    let path = QueueRef::new(foreign.name.clone(), q.clone()).path();
    assert_eq!(b.get(&path).await.status, 404);
    assert_eq!(
        b.post_form(&format!("{path}/delete"), &[("confirm", "yes")])
            .await
            .status,
        404
    );
    let token = b.create_token("t").await;
    let r = b
        .http
        .delete(format!("{}/api/v1{path}", site.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(foreign.exists(&q).await, "still there");
    assert!(site.events_of("QueueDeletedByUser").await.is_empty());
}

#[tokio::test]
async fn sizes_beyond_the_database_range_are_a_field_error() {
    let admin = mailbox::address("sizes");
    let site = Site::start(Backend::Sqlite, &[("ADMIN_EMAILS", admin.as_str())]).await;
    let a = site.person(&admin).await;
    let q = QueueRef::new(site.vhost.name.clone(), "queue/acct/huge");
    site.vhost.fill(&q.name, 1).await;
    let head = site.head().await;
    for huge in ["18446744073709551615", "9223372036854775808", "-1", "1e3", "0"] {
        let p = a
            .post_form(
                &format!("{}/policy", q.path()),
                &[("warn_size", "10"), ("del_size", huge)],
            )
            .await;
        assert_eq!(p.status, 422, "{huge}: {}", p.body);
        let e = p.field_error("f-del_size").unwrap_or_default();
        assert!(e.contains("whole number") || e.contains("at most"), "{huge}: {e:?}");
    }
    assert_eq!(site.head().await, head, "nothing recorded");
    let p = a
        .post_form(
            &format!("{}/policy", q.path()),
            &[("warn_size", "10"), ("del_size", "9223372036854775807")],
        )
        .await;
    assert_eq!(p.status, 303, "the largest size is fine: {}", p.body);
}

on_both!(audit_filters_with_like_wildcards_find_what_they_say);

async fn audit_filters_with_like_wildcards_find_what_they_say(backend: Backend) {
    let admin = format!("a_b%c-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let site = Site::start(backend, &[("ADMIN_EMAILS", admin.as_str())]).await;
    let a = site.person(&admin).await;
    let count = |page: &crate::browser::Page| page.body.matches("class=\"event\"").count();
    let exact = a.get(&format!("/audit?actor={}", encode("a_b%c"))).await;
    assert!(count(&exact) >= 2, "found by its own `_` and `%`: {}", exact.body);
    let wild = a.get(&format!("/audit?actor={}", encode("a%c"))).await;
    assert_eq!(count(&wild), 0, "`%` matches only itself");
    let wild = a.get(&format!("/audit?actor={}", encode("a_b_c"))).await;
    assert_eq!(count(&wild), 0, "`_` matches only itself");
}

#[tokio::test]
async fn one_event_the_read_models_cannot_take_is_set_aside_and_the_rest_goes_on() {
    let site = Site::start(Backend::MySql, &[]).await;
    let db = &site.app().db;
    // An event from a newer version of PulseGuardian (a kind this one does not know),
    // appended with a valid chain link, between two ordinary ones.
    let before = mailbox::address("before");
    site.person(&before).await;
    let head = store::head(db).await.unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let at = pulseguardian::db::now();
    let row = pulseguardian::events::hash::Hashed {
        seq: head.seq + 1,
        id: &id,
        stream: "future/x",
        version: 1,
        kind: "FromTheFuture",
        schema: 1,
        actor: "cli",
        correlation_id: None,
        causation_id: None,
        occurred_at: &at,
        payload: "{}",
    };
    let h = pulseguardian::events::hash::chain(&head.hash, &row);
    db.execute_raw(pulseguardian::db::stmt(
        db.get_database_backend(),
        "INSERT INTO events (seq, id, stream, stream_key, version, kind, schema_version, actor, occurred_at, payload, \
         prev_hash, hash) VALUES (?, ?, 'future/x', ?, 1, 'FromTheFuture', 1, 'cli', ?, '{}', ?, ?)",
        [
            (head.seq + 1).into(),
            id.into(),
            store::stream_key("future/x").into(),
            at.into(),
            head.hash.into(),
            h.clone().into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(pulseguardian::db::stmt(
        db.get_database_backend(),
        "UPDATE event_head SET seq = ?, hash = ? WHERE id = 1",
        [(head.seq + 1).into(), h.into()],
    ))
    .await
    .unwrap();
    // Later events are applied; the unknown one is recorded and shown.
    let after = mailbox::address("after");
    let admin_site = site.person(&after).await;
    let users = pulseguardian::db::query_i64(
        db,
        "SELECT COUNT(*) FROM users WHERE email = ?",
        [after.as_str().into()],
    )
    .await
    .unwrap();
    assert_eq!(users, 1, "the projector went on past it");
    let failures = pulseguardian::projections::failures(db).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!((failures[0].0, failures[0].1.as_str()), (head.seq + 1, "FromTheFuture"));
    pulseguardian::app::roles::grant(
        site.app(),
        &pulseguardian::auth::Principal::cli(),
        &pulseguardian::domain::EmailAddress::parse(&after).unwrap(),
        pulseguardian::domain::roles::Role::Auditor,
    )
    .await
    .unwrap();
    let audit = admin_site.get("/audit").await;
    assert!(audit.text().contains("could not take"), "{}", audit.body);
    assert!(audit.text().contains("FromTheFuture"));
}

#[tokio::test]
async fn the_generated_session_key_is_sealed_and_a_damaged_one_is_a_clear_error() {
    let t = crate::support::TestApp::new(Backend::Sqlite).await;
    let db = &t.app.db;
    let stored = pulseguardian::db::query_string(db, "SELECT value FROM settings WHERE name = 'session_key'", [])
        .await
        .unwrap()
        .expect("a generated key");
    assert_ne!(hex::decode(&stored).unwrap().len(), t.key.len(), "not the key in clear");
    assert!(!stored.contains(&hex::encode(&t.key[..16])), "not the key in clear");
    db.execute_unprepared("UPDATE settings SET value = 'abcd' WHERE name = 'session_key'")
        .await
        .unwrap();
    let err = pulseguardian::startup::start(crate::support::config(&t.db, &[]))
        .await
        .err()
        .expect("a damaged key stops the start");
    let msg = format!("{err:#}");
    assert!(msg.contains("SECRET_KEY") && msg.contains("session_key"), "{msg}");
}
