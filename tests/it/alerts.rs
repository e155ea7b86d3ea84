//! Alarms' extra channels against the real services: webhooks delivered to a local HTTP
//! receiver (signature checked with the secret shown once), retried after a 500 and a
//! redirect, a slow receiver delaying no other; recipients who receive nothing until
//! they confirm and the alarms after; SSRF refusals in the form and the API; on MariaDB
//! and SQLite.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use pulseguardian::app::alerts;
use pulseguardian::domain::event::Event;
use pulseguardian::guardian::webhooks;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::{Browser, Site};
use crate::mailbox;
use crate::on_both;
use crate::support::{Backend, Held, wait_for};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    Redirect,
    /// Never answers.
    Hang,
}

/// A real HTTP receiver on a free port: answers each request with the next answer of
/// its script (200 once the script is done) and keeps what it got.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(host: &str, script: Vec<Answer>) -> Receiver {
        let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let (g, s) = (got.clone(), script.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (g, s) = (g.clone(), s.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut conn).await else {
                        return;
                    };
                    g.lock().unwrap().push(req);
                    let answer = s.lock().unwrap().next().unwrap_or(Answer::Status(200));
                    let reply = match answer {
                        Answer::Status(code) => {
                            format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        }
                        Answer::Redirect => format!(
                            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        ),
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(120)).await;
                            return;
                        }
                    };
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Receiver {
            url: format!("http://{addr}/hook/T0/B0/secret-part"),
            got,
            _task: task,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Got> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Got {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The account `name` owned by a signed-in, verified person; the person's browser.
async fn owner_of(site: &Site, name: &str) -> (Browser, String) {
    let owner = mailbox::address("owner");
    crate::guardian::account(&site.t, name, &[&owner], &[&owner]).await;
    (site.person(&owner).await, owner)
}

fn small<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("WARN_QUEUE_SIZE", "3"), ("DEL_QUEUE_SIZE", "100")];
    env.extend_from_slice(extra);
    env
}

/// The secret shown once on the page after adding a webhook.
fn secret_in(html: &str) -> Option<String> {
    let marker = r#"<code class="token">"#;
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('<')?;
    Some(html[start..start + end].to_owned())
}

