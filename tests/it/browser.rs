//! A person in front of a real server: a cookie-keeping client that reads CSRF tokens
//! from the pages it gets, fills in forms, and signs in with the link the real SMTP sink
//! received. And [`Site`]: an app on a fresh database and a vhost of its own, served on
//! a free port that is also its `PUBLIC_URL`.

use std::sync::Mutex;

use poem::listener::{Acceptor, Listener, TcpListener};
use pulseguardian::Context;
use pulseguardian::events::StoredEvent;
use pulseguardian::events::store;
use sea_orm::ConnectionTrait;

use crate::mailbox::{self, SMTP_URL};
use crate::rabbit::{TestVhost, users};
use crate::support::{Backend, Server, TestApp, http};

/// A served app with a vhost of its own. RabbitMQ users made through [`Site::name`] are
/// deleted when it is dropped.
pub struct Site {
    pub t: TestApp,
    pub vhost: TestVhost,
    _server: Server,
    /// Where the server really listens (`http://127.0.0.1:<port>`).
    pub url: String,
    uid: String,
    names: Mutex<Vec<String>>,
}

impl Site {
    /// `PUBLIC_URL` is the server's own address, `SMTP_URL` the sink, `RABBIT_VHOSTS`
    /// the test vhost; `extra` adds to or overrides these.
    pub async fn start(backend: Backend, extra: &[(&str, &str)]) -> Site {
        Self::start_in(backend, TestVhost::new().await, extra).await
    }

    /// The same, guarding `vhost`.
    pub async fn start_in(backend: Backend, vhost: TestVhost, extra: &[(&str, &str)]) -> Site {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind a free port");
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .expect("a socket address");
        let url = format!("http://{addr}");
        let mut env: Vec<(&str, &str)> = vec![
            ("PUBLIC_URL", url.as_str()),
            ("SMTP_URL", SMTP_URL),
            ("RABBIT_VHOSTS", vhost.name.as_str()),
        ];
        env.extend_from_slice(extra);
        let t = TestApp::with(backend, &env).await;
        let server = Server::start_on(&t, acceptor).await;
        Site {
            t,
            vhost,
            _server: server,
            url,
            uid: uuid::Uuid::new_v4().simple().to_string()[..10].to_owned(),
            names: Mutex::new(Vec::new()),
        }
    }

    pub fn app(&self) -> &Context {
        &self.t.app
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.url)
    }

    /// A person of this site, signed in by email link.
    pub async fn person(&self, email: &str) -> Browser {
        let b = self.browser();
        b.sign_in(email).await;
        b
    }

    /// A unique account name (also a RabbitMQ user name) starting with `prefix`,
    /// deleted from RabbitMQ at the end of the test.
    pub fn name(&self, prefix: &str) -> String {
        let n = format!("{prefix}{}", self.uid);
        self.forget_user_later(&n);
        n
    }

    /// Deletes the RabbitMQ user `name` at the end of the test.
    pub fn forget_user_later(&self, name: &str) {
        self.names.lock().unwrap().push(name.to_owned());
    }

    pub async fn events(&self) -> Vec<StoredEvent> {
        store::read_after(&self.t.app.db, 0, 100_000).await.unwrap()
    }

    pub async fn events_of(&self, kind: &str) -> Vec<StoredEvent> {
        self.events().await.into_iter().filter(|e| e.kind == kind).collect()
    }

    /// The position of the last event: unchanged means nothing was recorded.
    pub async fn head(&self) -> i64 {
        store::head_seq(&self.t.app.db).await.unwrap()
    }

    /// Runs one SQL statement with `?` placeholders on the site's database.
    pub async fn sql(&self, sql: &str, values: Vec<sea_orm::Value>) -> u64 {
        let db = &self.t.app.db;
        db.execute_raw(pulseguardian::db::stmt(db.get_database_backend(), sql, values))
            .await
            .unwrap()
            .rows_affected()
    }

    pub async fn count(&self, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
        pulseguardian::db::query_i64(&self.t.app.db, sql, values).await.unwrap()
    }

    /// Sends the emails the outbox holds (the server's scheduled job, by hand).
    pub async fn send_queued_emails(&self) -> usize {
        pulseguardian::guardian::dispatch::due(&self.t.app, &crate::support::Held, "test", chrono::Utc::now())
            .await
            .unwrap()
            .sent
    }

    /// One guardian cycle: the dashboards and the account pages see the queues now.
    pub async fn observe(&self) {
        let g = pulseguardian::guardian::Guardian::new(self.t.app.clone());
        let outcome = g.cycle().await.unwrap();
        assert!(
            matches!(outcome, pulseguardian::guardian::Outcome::Guarded(_)),
            "{outcome:?}"
        );
        g.release().await;
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        users::delete_now(&self.names.lock().unwrap());
    }
}

