//! Signing in and out as a person does it, over real HTTP: email links read from the
//! real SMTP sink, OpenID Connect against the real provider, CSRF on every mutating
//! route, and the roles of the people page.

use pulseguardian::events::StoredEvent;

use crate::browser::{Browser, Site, encode, scrape_csrf, sign_in_link};
use crate::mailbox;
use crate::on_both;
use crate::rabbit::users;
use crate::support::{Backend, http};

const ISSUER: &str = "http://127.0.0.1:9090";
/// A redirect URI the test provider knows; the app is told it is served there.
const OIDC_PUBLIC_URL: &str = "http://127.0.0.1:18000";

fn payload(e: &StoredEvent) -> serde_json::Value {
    serde_json::from_str(&e.payload).unwrap()
}

fn about<'a>(events: &'a [StoredEvent], email: &str) -> Vec<&'a StoredEvent> {
    events.iter().filter(|e| payload(e)["email"] == email).collect()
}

// ---------------------------------------------------------------- email links

on_both!(an_email_link_signs_in_once_and_verifies_the_address);

async fn an_email_link_signs_in_once_and_verifies_the_address(backend: Backend) {
    let site = Site::start(backend, &[]).await;
    let email = mailbox::address("ann");
    let b = site.browser();

    assert_eq!(b.get("/accounts").await.status, 303, "signed out at first");
    let sent = b.post_form("/auth/email", &[("email", &email)]).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let link = sign_in_link(&email, 1).await;
    assert!(link.starts_with(&format!("{}/auth/email/", site.url)), "{link}");

    // Opening the link (as a mail scanner does) uses nothing up.
    let scanned = site.browser().get(&link).await;
    assert_eq!(scanned.status, 200);
    assert!(scanned.text().contains("You are signing in as"), "{}", scanned.body);
    assert!(scanned.text().contains(&email), "{}", scanned.body);
    assert_eq!(site.browser().get("/accounts").await.status, 303);
    let followed = b.follow_link(&link).await;
    assert_eq!(followed.status, 303, "{}", followed.body);
    assert_eq!(followed.location.as_deref(), Some("/queues"));
    let accounts = b.get("/accounts").await;
    assert_eq!(accounts.status, 200, "signed in");
    assert!(accounts.body.contains(&email), "the page names the person");

    let events = site.events().await;
    let mine = about(&events, &email);
    let kinds: Vec<&str> = mine.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["UserSignedIn", "EmailVerified"], "{kinds:?}");
    for e in &mine {
        assert_eq!(e.actor, format!("user:{email}"));
        assert_eq!(payload(e)["method"], "email_link");
    }
    let verified = site
        .count(
            "SELECT COUNT(*) FROM users WHERE email = ? AND email_verified = ?",
            vec![email.clone().into(), true.into()],
        )
        .await;
    assert_eq!(verified, 1);

    // The same link again, in another browser: refused, nobody signed in.
    let other = site.browser();
    let again = other.follow_link(&link).await;
    assert_eq!(again.status, 400);
    assert!(
        again.text().contains("This sign-in link is not valid"),
        "{}",
        again.body
    );
    assert_eq!(other.get("/accounts").await.status, 303);

    // An expired link.
    let head = site.head().await;
    let later = site.browser();
    assert_eq!(later.post_form("/auth/email", &[("email", &email)]).await.status, 200);
    let expiring = sign_in_link(&email, 2).await;
    assert_ne!(expiring, link);
    let past = pulseguardian::db::timestamp(chrono::Utc::now() - chrono::Duration::minutes(1));
    let changed = site
        .sql(
            "UPDATE email_tokens SET expires_at = ? WHERE email = ? AND used_at IS NULL",
            vec![past.into(), email.clone().into()],
        )
        .await;
    assert_eq!(changed, 1);
    assert_eq!(later.follow_link(&expiring).await.status, 400);
    assert_eq!(later.get("/accounts").await.status, 303);

    // A forged token, and one of the right shape.
    let forged = later.get("/auth/email/not-a-token").await;
    assert_eq!(forged.status, 400);
    let shaped = later
        .get(&format!("/auth/email/{}", pulseguardian::auth::random_token()))
        .await;
    assert_eq!(shaped.status, 400);
    assert_eq!(later.get("/accounts").await.status, 303);
    assert_eq!(site.head().await, head, "no sign-in was recorded");
}