fn hmac_hex(secret: &str, body: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

async fn deliver(site: &Site, at: chrono::DateTime<chrono::Utc>) -> webhooks::Delivered {
    webhooks::due(site.app(), &Held, "test", at).await.unwrap()
}

on_both!(a_webhook_gets_each_alarm_signed_and_is_retried_after_a_500_and_a_redirect);

async fn a_webhook_gets_each_alarm_signed_and_is_retried_after_a_500_and_a_redirect(backend: Backend) {
    let admin = mailbox::address("admin");
    let env = small(&[("WEBHOOK_ALLOW_PRIVATE", "true"), ("ADMIN_EMAILS", admin.as_str())]);
    let site = Site::start(backend, &env).await;
    let (b, _) = owner_of(&site, "alice").await;
    let rx = Receiver::start("127.0.0.1", vec![Answer::Status(500), Answer::Redirect]).await;
    let added = b
        .post_form(
            "/accounts/alice/webhooks",
            &[
                ("url", rx.url.as_str()),
                ("events", "QueueWarned"),
                ("events", "QueueRecovered"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let secret = secret_in(&added.body).expect("the secret is shown");
    assert_eq!(secret.len(), 64);
    assert!(!added.body.contains("secret-part"), "the URL's path is never shown");
    let page = b.get("/accounts").await;
    assert!(!page.body.contains(&secret), "the secret is shown once");
    assert!(page.body.contains("http://127.0.0.1:"), "the host is shown");
    let hooked = site.events_of("WebhookAdded").await;
    assert_eq!(hooked.len(), 1);
    assert!(!hooked[0].payload.contains(&secret), "no secret in the event");
    assert!(hooked[0].actor.starts_with("user:owner-"), "{}", hooked[0].actor);

    let q = "queue/alice/jobs";
    site.vhost.fill(q, 4).await;
    site.observe().await;
    let queued = site.events_of("WebhookQueued").await;
    assert_eq!(queued.len(), 1, "one delivery for one webhook");
    let warned = &site.events_of("QueueWarned").await[0];
    assert_eq!(queued[0].causation_id.as_deref(), Some(warned.id.as_str()));

    let t0 = chrono::Utc::now();
    assert_eq!(
        deliver(&site, t0).await,
        webhooks::Delivered {
            delivered: 0,
            failed: 1
        }
    );
    assert_eq!(
        deliver(&site, t0).await,
        webhooks::Delivered::default(),
        "not before its retry is due"
    );
    let t1 = t0 + chrono::Duration::seconds(31);
    assert_eq!(
        deliver(&site, t1).await,
        webhooks::Delivered {
            delivered: 0,
            failed: 1
        }
    );
    let t2 = t1 + chrono::Duration::seconds(61);
    assert_eq!(
        deliver(&site, t2).await,
        webhooks::Delivered {
            delivered: 1,
            failed: 0
        }
    );
    assert_eq!(
        deliver(&site, t2 + chrono::Duration::hours(2)).await,
        webhooks::Delivered::default(),
        "delivered once"
    );

    let got = rx.got();
    assert_eq!(got.len(), 3, "three attempts, the redirect not followed: {got:?}");
    assert!(got.iter().all(|g| g.path == "/hook/T0/B0/secret-part"));
    let failed = site.events_of("WebhookFailed").await;
    let errors: Vec<Event> = failed.iter().map(|e| e.decode().unwrap()).collect();
    let Event::WebhookFailed(first) = &errors[0] else {
        unreachable!()
    };
    assert_eq!((first.attempt, first.status), (1, Some(500)));
    assert!(first.retry_at.is_some());
    let Event::WebhookFailed(second) = &errors[1] else {
        unreachable!()
    };
    assert_eq!(second.status, Some(302));
    assert!(second.error.contains("redirects are not followed"), "{}", second.error);
    assert!(
        failed.iter().all(|e| !e.payload.contains("secret-part")),
        "no URL in the failures"
    );
    let delivered = site.events_of("WebhookDelivered").await;
    let Event::WebhookDelivered(d) = delivered[0].decode().unwrap() else {
        unreachable!()
    };
    assert_eq!((d.attempt, d.status), (3, 200));

    // Each attempt carries the same body, signed with the secret shown once.
    let last = &got[2];
    assert_eq!(got[0].body, last.body);
    assert_eq!(
        last.header("x-pulseguardian-signature"),
        Some(format!("sha256={}", hmac_hex(&secret, &last.body)).as_str())
    );
    assert_eq!(last.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(body["event"], "QueueWarned");
    assert_eq!(body["account"], "alice");
    assert_eq!(body["queue"]["vhost"], site.vhost.name.as_str());
    assert_eq!(body["queue"]["name"], q);
    assert_eq!(body["details"]["depth"]["messages"], 4);
    assert_eq!(body["occurred_at"].as_str().map(str::len), Some(27));
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("Pulse warning: queue \"queue/alice/jobs\" is overgrowing\n"),
        "{text}"
    );
    assert!(text.contains("/queues/"), "a link to the queue: {text}");
    let page = b.get("/accounts").await;
    assert!(page.text().contains("delivered"), "the last delivery is shown");
    let audit = site.person(&admin).await.get("/audit").await;
    assert!(audit.body.contains("WebhookAdded"), "{}", audit.body);
    assert!(!audit.body.contains("secret-part"), "the audit page masks the URL");

    // The other kind picked: the recovery.
    site.vhost.purge(q).await;
    site.observe().await;
    assert_eq!(site.events_of("WebhookQueued").await.len(), 2);
    let now = chrono::Utc::now() + chrono::Duration::hours(3);
    assert_eq!(deliver(&site, now).await.delivered, 1);
    let recovered: serde_json::Value = serde_json::from_str(&rx.got()[3].body).unwrap();
    assert_eq!(recovered["event"], "QueueRecovered");

    // The read models are what a replay of the log rebuilds.
    let live = pulseguardian::projections::snapshot(&site.t.app.db).await.unwrap();
    pulseguardian::startup::replay(site.app(), |_| {}).await.unwrap();
    let replayed = pulseguardian::projections::snapshot(&site.t.app.db).await.unwrap();
    assert_eq!(live, replayed);
    assert!(live.iter().any(|l| l.starts_with("webhooks: ")), "{live:?}");
}

on_both!(a_slow_receiver_delays_no_other_and_is_retried);

async fn a_slow_receiver_delays_no_other_and_is_retried(backend: Backend) {
    let site = Site::start(backend, &small(&[("WEBHOOK_ALLOW_PRIVATE", "true")])).await;
    let (b, _) = owner_of(&site, "alice").await;
    let slow = Receiver::start("127.0.0.1", vec![Answer::Hang]).await;
    // Another host: a name, not the address.
    let fast = Receiver::start("127.0.0.1", vec![]).await;
    let fast_url = fast.url.replace("127.0.0.1", "localhost");
    for url in [slow.url.as_str(), fast_url.as_str()] {
        let p = b.post_form("/accounts/alice/webhooks", &[("url", url)]).await;
        assert_eq!(p.status, 200, "{}", p.body);
    }
    site.vhost.fill("queue/alice/jobs", 4).await;
    site.observe().await;
    assert_eq!(site.events_of("WebhookQueued").await.len(), 2);

    let started = Instant::now();
    let app = site.app().clone();
    let run = tokio::spawn(async move { webhooks::due(&app, &Held, "test", chrono::Utc::now()).await });
    wait_for("the fast receiver's delivery", Duration::from_secs(8), || async {
        (!fast.got().is_empty()).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(8));
    let done = run.await.unwrap().unwrap();
    assert_eq!(
        done,
        webhooks::Delivered {
            delivered: 1,
            failed: 1
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "the slow one had its 10 s"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "and not more");
    let failed = site.events_of("WebhookFailed").await;
    let Event::WebhookFailed(f) = failed[0].decode().unwrap() else {
        unreachable!()
    };
    assert!(f.error.contains("no answer within 10 s"), "{}", f.error);
    assert!(f.retry_at.is_some(), "retried later");
    assert_eq!(slow.got().len(), 1);
}

on_both!(a_recipient_gets_nothing_until_it_confirms_and_the_alarms_after);

async fn a_recipient_gets_nothing_until_it_confirms_and_the_alarms_after(backend: Backend) {
    let site = Site::start(backend, &small(&[])).await;
    let (b, owner) = owner_of(&site, "alice").await;
    let bob = mailbox::address("bob");
    let p = b
        .post_form("/accounts/alice/recipients", &[("email", bob.as_str())])
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let mails = mailbox::wait_for(&bob, 1).await;
    assert_eq!(
        mails[0].subject,
        "PulseGuardian: confirm that you want alerts about alice"
    );
    let link = mails[0]
        .body
        .lines()
        .map(str::trim)
        .find(|l| l.contains("/recipients/confirm/"))
        .expect("a confirmation link")
        .to_owned();
    let added = site.events_of("RecipientAdded").await;
    assert_eq!(added.len(), 1);
    let token = link.rsplit('/').next().unwrap();
    assert!(
        site.events().await.iter().all(|e| !e.payload.contains(token)),
        "the link is in no event"
    );
    assert!(b.get("/accounts").await.text().contains("waiting for confirmation"));

    // Not confirmed: the alarm goes to the owner only.
    let q = "queue/alice/jobs";
    site.vhost.fill(q, 4).await;
    site.observe().await;
    assert_eq!(site.send_queued_emails().await, 1);
    let warned = mailbox::wait_for(&owner, 2).await;
    assert!(warned[1].subject.contains("is overgrowing"));
    assert_eq!(warned[1].rcpt, vec![owner.clone()]);
    assert_eq!(mailbox::to(&bob).len(), 1, "nothing but the confirmation");

    // Opening the link changes nothing; its button confirms; twice is harmless.
    let path = url::Url::parse(&link).unwrap().path().to_owned();
    let stranger = site.browser();
    let opened = stranger.get(&path).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(opened.text().contains(&bob) && opened.text().contains("alice"));
    assert!(
        site.events_of("RecipientConfirmed").await.is_empty(),
        "a GET confirms nothing"
    );
    let confirmed = stranger.post_form(&path, &[]).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let again = stranger.post_form(&path, &[]).await;
    assert_eq!(again.status, 200);
    let c = site.events_of("RecipientConfirmed").await;
    assert_eq!(c.len(), 1, "confirmed once");
    assert_eq!(c[0].actor, format!("user:{bob}"));
    let forged = stranger
        .get(&format!("{}0", path.trim_end_matches(|c: char| c.is_ascii_hexdigit())))
        .await;
    assert_eq!(forged.status, 400, "an altered link is not valid");

    // Confirmed: the next alarm reaches the recipient too.
    site.vhost.purge(q).await;
    site.observe().await;
    assert_eq!(site.send_queued_emails().await, 1);
    let back = mailbox::wait_for(&bob, 2).await;
    assert_eq!(
        back[1].subject,
        "Pulse warning: queue \"queue/alice/jobs\" is back to normal"
    );
    assert!(back[1].rcpt.contains(&owner) && back[1].rcpt.contains(&bob));

    // Removed: the link confirms nothing any more, and no alarm goes there.
    let id = match added[0].decode().unwrap() {
        Event::RecipientAdded(r) => r.recipient_id,
        _ => unreachable!(),
    };
    let removed = b
        .post_form(&format!("/accounts/alice/recipients/{id}/remove"), &[])
        .await;
    assert_eq!(removed.status, 303);
    let channels = alerts::channels(site.app()).await.unwrap();
    assert!(channels.recipients("alice").is_empty());
    assert_eq!(site.browser().get(&path).await.status, 400);
}

on_both!(webhook_urls_that_lead_inside_are_refused_in_the_form_and_the_api);

async fn webhook_urls_that_lead_inside_are_refused_in_the_form_and_the_api(backend: Backend) {
    let site = Site::start(backend, &small(&[])).await;
    let (b, _) = owner_of(&site, "alice").await;
    for (url, why) in [
        ("http://hooks.example.com/x", "https://"),
        ("file:///etc/passwd", "https://"),
        ("https://127.0.0.1/x", "loopback address (127.0.0.1)"),
        ("https://10.1.2.3/x", "private address (10.1.2.3)"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[::1]/x", "loopback"),
        ("https://localhost/x", "localhost leads to a loopback address"),
    ] {
        let p = b.post_form("/accounts/alice/webhooks", &[("url", url)]).await;
        assert_eq!(p.status, 422, "{url}: {}", p.body);
        let err = p
            .field_error("f-url")
            .unwrap_or_else(|| panic!("{url}: no field error"));
        assert!(err.contains(why), "{url}: {err}");
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(2100));
    let p = b.post_form("/accounts/alice/webhooks", &[("url", long.as_str())]).await;
    assert!(p.field_error("f-url").unwrap().contains("2048"));
    assert!(site.events_of("WebhookAdded").await.is_empty());

    let token = b.create_token("hooks").await;
    let api = |body: serde_json::Value| {
        let http = reqwest::Client::new();
        let url = format!("{}/api/v1/accounts/alice/webhooks", site.url);
        let token = token.clone();
        async move {
            let r = http.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, json) = api(serde_json::json!({"url": "https://10.0.0.1/hook"})).await;
    assert_eq!(status, 422);
    assert!(json["error"].as_str().unwrap().starts_with("url: "), "{json}");
    assert!(json["error"].as_str().unwrap().contains("private address"), "{json}");
    let (status, json) = api(serde_json::json!({"url": "http://127.0.0.1:9/hook"})).await;
    assert_eq!(status, 422, "{json}");
    let (status, json) = api(serde_json::json!({"url": "https://hooks.example.com/x", "events": ["EmailSent"]})).await;
    assert_eq!(status, 422);
    assert!(json["error"].as_str().unwrap().starts_with("events: "), "{json}");
    assert!(site.events_of("WebhookAdded").await.is_empty());

    // Somebody else's account: refused.
    let other = site.person(&mailbox::address("mallory")).await;
    let p = other
        .post_form("/accounts/alice/webhooks", &[("url", "https://hooks.example.com/x")])
        .await;
    assert_eq!(p.status, 403);
}

on_both!(a_delivery_checks_its_address_again);

async fn a_delivery_checks_its_address_again(backend: Backend) {
    // Added while private addresses were allowed; delivered by a process that refuses
    // them (as a name that now resolves inside would be).
    let site = Site::start(backend, &small(&[("WEBHOOK_ALLOW_PRIVATE", "true")])).await;
    let (b, _) = owner_of(&site, "alice").await;
    let rx = Receiver::start("127.0.0.1", vec![]).await;
    let https = rx.url.replace("http://", "https://");
    let p = b
        .post_form("/accounts/alice/webhooks", &[("url", https.as_str())])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    site.vhost.fill("queue/alice/jobs", 4).await;
    site.observe().await;
    let mut strict = site.app().clone();
    strict.config = Arc::new(pulseguardian::Config {
        webhook_allow_private: false,
        ..(*strict.config).clone()
    });
    let done = webhooks::due(&strict, &Held, "test", chrono::Utc::now()).await.unwrap();
    assert_eq!(
        done,
        webhooks::Delivered {
            delivered: 0,
            failed: 1
        }
    );
    assert!(rx.got().is_empty(), "nothing was sent");
    let failed = site.events_of("WebhookFailed").await;
    let Event::WebhookFailed(f) = failed[0].decode().unwrap() else {
        unreachable!()
    };
    assert!(
        f.error.starts_with("refused: ") && f.error.contains("loopback"),
        "{}",
        f.error
    );
}

on_both!(the_guardian_interface_addresses_only_confirmed_recipients_and_subscribed_webhooks);

async fn the_guardian_interface_addresses_only_confirmed_recipients_and_subscribed_webhooks(backend: Backend) {
    let site = Site::start(backend, &small(&[("WEBHOOK_ALLOW_PRIVATE", "true")])).await;
    let (b, _) = owner_of(&site, "alice").await;
    let p = b
        .post_form(
            "/accounts/alice/webhooks",
            &[("url", "http://127.0.0.1:9/a"), ("events", "QueueDeleted")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let p = b
        .post_form(
            "/accounts/alice/recipients",
            &[("email", mailbox::address("pat").as_str())],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let ctx = site.app();
    let channels = alerts::channels(ctx).await.unwrap();
    assert!(
        channels.recipients("alice").is_empty(),
        "pending recipients are not addressed"
    );
    assert!(channels.wants("alice", "QueueDeleted"));
    assert!(!channels.wants("alice", "QueueWarned"));
    assert!(!channels.wants("bob", "QueueDeleted"));

    let queue = pulseguardian::domain::QueueRef::new("/", "queue/alice/jobs");
    let depth = pulseguardian::domain::Depth::of(9, 0);
    let event = Event::QueueDeleted(pulseguardian::domain::event::QueueDeleted {
        vhost: queue.vhost.clone(),
        name: queue.name.clone(),
        owner: Some("alice".into()),
        depth,
        del_size: 8,
        dry_run: false,
        reason: Default::default(),
    });
    let notice = pulseguardian::domain::notice::Notice {
        to: vec![],
        about: pulseguardian::domain::notice::About::QueueDeleted {
            queue: queue.clone(),
            depth,
            del_size: 8,
            archived: 0,
            reason: Default::default(),
        },
    };
    let cause = uuid::Uuid::now_v7();
    let at = chrono::Utc::now();
    let out = channels.webhooks(ctx, "alice", &event, &notice, cause, at);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].causation_id, Some(cause));
    assert_eq!(out[0].stream, format!("webhook/{}", out[0].id));
    let Event::WebhookQueued(q) = &out[0].event else {
        panic!("{:?}", out[0].event)
    };
    assert_eq!(q.alarm, "QueueDeleted");
    let body: serde_json::Value = serde_json::from_str(&q.body).unwrap();
    assert_eq!(
        body["text"],
        format!(
            "Pulse warning: queue \"queue/alice/jobs\" has been deleted\n{}/queues/%2F/queue%2Falice%2Fjobs",
            site.url
        )
    );
    assert_eq!(body["details"]["del_size"], 8);
    assert_eq!(body["occurred_at"], pulseguardian::db::timestamp(at));
    assert!(channels.webhooks(ctx, "bob", &event, &notice, cause, at).is_empty());

    // A deleted account's channels go with it: a new account of that name has none.
    let deleted = Event::AccountDeleted(pulseguardian::domain::event::AccountDeleted { name: "alice".into() });
    let by = pulseguardian::domain::Actor::Cli;
    ctx.record(vec![pulseguardian::events::NewEvent::new(
        "account/alice",
        deleted,
        &by,
    )])
    .await
    .unwrap();
    let after = alerts::channels(ctx).await.unwrap();
    assert!(!after.wants("alice", "QueueDeleted"));
    assert!(
        alerts::visible(ctx, &pulseguardian::auth::Principal::cli())
            .await
            .unwrap()
            .is_empty()
    );
    let live = pulseguardian::projections::snapshot(&ctx.db).await.unwrap();
    pulseguardian::startup::replay(ctx, |_| {}).await.unwrap();
    assert_eq!(live, pulseguardian::projections::snapshot(&ctx.db).await.unwrap());
}

on_both!(a_webhook_gets_the_alarms_of_an_account_with_nobody_to_email);

async fn a_webhook_gets_the_alarms_of_an_account_with_nobody_to_email(backend: Backend) {
    let admin = mailbox::address("admin");
    let env = small(&[("WEBHOOK_ALLOW_PRIVATE", "true"), ("ADMIN_EMAILS", admin.as_str())]);
    let site = Site::start(backend, &env).await;
    // Bob's only owner never verified an address: no one to email.
    let bob = mailbox::address("bob");
    crate::guardian::account(&site.t, "bob", &[&bob], &[]).await;
    let b = site.person(&admin).await;
    let rx = Receiver::start("127.0.0.1", vec![]).await;
    let added = b
        .post_form(
            "/accounts/bob/webhooks",
            &[("url", rx.url.as_str()), ("events", "QueueWarned")],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);

    site.vhost.fill("queue/bob/jobs", 4).await;
    site.observe().await;
    let warned = site.events_of("QueueWarned").await;
    assert_eq!(warned.len(), 1);
    assert_eq!(
        site.events_of("WebhookQueued").await.len(),
        1,
        "the webhook hears of it"
    );
    assert!(site.events_of("EmailQueued").await.is_empty(), "and nobody is emailed");
    assert_eq!(deliver(&site, chrono::Utc::now()).await.delivered, 1);
    let body: serde_json::Value = serde_json::from_str(&rx.got()[0].body).unwrap();
    assert_eq!(body["event"], "QueueWarned");
    assert_eq!(body["account"], "bob");
}
