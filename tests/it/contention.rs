//! Everything at once on MariaDB, from two processes: two dozen people following their
//! sign-in links at the same moment, tokens made, accounts created and changed from the
//! web and from the command line, three guardians cycling and projectors stepping
//! meanwhile. No request fails, nothing is left half made, and the read models are what
//! a replay of the log builds.

use futures::future::join_all;
use pulseguardian::domain::EmailAddress;
use pulseguardian::guardian::Guardian;

use crate::browser::Site;
use crate::mailbox;
use crate::support::{Backend, command};

const PASSWORD: &str = "a long enough password";

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn everything_at_once_from_two_processes_fails_nothing_and_equals_a_replay() {
    let site = Site::start(Backend::MySql, &[("WARN_QUEUE_SIZE", "3"), ("DEL_QUEUE_SIZE", "6")]).await;
    let db = site.app().db.clone();

    // People whose links are waiting, and people already signed in.
    let mut waiting = Vec::new();
    for i in 0..24 {
        let email = EmailAddress::parse(&mailbox::address(&format!("rush{i}"))).unwrap();
        let token = pulseguardian::auth::email_link::issue(&db, &email, None).await.unwrap();
        waiting.push((site.browser(), format!("/auth/email/{token}")));
    }
    let mut signed_in = Vec::new();
    for i in 0..6 {
        let email = mailbox::address(&format!("busy{i}"));
        signed_in.push((site.person(&email).await, email));
    }
    for (b, _) in &signed_in {
        b.get("/accounts").await;
    }
    site.vhost.fill("queue/nobody/overflowing", 8).await;

    // The other process: the command line, creating accounts and granting roles.
    let env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), site.t.db.url.clone()),
        ("RABBIT_VHOSTS".into(), site.vhost.name.clone()),
        ("PULSEGUARDIAN_ACCOUNT_PASSWORD".into(), PASSWORD.into()),
        ("SMTP_URL".into(), mailbox::SMTP_URL.into()),
    ];
    let cli_names: Vec<String> = (0..3).map(|i| site.name(&format!("cli{i}x"))).collect();
    let mut cli = Vec::new();
    let mut cli_args = Vec::new();
    for (i, name) in cli_names.iter().enumerate() {
        let owner = mailbox::address(&format!("cliowner{i}"));
        for args in [
            vec![
                "accounts".to_owned(),
                "create".into(),
                name.clone(),
                "--owner".into(),
                owner.clone(),
            ],
            vec![
                "admin".to_owned(),
                "grant".into(),
                mailbox::address("cliadmin"),
                "--role".into(),
                "auditor".into(),
            ],
        ] {
            cli_args.push(args.clone());
            cli.push(
                tokio::process::Command::from(command())
                    .args(&args)
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .current_dir(std::env::temp_dir())
                    .output(),
            );
        }
    }

    let sign_ins = join_all(waiting.iter().map(|(b, link)| b.follow_link(link)));
    let tokens = join_all(signed_in.iter().flat_map(|(b, _)| {
        (0..2).map(move |i| async move {
            let label = format!("t{i}");
            b.post_form("/me/tokens", &[("label", label.as_str())]).await
        })
    }));
    let web_names: Vec<String> = (0..6).map(|i| site.name(&format!("web{i}x"))).collect();
    let accounts = join_all(signed_in.iter().zip(&web_names).map(|((b, email), name)| async move {
        let created = b
            .post_form(
                "/accounts",
                &[
                    ("name", name.as_str()),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                    ("owners", email.as_str()),
                ],
            )
            .await;
        let changed = b
            .post_form(
                &format!("/accounts/{name}/owners"),
                &[("owners", &format!("{email}\nco-{email}"))],
            )
            .await;
        (created, changed)
    }));
    let guardians: Vec<Guardian> = join_all((0..3).map(|_| async { Guardian::new(site.t.restart().await) })).await;
    let cycles = join_all(guardians.iter().map(|g| async move {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(g.cycle().await.map(|_| ()).map_err(|e| e.to_string()));
        }
        out
    }));
    let projectors = join_all((0..4).map(|_| {
        let db = db.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..10 {
                out.push(
                    pulseguardian::projections::catch_up(&db)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                );
            }
            out
        }
    }));
    let (sign_ins, tokens, accounts, cycles, projectors, cli) =
        tokio::join!(sign_ins, tokens, accounts, cycles, projectors, join_all(cli));

    for p in &sign_ins {
        assert_eq!(p.status, 303, "a sign-in failed: {}", p.body);
    }
    for p in &tokens {
        assert_eq!(p.status, 200, "a token creation failed: {}", p.body);
    }
    for (created, changed) in &accounts {
        assert_eq!(created.status, 303, "an account creation failed: {}", created.body);
        assert_eq!(changed.status, 303, "an owner change failed: {}", changed.body);
    }
    for r in cycles.iter().flatten().chain(projectors.iter().flatten()) {
        assert!(r.is_ok(), "{r:?}");
    }
    for (out, args) in cli.into_iter().zip(&cli_args) {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "`pulseguardian {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for g in &guardians {
        g.release().await;
    }

    // Nothing half made: every account is active and has its RabbitMQ user.
    pulseguardian::projections::catch_up(&db).await.unwrap();
    let unsettled = pulseguardian::db::query_i64(&db, "SELECT COUNT(*) FROM accounts WHERE status <> 'active'", [])
        .await
        .unwrap();
    assert_eq!(unsettled, 0);
    for name in web_names.iter().chain(&cli_names) {
        assert!(crate::rabbit::users::exists(name).await, "{name} has its RabbitMQ user");
    }
    assert!(pulseguardian::projections::failures(&db).await.unwrap().is_empty());

    // The read models are what a replay builds.
    let live = pulseguardian::projections::snapshot(&db).await.unwrap();
    pulseguardian::startup::replay(site.app(), |_| {}).await.unwrap();
    let replayed = pulseguardian::projections::snapshot(&db).await.unwrap();
    assert_eq!(live, replayed);
}