#[tokio::test]
async fn asking_for_a_link_tells_nothing_is_limited_and_validated() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let known = mailbox::address("known");
    site.person(&known).await;
    let unknown = mailbox::address("unknown");

    let b = site.browser();
    let a = b.post_form("/auth/email", &[("email", &known)]).await;
    let u = b.post_form("/auth/email", &[("email", &unknown)]).await;
    assert_eq!((a.status, u.status), (200, 200));
    assert_eq!(
        a.body.replace(&known, "ADDRESS"),
        u.body.replace(&unknown, "ADDRESS"),
        "the same answer for a known and an unknown address"
    );
    assert!(a.text().contains("Check your email"));
    // Both get their link: the answer hides nothing real.
    sign_in_link(&unknown, 1).await;

    // Three links in a row for one address, then no more for a while.
    let busy = mailbox::address("busy");
    for i in 0..3 {
        let p = b.post_form("/auth/email", &[("email", &busy)]).await;
        assert_eq!(p.status, 200, "request {}", i + 1);
    }
    let fourth = b.post_form("/auth/email", &[("email", &busy)]).await;
    assert_eq!(fourth.status, 429, "{}", fourth.body);
    assert!(fourth.text().contains("Too many sign-in links"));
    // Another address is not held back by that one.
    let fresh = mailbox::address("fresh");
    assert_eq!(b.post_form("/auth/email", &[("email", &fresh)]).await.status, 200);

    let bad = b.post_form("/auth/email", &[("email", "not an address")]).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(
        bad.field_error("f-email").as_deref(),
        Some("This is not an email address.")
    );
    assert!(
        bad.body.contains(r#"value="not an address""#),
        "the typed value is kept"
    );
    let empty = b.post_form("/auth/email", &[("email", "")]).await;
    assert_eq!(empty.status, 422);
    assert_eq!(
        empty.field_error("f-email").as_deref(),
        Some("An email address is required.")
    );
}

#[tokio::test]
async fn admin_emails_make_an_admin_at_first_sign_in() {
    let boss = mailbox::address("boss");
    let site = Site::start(Backend::Sqlite, &[("ADMIN_EMAILS", boss.as_str())]).await;
    let plain = site.person(&mailbox::address("plain")).await;
    assert_eq!(plain.get("/admin/users").await.status, 403);
    assert!(site.events_of("AdminGranted").await.is_empty());

    let admin = site.person(&boss).await;
    assert_eq!(admin.get("/admin/users").await.status, 200);
    let granted = site.events_of("AdminGranted").await;
    assert_eq!(granted.len(), 1);
    assert_eq!(payload(&granted[0])["email"], boss.as_str());

    // Signing in again grants nothing twice.
    site.person(&boss).await;
    assert_eq!(site.events_of("AdminGranted").await.len(), 1);
}

// ---------------------------------------------------------------- OpenID Connect

async fn oidc_site() -> Site {
    Site::start(
        Backend::Sqlite,
        &[
            ("PUBLIC_URL", OIDC_PUBLIC_URL),
            ("OIDC_ISSUER", ISSUER),
            ("OIDC_CLIENT_ID", "pulseguardian-test"),
            ("OIDC_CLIENT_SECRET", "pulseguardian-test-secret"),
        ],
    )
    .await
}

/// `GET /auth/login` in the app: the provider's authorization URL it redirects to.
async fn start_oidc(b: &Browser, path: &str) -> String {
    let p = b.get(path).await;
    assert_eq!(p.status, 302, "{path}: {}", p.body);
    let to = p.location.unwrap();
    assert!(to.starts_with(&format!("{ISSUER}/")), "to the provider: {to}");
    assert!(
        to.contains(&format!(
            "redirect_uri={}",
            encode(&format!("{OIDC_PUBLIC_URL}/auth/callback"))
        )),
        "{to}"
    );
    to
}

/// Signs in at the provider (its own browser, as a person would) and returns the
/// callback URL it redirects to, moved to where the app really listens.
async fn provider_login(site: &Site, authorize: &str, login: &str) -> String {
    let c = http();
    let abs = |loc: &str| {
        if loc.starts_with("http") {
            loc.to_owned()
        } else {
            format!("{ISSUER}{loc}")
        }
    };
    let location = |r: &reqwest::Response| {
        assert_eq!(r.status(), 303, "{}", r.url());
        abs(r.headers()["location"].to_str().unwrap())
    };
    let r = c.get(authorize).send().await.unwrap();
    let interaction = location(&r);
    assert!(interaction.contains("/interaction/"), "{interaction}");
    let r = c
        .post(&interaction)
        .form(&[("prompt", "login"), ("login", login), ("password", "x")])
        .send()
        .await
        .unwrap();
    let resume = location(&r);
    let r = c.get(&resume).send().await.unwrap();
    let callback = location(&r);
    let public = format!("{OIDC_PUBLIC_URL}/auth/callback?");
    assert!(callback.starts_with(&public), "{callback}");
    callback.replacen(OIDC_PUBLIC_URL, &site.url, 1)
}

fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    assert!(pairs.iter().any(|(k, _)| k == key), "{key} in {url}");
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[tokio::test]
async fn oidc_signs_in_a_verified_person() {
    let site = oidc_site().await;
    let email = mailbox::address("oidc");
    let b = site.browser();
    let signin = b.get("/signin").await;
    assert!(
        signin.body.contains(r#"href="/auth/login""#),
        "the SSO button is offered"
    );

    let authorize = start_oidc(&b, "/auth/login?next=/accounts").await;
    let callback = provider_login(&site, &authorize, &email).await;
    let done = b.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some("/accounts"),
        "back where the person was going"
    );
    assert_eq!(b.get("/accounts").await.status, 200);

    let events = site.events().await;
    let mine = about(&events, &email);
    let kinds: Vec<&str> = mine.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["UserSignedIn", "EmailVerified"]);
    for e in mine {
        assert_eq!(payload(e)["method"], "oidc");
        assert_eq!(e.actor, format!("user:{email}"));
    }
    // The callback works once.
    let c2 = site.browser();
    assert_eq!(c2.get(&callback).await.status, 400);
    assert_eq!(c2.get("/accounts").await.status, 303);
}

#[tokio::test]
async fn oidc_refuses_a_forged_state_and_a_foreign_nonce() {
    let site = oidc_site().await;

    // The provider's answer with another state.
    let email = mailbox::address("state");
    let b = site.browser();
    let authorize = start_oidc(&b, "/auth/login").await;
    let callback = provider_login(&site, &authorize, &email).await;
    let forged = b.get(&with_param(&callback, "state", "forged-state")).await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(forged.text().contains("state"), "{}", forged.body);
    assert_eq!(b.get("/accounts").await.status, 303, "not signed in");
    // The real answer does not work afterwards either: the attempt is used up.
    assert_eq!(b.get(&callback).await.status, 400);
    assert_eq!(b.get("/accounts").await.status, 303);

    // A sign-in whose ID token carries another nonce than the one the app sent.
    let email2 = mailbox::address("nonce");
    let b2 = site.browser();
    let authorize = start_oidc(&b2, "/auth/login").await;
    let foreign = with_param(&authorize, "nonce", "a-nonce-the-app-never-sent");
    let callback = provider_login(&site, &foreign, &email2).await;
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert!(callback.contains(&format!("state={state}")), "the app's own state");
    let refused = b2.get(&callback).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.text().contains("nonce"), "{}", refused.body);
    assert_eq!(b2.get("/accounts").await.status, 303, "not signed in");

    let events = site.events().await;
    assert!(about(&events, &email).is_empty() && about(&events, &email2).is_empty());
}

