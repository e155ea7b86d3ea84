//! RabbitMQ accounts through the web pages and the command line, checked against the
//! real RabbitMQ (management API and AMQP) and the event log: the naming and password
//! rules, permissions, password and owner changes, deletion, who may do what, and what a
//! broker failure or a crash midway leaves behind.

use pulseguardian::events::StoredEvent;

use crate::browser::{Browser, Site};
use crate::mailbox;
use crate::on_both;
use crate::rabbit::{amqp, users};
use crate::support::{Backend, run_binary};

const PASSWORD: &str = "correct horse battery";

fn payload(e: &StoredEvent) -> serde_json::Value {
    serde_json::from_str(&e.payload).unwrap()
}

/// The events of one account's stream, by kind.
async fn account_kinds(site: &Site, name: &str) -> Vec<String> {
    site.events()
        .await
        .into_iter()
        .filter(|e| e.stream == format!("account/{name}"))
        .map(|e| e.kind)
        .collect()
}

async fn create(b: &Browser, name: &str, password: &str, confirm: &str, owners: &str) -> crate::browser::Page {
    b.post_form(
        "/accounts",
        &[
            ("name", name),
            ("password", password),
            ("password_confirm", confirm),
            ("owners", owners),
        ],
    )
    .await
}

/// The contract's permissions for `name` (its dots escaped as the regex needs).
fn expected_permissions(name: &str) -> (String, String, String) {
    let n = regex::escape(name);
    (
        format!("^(queue/{n}/.*|exchange/{n}/.*)"),
        format!("^(queue/{n}/.*|exchange/{n}/.*)"),
        format!("^(queue/{n}/.*|exchange/.*)"),
    )
}

async fn account_row(site: &Site, name: &str) -> Option<String> {
    use sea_orm::ConnectionTrait;
    let db = &site.t.app.db;
    db.query_one_raw(pulseguardian::db::stmt(
        db.get_database_backend(),
        "SELECT status FROM accounts WHERE name = ?",
        [name.into()],
    ))
    .await
    .unwrap()
    .map(|r| r.try_get_by_index::<String>(0).unwrap())
}

// ---------------------------------------------------------------- a whole life

on_both!(an_account_is_created_changed_and_deleted_as_the_contract_says);