/// One answer, read whole.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The text of the error shown under the form field `field` (`<p class="field-error"
    /// id="<id>-error">`); `id` is `f-<field>` for plain fields.
    pub fn field_error(&self, id: &str) -> Option<String> {
        let marker = format!(r#"id="{id}-error">"#);
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find("</p>")?;
        Some(unescape(&self.body[start..start + end]))
    }

    /// Every field error on the page.
    pub fn field_errors(&self) -> Vec<String> {
        self.body
            .split(r#"class="field-error""#)
            .skip(1)
            .filter_map(|rest| {
                let start = rest.find('>')? + 1;
                let end = rest.find("</p>")?;
                Some(unescape(&rest[start..end]))
            })
            .collect()
    }

    pub fn text(&self) -> String {
        unescape(&self.body)
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the first `name="csrf" value="..."` on a page.
pub fn scrape_csrf(html: &str) -> Option<String> {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// A browser: keeps cookies, follows no redirects, remembers the CSRF token of the
/// last page that had a form.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    csrf: Mutex<Option<String>>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.trim_end_matches('/').to_owned(),
            http: http(),
            csrf: Mutex::new(None),
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn read(&self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let body = r.text().await.unwrap();
        if let Some(t) = scrape_csrf(&body) {
            *self.csrf.lock().unwrap() = Some(t);
        }
        Page { status, location, body }
    }

    pub async fn get(&self, path: &str) -> Page {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        self.read(r).await
    }

    /// The CSRF token of the last page seen with a form; fetches one (`/me` when signed
    /// in, else `/signin`) if none was seen yet.
    pub async fn csrf(&self) -> String {
        if let Some(t) = self.csrf.lock().unwrap().clone() {
            return t;
        }
        let me = self.get("/me").await;
        if me.status != 200 {
            self.get("/signin").await;
        }
        self.csrf.lock().unwrap().clone().expect("a page with a CSRF token")
    }

    /// Forgets the token (the session changed: signed in or out).
    pub fn forget_csrf(&self) {
        *self.csrf.lock().unwrap() = None;
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf().await;
        let mut all = fields.to_vec();
        all.push(("csrf", token.as_str()));
        self.post_raw(path, &all).await
    }

    /// Posts a form exactly as given (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let r = self.http.post(self.url(path)).form(fields).send().await.unwrap();
        self.read(r).await
    }

    /// Asks for a sign-in link for `email`, reads it from the SMTP sink and follows it.
    pub async fn sign_in(&self, email: &str) {
        let before = mailbox::to(email).len();
        let p = self.post_form("/auth/email", &[("email", email)]).await;
        assert_eq!(p.status, 200, "POST /auth/email for {email}: {}", p.body);
        let link = sign_in_link(email, before + 1).await;
        let p = self.follow_link(&link).await;
        assert_eq!(p.status, 303, "following the sign-in link: {}", p.body);
        self.forget_csrf();
    }

    /// Follows a sign-in link as a person does: opens it (a page that asks to confirm and
    /// changes nothing), then presses its button. A link that is not valid gives its
    /// error page at the first step.
    pub async fn follow_link(&self, link: &str) -> Page {
        // The link's path on this server (a site's PUBLIC_URL may name another port).
        let link = match url::Url::parse(link) {
            Ok(u) => u.path().to_owned(),
            Err(_) => link.to_owned(),
        };
        let link = link.as_str();
        let confirm = self.get(link).await;
        if confirm.status != 200 {
            return confirm;
        }
        assert!(confirm.text().contains("You are signing in as"), "{}", confirm.body);
        self.post_form(link, &[]).await
    }

    /// The session's API tokens page: creates a token labelled `label`, returns it.
    pub async fn create_token(&self, label: &str) -> String {
        let p = self.post_form("/me/tokens", &[("label", label)]).await;
        assert_eq!(p.status, 200, "POST /me/tokens: {}", p.body);
        token_in(&p.body).expect("the new token is shown")
    }
}

/// The `n`-th email to `email` (1-based, waiting for it), which must be a sign-in link;
/// the link in it.
pub async fn sign_in_link(email: &str, n: usize) -> String {
    let mails = mailbox::wait_for(email, n).await;
    let mail = &mails[n - 1];
    assert_eq!(mail.subject, "PulseGuardian sign-in link");
    link_in(&mail.body).unwrap_or_else(|| panic!("no sign-in link in {:?}", mail.body))
}

pub fn link_in(body: &str) -> Option<String> {
    body.lines()
        .map(str::trim)
        .find(|l| l.starts_with("http") && l.contains("/auth/email/"))
        .map(str::to_owned)
}

/// The API token shown on a page (`pgt_...`).
pub fn token_in(html: &str) -> Option<String> {
    let start = html.find("pgt_")?;
    let end = html[start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map(|e| start + e)
        .unwrap_or(html.len());
    Some(html[start..end].to_owned())
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