#[tokio::test]
async fn oidc_without_a_verified_address_gives_no_session_and_sends_a_link() {
    let site = oidc_site().await;
    let email = mailbox::address("unverified");
    assert!(email.starts_with("unverified"));
    // The address is already someone's, with an account and its queues.
    let owner = site.person(&email).await;
    let name = site.name("unv");
    let created = owner
        .post_form(
            "/accounts",
            &[
                ("name", &name),
                ("password", "a long enough password"),
                ("password_confirm", "a long enough password"),
                ("owners", &email),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let links_before = mailbox::to(&email).len();

    // Somebody whose provider does not vouch for that address signs in with it.
    let head = site.head().await;
    let b = site.browser();
    let authorize = start_oidc(&b, "/auth/login").await;
    let callback = provider_login(&site, &authorize, &email).await;
    let done = b.get(&callback).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.text().contains("you are not signed in yet"), "{}", done.body);
    // No session: nothing the address owns is reachable, nothing was recorded.
    assert_eq!(b.get("/accounts").await.status, 303);
    assert_eq!(b.get("/me").await.status, 303);
    assert_eq!(b.get("/queues").await.status, 303);
    assert_eq!(site.head().await, head, "no sign-in recorded");

    // The link went to the address; its owner follows it and is signed in.
    let link = sign_in_link(&email, links_before + 1).await;
    assert!(link.starts_with(&format!("{OIDC_PUBLIC_URL}/auth/email/")), "{link}");
    let followed = b.follow_link(&link.replacen(OIDC_PUBLIC_URL, &site.url, 1)).await;
    assert_eq!(followed.status, 303);
    let accounts = b.get("/accounts").await;
    assert_eq!(accounts.status, 200);
    assert!(accounts.text().contains(&name));
}

#[tokio::test]
async fn next_never_leads_off_the_site() {
    let site = oidc_site().await;
    let evil = ["https://evil.example", "//evil.example", "/\\evil.example"];
    let off_site = |loc: &Option<String>| {
        let l = loc.as_deref().unwrap_or_default();
        !l.starts_with('/') || l.starts_with("//") || l.starts_with("/\\") || l.contains("evil")
    };

    // Signed out: the sign-in page does not carry the target along, and a link asked for
    // with it leads home.
    for target in evil {
        let email = mailbox::address("next");
        let b = site.browser();
        let q = encode(target);
        let page = b.get(&format!("/signin?next={q}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("evil.example"), "{}", page.body);
        let sent = b.post_form("/auth/email", &[("email", &email), ("next", target)]).await;
        assert_eq!(sent.status, 200);
        let link = sign_in_link(&email, 1).await;
        let followed = b.follow_link(&link.replacen(OIDC_PUBLIC_URL, &site.url, 1)).await;
        assert_eq!(followed.status, 303);
        assert!(!off_site(&followed.location), "{target}: {:?}", followed.location);
        assert_eq!(followed.location.as_deref(), Some("/queues"));

        // Signed in: /signin sends on, but never off the site.
        let page = b.get(&format!("/signin?next={q}")).await;
        assert_eq!(page.status, 303);
        assert_eq!(page.location.as_deref(), Some("/queues"), "{target}");
    }
    // The control: a path of the site is kept.
    let b = site.browser();
    let email = mailbox::address("next");
    let sent = b
        .post_form("/auth/email", &[("email", &email), ("next", "/accounts")])
        .await;
    assert_eq!(sent.status, 200);
    let link = sign_in_link(&email, 1).await;
    let followed = b.follow_link(&link.replacen(OIDC_PUBLIC_URL, &site.url, 1)).await;
    assert_eq!(followed.location.as_deref(), Some("/accounts"));

    // Through the identity provider.
    for target in evil {
        let b = site.browser();
        let login = mailbox::address("nextsso");
        let authorize = start_oidc(&b, &format!("/auth/login?next={}", encode(target))).await;
        let callback = provider_login(&site, &authorize, &login).await;
        let done = b.get(&callback).await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(done.location.as_deref(), Some("/queues"), "{target}");
    }

    // Without OIDC, /auth/login leads to the sign-in page, without the target.
    let plain = Site::start(Backend::Sqlite, &[]).await;
    for target in evil {
        let b = plain.browser();
        let p = b.get(&format!("/auth/login?next={}", encode(target))).await;
        assert_eq!(p.status, 303);
        assert_eq!(p.location.as_deref(), Some("/signin"), "{target}");
    }
    let p = plain.browser().get("/auth/login?next=/accounts").await;
    assert_eq!(p.location.as_deref(), Some("/signin?next=%2Faccounts"));
}

// ---------------------------------------------------------------- CSRF

#[tokio::test]
async fn every_mutating_route_needs_the_session_csrf_token() {
    let boss = mailbox::address("csrfboss");
    let site = Site::start(Backend::Sqlite, &[("ADMIN_EMAILS", boss.as_str())]).await;
    let b = site.person(&boss).await;
    let name = site.name("csrf");
    let created = b
        .post_form(
            "/accounts",
            &[
                ("name", &name),
                ("password", "first password 1"),
                ("password_confirm", "first password 1"),
                ("owners", &boss),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    b.create_token("kept").await;
    let token_id = token_ids(&site, &boss).await.remove(0);
    let someone = mailbox::address("someone");
    let new_name = site.name("csrfnew");

    let routes: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/auth/email".into(), vec![("email", someone.as_str())]),
        ("/auth/logout".into(), vec![]),
        (
            "/accounts".into(),
            vec![
                ("name", new_name.as_str()),
                ("password", "another password"),
                ("password_confirm", "another password"),
                ("owners", boss.as_str()),
            ],
        ),
        (
            format!("/accounts/{name}/password"),
            vec![
                ("password", "second password 2"),
                ("password_confirm", "second password 2"),
            ],
        ),
        (format!("/accounts/{name}/owners"), vec![("owners", someone.as_str())]),
        (
            format!("/accounts/{name}/delete"),
            vec![("confirm", name.as_str()), ("delete_queues", "yes")],
        ),
        ("/me/tokens".into(), vec![("label", "stolen")]),
        (format!("/me/tokens/{token_id}/revoke"), vec![]),
        (
            "/admin/users/roles".into(),
            vec![("email", someone.as_str()), ("role", "admin"), ("change", "grant")],
        ),
    ];
    let real = b.csrf().await;
    let head = site.head().await;
    for (path, fields) in &routes {
        // No token at all.
        let p = b.post_raw(path, fields).await;
        assert_eq!(p.status, 403, "{path} without a token");
        assert!(p.text().contains("Form expired"), "{path}: {}", p.body);
        // A wrong token in the form, and in the header.
        let mut wrong = fields.clone();
        wrong.push(("csrf", "wrong-token"));
        assert_eq!(b.post_raw(path, &wrong).await.status, 403, "{path} with a wrong token");
        let r = b
            .http
            .post(b.url(path))
            .header("x-csrf-token", format!("{real}x"))
            .form(fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} with a wrong header");
        // Another session's token.
        let stranger = site.browser();
        let theirs = stranger.csrf().await;
        let mut foreign = fields.clone();
        foreign.push(("csrf", theirs.as_str()));
        assert_eq!(
            b.post_raw(path, &foreign).await.status,
            403,
            "{path} with another session's token"
        );
        // A signed-out browser without a session.
        assert_eq!(
            site.browser().post_raw(path, fields).await.status,
            403,
            "{path} signed out"
        );
    }
    assert_eq!(site.head().await, head, "nothing was recorded");
    assert!(mailbox::to(&someone).is_empty(), "no link was sent");
    assert!(!users::exists(&new_name).await);
    assert_eq!(b.get("/accounts").await.status, 200, "still signed in");
    assert_eq!(token_ids(&site, &boss).await, [token_id.as_str()]);
    assert!(
        crate::rabbit::amqp::connect(&name, "first password 1", &site.vhost.name)
            .await
            .is_ok(),
        "the password is unchanged"
    );

    // The control: the token in the header (as htmx sends it) is accepted.
    let r = b
        .http
        .post(b.url("/me/tokens"))
        .header("x-csrf-token", &real)
        .form(&[("label", "with the header")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(token_ids(&site, &boss).await.len(), 2);
    // And logging out with it works; after that the old token is worthless.
    let out = b.post_form("/auth/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(b.get("/accounts").await.status, 303);
    let stale = [("label", "after logout"), ("csrf", real.as_str())];
    assert_eq!(b.post_raw("/me/tokens", &stale).await.status, 403);
}

async fn token_ids(site: &Site, email: &str) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    let db = &site.t.app.db;
    db.query_all_raw(pulseguardian::db::stmt(
        db.get_database_backend(),
        "SELECT id FROM api_tokens WHERE email = ? AND revoked_at IS NULL ORDER BY id",
        [email.into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).unwrap())
    .collect()
}

#[tokio::test]
async fn one_page_token_serves_every_form_on_the_page() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let email = mailbox::address("forms");
    let b = site.person(&email).await;
    b.create_token("one").await;
    b.create_token("two").await;
    let ids = token_ids(&site, &email).await;
    assert_eq!(ids.len(), 2);

    // Two revoke forms on one page, submitted one after the other with that page's token.
    let me = b.get("/me").await;
    let token = scrape_csrf(&me.body).unwrap();
    for id in &ids {
        assert!(me.body.contains(&format!("/me/tokens/{id}/revoke")));
    }
    for id in &ids {
        let p = b
            .post_raw(&format!("/me/tokens/{id}/revoke"), &[("csrf", token.as_str())])
            .await;
        assert_eq!(p.status, 303, "revoke {id}: {}", p.body);
    }
    assert!(token_ids(&site, &email).await.is_empty());
    assert_eq!(site.events_of("ApiTokenRevoked").await.len(), 2);

    // Two delete forms on the accounts page, likewise.
    let names = [site.name("first"), site.name("second")];
    for n in &names {
        let p = b
            .post_form(
                "/accounts",
                &[
                    ("name", n),
                    ("password", "a long enough password"),
                    ("password_confirm", "a long enough password"),
                    ("owners", &email),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
    }
    let page = b.get("/accounts").await;
    let token = scrape_csrf(&page.body).unwrap();
    for n in &names {
        let p = b
            .post_raw(
                &format!("/accounts/{n}/delete"),
                &[("confirm", n.as_str()), ("csrf", token.as_str())],
            )
            .await;
        assert_eq!(p.status, 303, "delete {n}: {}", p.body);
        assert!(!users::exists(n).await);
    }
    assert_eq!(site.events_of("AccountDeleted").await.len(), 2);
}

// ---------------------------------------------------------------- roles

#[tokio::test]
async fn the_last_admin_keeps_the_role() {
    let first = mailbox::address("first");
    let site = Site::start(Backend::Sqlite, &[]).await;
    let email = pulseguardian::domain::EmailAddress::parse(&first).unwrap();
    pulseguardian::app::roles::grant(
        site.app(),
        &pulseguardian::auth::Principal::cli(),
        &email,
        pulseguardian::domain::roles::Role::Admin,
    )
    .await
    .unwrap();
    let a = site.person(&first).await;
    assert_eq!(a.get("/admin/users").await.status, 200);

    let revoke_self = [("email", first.as_str()), ("role", "admin"), ("change", "revoke")];
    let p = a.post_form("/admin/users/roles", &revoke_self).await;
    assert_eq!(p.status, 303);
    let back = p.location.unwrap();
    assert!(back.starts_with("/admin/users?error="), "{back}");
    let shown = a.get(&back).await;
    assert!(shown.text().contains("is the last admin"), "{}", shown.body);
    assert_eq!(a.get("/admin/users").await.status, 200, "still admin");
    assert!(site.events_of("AdminRevoked").await.is_empty());

    // With a second admin, the first may step down.
    let second = mailbox::address("second");
    let p = a
        .post_form(
            "/admin/users/roles",
            &[("email", &second), ("role", "admin"), ("change", "grant")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert!(p.location.unwrap().starts_with("/admin/users?done="));
    let b = site.person(&second).await;
    assert_eq!(b.get("/admin/users").await.status, 200);

    let p = a.post_form("/admin/users/roles", &revoke_self).await;
    assert_eq!(p.status, 303);
    assert!(p.location.unwrap().starts_with("/admin/users?done="));
    let revoked = site.events_of("AdminRevoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(payload(&revoked[0])["email"], first.as_str());
    assert_eq!(revoked[0].actor, format!("user:{first}"));
    assert_eq!(a.get("/admin/users").await.status, 403, "no longer admin");

    // Now the second is the last one.
    let p = b
        .post_form(
            "/admin/users/roles",
            &[("email", &second), ("role", "admin"), ("change", "revoke")],
        )
        .await;
    assert!(p.location.unwrap().starts_with("/admin/users?error="));
    assert_eq!(site.events_of("AdminRevoked").await.len(), 1);
}

#[tokio::test]
async fn a_role_from_the_configuration_is_not_revoked_where_it_would_come_back() {
    let boss = mailbox::address("cfgadmin");
    let watcher = mailbox::address("cfgauditor");
    let site = Site::start(
        Backend::Sqlite,
        &[("ADMIN_EMAILS", boss.as_str()), ("AUDITOR_EMAILS", watcher.as_str())],
    )
    .await;
    let a = site.person(&boss).await;
    site.person(&watcher).await;
    let other = mailbox::address("cfgother");
    let p = a
        .post_form(
            "/admin/users/roles",
            &[("email", &other), ("role", "admin"), ("change", "grant")],
        )
        .await;
    assert!(p.location.unwrap().starts_with("/admin/users?done="));
    for (email, role, var) in [
        (&boss, "admin", "ADMIN_EMAILS"),
        (&watcher, "auditor", "AUDITOR_EMAILS"),
    ] {
        let p = a
            .post_form(
                "/admin/users/roles",
                &[("email", email), ("role", role), ("change", "revoke")],
            )
            .await;
        let back = p.location.unwrap();
        assert!(back.starts_with("/admin/users?error="), "{back}");
        let shown = a.get(&back).await;
        assert!(shown.text().contains(var), "{}", shown.body);
    }
    assert!(site.events_of("AdminRevoked").await.is_empty());
    assert!(site.events_of("AuditorRevoked").await.is_empty());
}