async fn an_account_is_created_changed_and_deleted_as_the_contract_says(backend: Backend) {
    let site = Site::start(backend, &[]).await;
    let alice = mailbox::address("alice");
    let carol = mailbox::address("carol");
    let b = site.person(&alice).await;
    // A dot in the name: the permissions must escape it.
    let name = site.name("a.");
    let vhost = site.vhost.name.clone();

    let p = create(&b, &name, PASSWORD, PASSWORD, &format!("{alice}\n{carol}")).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(p.location.as_deref().unwrap().starts_with("/accounts?done="));
    let page = b.get(p.location.as_deref().unwrap()).await;
    assert!(
        page.text().contains(&format!("The account {name} was created.")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!(r#"id="account-{name}""#)), "listed");
    assert_eq!(
        account_kinds(&site, &name).await,
        ["AccountCreationStarted", "AccountCreated"]
    );
    let created = site.events_of("AccountCreated").await;
    assert_eq!(created[0].actor, format!("user:{alice}"));
    let owners = payload(&created[0])["owners"].clone();
    let mut want = vec![alice.clone(), carol.clone()];
    want.sort();
    assert_eq!(owners, serde_json::json!(want));
    assert_eq!(account_row(&site, &name).await.as_deref(), Some("active"));

    // RabbitMQ: the user, with exactly the contract's permissions on the vhost.
    assert!(users::exists(&name).await);
    let perms = users::permissions(&vhost, &name)
        .await
        .expect("permissions on the vhost");
    assert_eq!(perms, expected_permissions(&name));
    assert!(perms.0.contains(r"a\."), "the dot is escaped: {perms:?}");

    // AMQP: its own queues yes, someone else's no.
    let conn = amqp::connect(&name, PASSWORD, &vhost)
        .await
        .expect("the account connects");
    let own = format!("queue/{name}/x");
    amqp::declare(&conn, &own).await.expect("declare its own queue");
    assert!(site.vhost.exists(&own).await);
    let err = amqp::declare(&conn, "queue/someoneelse/x")
        .await
        .expect_err("another account's queue is refused");
    assert!(amqp::is_access_refused(&err), "{err}");
    assert!(!site.vhost.exists("queue/someoneelse/x").await);
    let _ = conn.close(200, "bye".into()).await;

    // The co-owner is told; the creator is not.
    assert_eq!(site.send_queued_emails().await, 1);
    let mails = mailbox::wait_for(&carol, 1).await;
    assert_eq!(
        mails[0].subject,
        format!("PulseGuardian: you are now an owner of the RabbitMQ account \"{name}\"")
    );
    assert!(mails[0].body.contains(&alice), "{}", mails[0].body);
    assert_eq!(mailbox::to(&alice).len(), 1, "only the sign-in link");

    // A new password: same permissions, the new one connects, the old one no longer.
    let new_password = "a brand new password";
    let p = b
        .post_form(
            &format!("/accounts/{name}/password"),
            &[("password", new_password), ("password_confirm", new_password)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        users::permissions(&vhost, &name).await,
        Some(expected_permissions(&name))
    );
    let conn = amqp::connect(&name, new_password, &vhost)
        .await
        .expect("the new password works");
    let _ = conn.close(200, "bye".into()).await;
    assert!(
        amqp::connect(&name, PASSWORD, &vhost).await.is_err(),
        "the old one is refused"
    );
    let changed = site.events_of("AccountPasswordChanged").await;
    assert_eq!(changed.len(), 1);
    assert!(!changed[0].payload.contains(new_password), "no password in the log");

    // A bad new password.
    let head = site.head().await;
    let p = b
        .post_form(
            &format!("/accounts/{name}/password"),
            &[("password", "short"), ("password_confirm", "short")],
        )
        .await;
    assert_eq!(p.status, 422);
    assert_eq!(
        p.field_error("f-password").as_deref(),
        Some("a password has at least 12 characters")
    );
    assert_eq!(site.head().await, head);
    assert!(amqp::connect(&name, new_password, &vhost).await.is_ok());

    // Owners: never none; someone added is told.
    let p = b
        .post_form(&format!("/accounts/{name}/owners"), &[("owners", " \n ")])
        .await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert_eq!(
        p.field_error(&format!("owners-{name}")).as_deref(),
        Some("an account needs at least one owner")
    );
    assert_eq!(site.head().await, head);
    let dave = mailbox::address("dave");
    let p = b
        .post_form(
            &format!("/accounts/{name}/owners"),
            &[("owners", &format!("{alice}, {dave}"))],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let changed = site.events_of("AccountOwnersChanged").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(payload(&changed[0])["added"], serde_json::json!([dave]));
    assert_eq!(payload(&changed[0])["removed"], serde_json::json!([carol]));
    assert_eq!(site.send_queued_emails().await, 1);
    let mails = mailbox::wait_for(&dave, 1).await;
    assert!(mails[0].subject.contains(&name));
    assert_eq!(mailbox::to(&carol).len(), 1, "a removed owner gets nothing more");

    // Delete, with its queues: the confirmation must be the name.
    let p = b
        .post_form(
            &format!("/accounts/{name}/delete"),
            &[("confirm", "something else"), ("delete_queues", "yes")],
        )
        .await;
    assert_eq!(p.status, 422);
    assert_eq!(
        p.field_error("f-confirm").as_deref(),
        Some(format!("type {name} to confirm").as_str())
    );
    assert!(users::exists(&name).await);

    site.observe().await;
    let p = b
        .post_form(
            &format!("/accounts/{name}/delete"),
            &[("confirm", &name), ("delete_queues", "yes")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(!users::exists(&name).await, "the RabbitMQ user is gone");
    assert!(!site.vhost.exists(&own).await, "its queue is gone");
    assert_eq!(account_row(&site, &name).await, None);
    assert!(
        !b.get("/accounts")
            .await
            .body
            .contains(&format!(r#"id="account-{name}""#))
    );
    let kinds = account_kinds(&site, &name).await;
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["AccountDeletionStarted", "AccountDeleted"],
        "{kinds:?}"
    );
    let deleted_queues = site.events_of("QueueDeletedByUser").await;
    assert_eq!(deleted_queues.len(), 1);
    assert_eq!(payload(&deleted_queues[0])["name"], own.as_str());
    assert_eq!(payload(&deleted_queues[0])["vhost"], vhost.as_str());
    assert_eq!(deleted_queues[0].actor, format!("user:{alice}"));
}

/// "Also delete its queues" deletes the queues the account has now, not only those the
/// guardian happened to have seen.
#[tokio::test]
async fn deleting_with_its_queues_deletes_queues_made_since_the_last_guardian_cycle() {
    let site = Site::start(Backend::Sqlite, &[]).await;
    let email = mailbox::address("fresh");
    let b = site.person(&email).await;
    let name = site.name("fresh");
    assert_eq!(create(&b, &name, PASSWORD, PASSWORD, &email).await.status, 303);
    let queue = format!("queue/{name}/new");
    site.vhost.declare(&queue).await;
    let p = b
        .post_form(
            &format!("/accounts/{name}/delete"),
            &[("confirm", &name), ("delete_queues", "yes")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(!users::exists(&name).await);
    assert!(!site.vhost.exists(&queue).await, "the account's queue is left behind");
}

// ---------------------------------------------------------------- rules

/// Matched against the whole name (README).
const RESERVED: &str = "(reserved|guest).*";

/// (what, name, password, confirm, field, message): each refused with its own message.
fn bad_inputs(
    site: &Site,
    taken: &str,
    rabbit_only: &str,
) -> Vec<(&'static str, String, String, String, &'static str, String)> {
    let long = format!("a{}", "b".repeat(64));
    let p = PASSWORD.to_owned();
    vec![
        (
            "empty",
            String::new(),
            p.clone(),
            p.clone(),
            "name",
            "the name is required".into(),
        ),
        (
            "a digit first",
            "9lives".into(),
            p.clone(),
            p.clone(),
            "name",
            "must start with a letter".into(),
        ),
        (
            "too long",
            long,
            p.clone(),
            p.clone(),
            "name",
            "at most 64 characters".into(),
        ),
        (
            "a bad character",
            "bad*name".into(),
            p.clone(),
            p.clone(),
            "name",
            "may contain only letters".into(),
        ),
        (
            "a slash",
            "bad/name".into(),
            p.clone(),
            p.clone(),
            "name",
            "may contain only letters".into(),
        ),
        (
            "reserved",
            site.name("reserved"),
            p.clone(),
            p.clone(),
            "name",
            "reserved".into(),
        ),
        (
            "an account",
            taken.into(),
            p.clone(),
            p.clone(),
            "name",
            "an account with this name already exists".into(),
        ),
        (
            "a RabbitMQ user",
            rabbit_only.into(),
            p.clone(),
            p.clone(),
            "name",
            "a RabbitMQ user with this name already exists".into(),
        ),
        (
            "a short password",
            site.name("shortpw"),
            "elevenchars".into(),
            "elevenchars".into(),
            "password",
            "at least 12 characters".into(),
        ),
        (
            "mismatched passwords",
            site.name("mismatch"),
            p.clone(),
            format!("{p}!"),
            "password_confirm",
            "the two passwords differ".into(),
        ),
    ]
}

#[tokio::test]
async fn bad_names_and_passwords_are_refused_with_one_message_each() {
    let site = Site::start(Backend::Sqlite, &[("RESERVED_USERS_REGEX", RESERVED)]).await;
    let email = mailbox::address("rules");
    let b = site.person(&email).await;
    let taken = site.name("taken");
    assert_eq!(create(&b, &taken, PASSWORD, PASSWORD, &email).await.status, 303);
    let rabbit_only = site.name("rabbitonly");
    users::put(&rabbit_only, "someone else's password").await;

    let head = site.head().await;
    for (what, name, password, confirm, field, message) in bad_inputs(&site, &taken, &rabbit_only) {
        let p = create(&b, &name, &password, &confirm, &email).await;
        assert_eq!(p.status, 422, "{what}: {}", p.body);
        let shown = p.field_error(&format!("f-{field}"));
        assert!(
            shown.as_deref().is_some_and(|s| s.contains(&message)),
            "{what}: {shown:?} should say {message:?}"
        );
        assert_eq!(p.field_errors().len(), 1, "{what}: one message: {:?}", p.field_errors());
        assert!(
            p.body.contains(&format!(r#"value="{name}""#)),
            "{what}: the name is kept"
        );
        assert!(!p.body.contains(&password), "{what}: the password is not sent back");
        assert_eq!(site.head().await, head, "{what}: nothing recorded");
        if !name.is_empty() && name != taken && name != rabbit_only && !name.contains(['*', '/']) {
            assert!(!users::exists(&name).await, "{what}: no RabbitMQ user");
        }
    }
    assert_eq!(
        users::permissions(&site.vhost.name, &rabbit_only).await,
        None,
        "left alone"
    );
    assert_eq!(account_row(&site, &rabbit_only).await, None);

    // Owners that are not addresses.
    let p = create(&b, &site.name("owners"), PASSWORD, PASSWORD, "alice@example.com, nope").await;
    assert_eq!(p.status, 422);
    assert_eq!(
        p.field_error("owners-new").as_deref(),
        Some("not email addresses: nope")
    );
    assert_eq!(site.head().await, head);
}

#[tokio::test]
async fn the_command_line_follows_the_same_rules() {
    let site = Site::start(Backend::Sqlite, &[("RESERVED_USERS_REGEX", RESERVED)]).await;
    let owner = mailbox::address("cli");
    let dir = tempfile::tempdir().unwrap();
    let env = |password: &str| -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), site.t.db.url.clone()),
            ("RABBIT_VHOSTS".into(), site.vhost.name.clone()),
            ("RESERVED_USERS_REGEX".into(), RESERVED.into()),
            ("SMTP_URL".into(), mailbox::SMTP_URL.into()),
            ("PULSEGUARDIAN_ACCOUNT_PASSWORD".into(), password.into()),
        ]
    };
    let run = |name: &str, password: &str| {
        let env = env(password);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_binary(&["accounts", "create", name, "--owner", &owner], &env, dir.path())
    };

    let taken = site.name("taken");
    let (code, out, err) = run(&taken, PASSWORD);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("account {taken} created")), "{out}");
    assert!(users::exists(&taken).await);
    assert_eq!(
        users::permissions(&site.vhost.name, &taken).await,
        Some(expected_permissions(&taken))
    );
    let created = site.events_of("AccountCreated").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor, "cli");
    let rabbit_only = site.name("rabbitonly");
    users::put(&rabbit_only, "someone else's password").await;

    let head = site.head().await;
    for (what, name, password, confirm, _field, message) in bad_inputs(&site, &taken, &rabbit_only) {
        if password != confirm {
            continue; // the command line asks once
        }
        let (code, out, err) = run(&name, &password);
        assert_ne!(code, 0, "{what} was accepted");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err:?}");
        assert!(err.starts_with("error: "), "{what}: {err:?}");
        assert!(err.contains(&message), "{what}: {err:?} should say {message:?}");
        assert!(out.is_empty(), "{what}: {out:?}");
        assert_eq!(site.head().await, head, "{what}: nothing recorded");
        if !name.is_empty() && name != taken && name != rabbit_only && !name.contains(['*', '/']) {
            assert!(!users::exists(&name).await, "{what}: no RabbitMQ user");
        }
    }
    assert_eq!(users::permissions(&site.vhost.name, &rabbit_only).await, None);
}

// ---------------------------------------------------------------- who may

#[tokio::test]
async fn only_owners_and_admins_manage_an_account() {
    let admin = mailbox::address("admin");
    let auditor = mailbox::address("auditor");
    let site = Site::start(
        Backend::Sqlite,
        &[("ADMIN_EMAILS", admin.as_str()), ("AUDITOR_EMAILS", auditor.as_str())],
    )
    .await;
    let alice = mailbox::address("alice");
    let a = site.person(&alice).await;
    let name = site.name("alices");
    assert_eq!(create(&a, &name, PASSWORD, PASSWORD, &alice).await.status, 303);
    let bob = mailbox::address("bob");
    let b = site.person(&bob).await;
    let aud = site.person(&auditor).await;

    let attempts = [
        (
            format!("/accounts/{name}/password"),
            vec![
                ("password", "bob's own password"),
                ("password_confirm", "bob's own password"),
            ],
        ),
        (format!("/accounts/{name}/owners"), vec![("owners", bob.as_str())]),
        (
            format!("/accounts/{name}/delete"),
            vec![("confirm", name.as_str()), ("delete_queues", "yes")],
        ),
    ];
    let head = site.head().await;
    for (who, browser) in [("bob", &b), ("the auditor", &aud)] {
        for (path, fields) in &attempts {
            let p = browser.post_form(path, fields).await;
            assert_eq!(p.status, 403, "{who}: {path}: {}", p.body);
        }
        let p = browser
            .post_form(
                "/admin/users/roles",
                &[("email", who), ("role", "admin"), ("change", "grant")],
            )
            .await;
        assert_eq!(p.status, 403, "{who} grants roles");
    }
    assert_eq!(site.head().await, head, "nothing changed");
    assert!(users::exists(&name).await);
    assert!(
        amqp::connect(&name, PASSWORD, &site.vhost.name).await.is_ok(),
        "same password"
    );

    // What each sees.
    let listed = |p: &crate::browser::Page| p.body.contains(&format!(r#"id="account-{name}""#));
    let bobs = b.get("/accounts").await;
    assert!(!listed(&bobs), "bob does not see alice's account");
    assert_eq!(b.get("/admin/users").await.status, 403);
    let auditors = aud.get("/accounts").await;
    assert!(listed(&auditors), "the auditor sees every account");
    assert!(
        !auditors.body.contains(&format!("/accounts/{name}/password")),
        "but no forms"
    );
    let people = aud.get("/admin/users").await;
    assert_eq!(people.status, 200);
    assert!(people.body.contains(&alice) && !people.body.contains("/admin/users/roles"));

    // An admin sees and manages every account.
    let ad = site.person(&admin).await;
    let admins = ad.get("/accounts").await;
    assert!(listed(&admins));
    assert!(admins.body.contains(&format!("/accounts/{name}/password")));
    let p = ad
        .post_form(
            &format!("/accounts/{name}/owners"),
            &[("owners", &format!("{alice}\n{bob}"))],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let changed = site.events_of("AccountOwnersChanged").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor, format!("user:{admin}"));
    // ... and now bob owns it too.
    assert!(listed(&b.get("/accounts").await));
    let p = b
        .post_form(
            &format!("/accounts/{name}/password"),
            &[
                ("password", "bob's own password"),
                ("password_confirm", "bob's own password"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn a_rabbitmq_failure_midway_leaves_no_half_made_account() {
    let missing = format!("pgtest-missing-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let vhost = crate::rabbit::TestVhost::new().await;
    let vhosts = format!("{},{missing}", vhost.name);
    let site = Site::start(Backend::Sqlite, &[("RABBIT_VHOSTS", vhosts.as_str())]).await;
    let email = mailbox::address("broken");
    let b = site.person(&email).await;
    let name = site.name("half");

    let p = create(&b, &name, PASSWORD, PASSWORD, &email).await;
    assert_eq!(p.status, 503, "{}", p.body);
    assert!(p.text().contains("RabbitMQ refused the change"), "{}", p.body);
    assert!(
        !users::exists(&name).await,
        "the user made before the failure is removed"
    );
    assert_eq!(users::permissions(&vhost.name, &name).await, None);
    assert_eq!(account_row(&site, &name).await, None);
    assert!(
        !b.get("/accounts")
            .await
            .body
            .contains(&format!(r#"id="account-{name}""#))
    );
    assert_eq!(
        account_kinds(&site, &name).await,
        ["AccountCreationStarted", "AccountCreationFailed"]
    );
    let failed = site.events_of("AccountCreationFailed").await;
    assert_eq!(failed[0].actor, format!("user:{email}"));
    assert!(!failed[0].payload.contains(PASSWORD));

    // Nothing is left for reconciliation either, and the name can be used once it works.
    let done = pulseguardian::app::accounts::reconcile(site.app(), &crate::support::Held, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(done, Default::default());
}

/// The real management API, except that removing a user fails: the one case RabbitMQ
/// cannot be asked to produce for a single test (a clean-up that fails after a creation
/// that failed half-way).
struct UndeletableUsers(pulseguardian::rabbit::ManagementClient);

#[async_trait::async_trait]
impl pulseguardian::rabbit::Broker for UndeletableUsers {
    async fn queue_depths(
        &self,
        vhost: &str,
    ) -> Result<Vec<pulseguardian::rabbit::QueueDepth>, pulseguardian::rabbit::BrokerError> {
        self.0.queue_depths(vhost).await
    }
    async fn queue(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<Option<pulseguardian::rabbit::QueueDepth>, pulseguardian::rabbit::BrokerError> {
        self.0.queue(vhost, queue).await
    }
    async fn consumers(
        &self,
        vhost: &str,
    ) -> Result<Vec<pulseguardian::rabbit::Consumer>, pulseguardian::rabbit::BrokerError> {
        self.0.consumers(vhost).await
    }
    async fn nodes(&self) -> Result<Vec<pulseguardian::rabbit::NodeState>, pulseguardian::rabbit::BrokerError> {
        self.0.nodes().await
    }
    async fn policy_limits(
        &self,
        vhost: &str,
    ) -> Result<Vec<pulseguardian::rabbit::PolicyLimits>, pulseguardian::rabbit::BrokerError> {
        self.0.policy_limits(vhost).await
    }
    async fn queue_bindings(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<Vec<pulseguardian::rabbit::Binding>, pulseguardian::rabbit::BrokerError> {
        self.0.queue_bindings(vhost, queue).await
    }
    async fn delete_queue(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<pulseguardian::rabbit::Deleted, pulseguardian::rabbit::BrokerError> {
        self.0.delete_queue(vhost, queue).await
    }
    async fn user_exists(&self, name: &str) -> Result<bool, pulseguardian::rabbit::BrokerError> {
        self.0.user_exists(name).await
    }
    async fn user_tags(&self, name: &str) -> Result<Option<String>, pulseguardian::rabbit::BrokerError> {
        self.0.user_tags(name).await
    }
    async fn put_user(&self, name: &str, password: &str, tags: &str) -> Result<(), pulseguardian::rabbit::BrokerError> {
        self.0.put_user(name, password, tags).await
    }
    async fn delete_user(
        &self,
        _name: &str,
    ) -> Result<pulseguardian::rabbit::Deleted, pulseguardian::rabbit::BrokerError> {
        Err(pulseguardian::rabbit::BrokerError::Unreachable(
            "cut for this test".into(),
        ))
    }
    async fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        p: &pulseguardian::rabbit::Permissions,
    ) -> Result<(), pulseguardian::rabbit::BrokerError> {
        self.0.set_permissions(vhost, user, p).await
    }
}

#[tokio::test]
async fn a_user_a_failed_creation_could_not_remove_is_removed_by_reconciliation() {
    let missing = format!("pgtest-missing-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let vhost = crate::rabbit::TestVhost::new().await;
    let vhosts = format!("{},{missing}", vhost.name);
    let site = Site::start(Backend::MySql, &[("RABBIT_VHOSTS", vhosts.as_str())]).await;
    let email = mailbox::address("orphan");
    site.person(&email).await;
    let who = pulseguardian::app::principal(site.app(), &email)
        .await
        .unwrap()
        .unwrap();
    let name = site.name("orphan");
    let mut cut = site.app().clone();
    cut.broker = std::sync::Arc::new(UndeletableUsers(pulseguardian::rabbit::ManagementClient::from_config(
        &cut.config,
    )));
    let form = pulseguardian::app::accounts::NewAccountForm {
        name: &name,
        password: PASSWORD,
        confirm: None,
        owners: &email,
    };
    let err = pulseguardian::app::accounts::create(&cut, &who, form)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RabbitMQ refused"), "{err}");
    assert!(users::exists(&name).await, "the user is still in RabbitMQ");
    let failed = site.events_of("AccountCreationFailed").await;
    assert!(
        failed[0].payload.contains("\"user_removed\":false"),
        "{}",
        failed[0].payload
    );
    assert_eq!(
        account_row(&site, &name).await.as_deref(),
        Some("deleting"),
        "the name stays taken meanwhile"
    );

    // Reconciliation, with the real broker, removes it.
    let done = pulseguardian::app::accounts::reconcile(site.app(), &crate::support::Held, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(done.deleted, vec![name.clone()]);
    assert!(!users::exists(&name).await, "nobody's user is left behind");
    assert_eq!(account_row(&site, &name).await, None);
}

fn cli_env<'a>(site: &'a Site, fault: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", site.t.db.url.as_str()),
        ("RABBIT_VHOSTS", site.vhost.name.as_str()),
        ("PULSEGUARDIAN_ACCOUNT_PASSWORD", PASSWORD),
        ("PULSEGUARDIAN_FAULT", fault),
    ]
}

on_both!(a_crash_after_the_rabbitmq_user_is_completed_by_reconciliation);

async fn a_crash_after_the_rabbitmq_user_is_completed_by_reconciliation(backend: Backend) {
    let site = Site::start(backend, &[]).await;
    let owner = mailbox::address("crash");
    let name = site.name("crash");
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run_binary(
        &["accounts", "create", &name, "--owner", &owner],
        &cli_env(&site, "after-rabbit-user"),
        dir.path(),
    );
    assert_ne!(code, 0, "the process died");
    assert!(!out.contains("created"), "{out}");
    assert!(users::exists(&name).await, "it died after making the user");
    assert_eq!(account_row(&site, &name).await.as_deref(), Some("creating"));
    assert_eq!(account_kinds(&site, &name).await, ["AccountCreationStarted"]);

    let done = pulseguardian::app::accounts::reconcile(site.app(), &crate::support::Held, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(done.completed, [name.as_str()]);
    assert!(done.abandoned.is_empty());
    assert_eq!(
        account_kinds(&site, &name).await,
        ["AccountCreationStarted", "AccountCreated"]
    );
    let created = site.events_of("AccountCreated").await;
    assert_eq!(created[0].actor, "cli");
    assert_eq!(payload(&created[0])["owners"], serde_json::json!([owner]));
    assert_eq!(account_row(&site, &name).await.as_deref(), Some("active"));
    assert_eq!(
        users::permissions(&site.vhost.name, &name).await,
        Some(expected_permissions(&name))
    );
    assert!(amqp::connect(&name, PASSWORD, &site.vhost.name).await.is_ok());

    // Once is enough.
    let again = pulseguardian::app::accounts::reconcile(site.app(), &crate::support::Held, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(again, Default::default());
}

#[tokio::test]
async fn a_crash_after_the_intent_is_abandoned_by_reconciliation() {
    let site = Site::start(Backend::MySql, &[]).await;
    let owner = mailbox::address("crash");
    let name = site.name("intent");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, _) = run_binary(
        &["accounts", "create", &name, "--owner", &owner],
        &cli_env(&site, "after-account-intent"),
        dir.path(),
    );
    assert_ne!(code, 0, "the process died");
    assert!(!users::exists(&name).await);
    assert_eq!(account_row(&site, &name).await.as_deref(), Some("creating"));

    // A grace period protects creations still in progress.
    let early =
        pulseguardian::app::accounts::reconcile(site.app(), &crate::support::Held, chrono::Duration::minutes(5))
            .await
            .unwrap();
    assert_eq!(early, Default::default());

    let done = pulseguardian::app::accounts::reconcile(site.app(), &crate::support::Held, chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(done.abandoned, [name.as_str()]);
    assert_eq!(
        account_kinds(&site, &name).await,
        ["AccountCreationStarted", "AccountCreationFailed"]
    );
    assert!(!users::exists(&name).await, "no RabbitMQ user");
    assert_eq!(account_row(&site, &name).await, None);
}
