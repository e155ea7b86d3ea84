//! The JSON API with real tokens made on the person's page: bearer tokens only, the
//! owner's rights, JSON errors.

use pulseguardian::domain::encode_segment;

use crate::browser::{Browser, Site};
use crate::mailbox;
use crate::support::Backend;

const PASSWORD: &str = "correct horse battery";

struct Answer {
    status: u16,
    json: serde_json::Value,
}

async fn call(site: &Site, method: reqwest::Method, path: &str, token: Option<&str>) -> Answer {
    // A client without cookies: the API must not need any.
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", site.url));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = r.text().await.unwrap();
    let json = if status == 204 {
        serde_json::Value::Null
    } else {
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}: {body}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    };
    Answer { status, json }
}

async fn get(site: &Site, path: &str, token: Option<&str>) -> Answer {
    call(site, reqwest::Method::GET, path, token).await
}

fn error_of(a: &Answer) -> &str {
    a.json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an error message: {}", a.json))
}

fn names(a: &Answer) -> Vec<String> {
    a.json
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", a.json))
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_owned())
        .collect()
}

fn queue_path(vhost: &str, name: &str) -> String {
    format!("/api/v1/queues/{}/{}", encode_segment(vhost), encode_segment(name))
}

pub async fn create_account(b: &Browser, name: &str, owner: &str) {
    let p = b
        .post_form(
            "/accounts",
            &[
                ("name", name),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("owners", owner),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
}

#[tokio::test]
async fn tokens_are_shown_once_checked_and_revocable() {
    let admin = mailbox::address("apiadmin");
    let site = Site::start(Backend::Sqlite, &[("ADMIN_EMAILS", admin.as_str())]).await;
    let b = site.person(&admin).await;
    let made = b.post_form("/me/tokens", &[("label", "ci")]).await;
    assert_eq!(made.status, 200);
    let token = crate::browser::token_in(&made.body).expect("the token is on the page");
    assert!(token.starts_with("pgt_") && token.len() > 40, "{token}");
    let me = b.get("/me").await;
    assert!(me.body.contains("ci"), "the token is listed by its label");
    assert!(!me.body.contains(&token), "and shown only once");
    let created = site.events_of("ApiTokenCreated").await;
    assert_eq!(created.len(), 1);
    assert!(!created[0].payload.contains(&token), "only its hash is kept");
    let empty = b.post_form("/me/tokens", &[("label", "  ")]).await;
    assert_eq!(empty.status, 422);

    site.vhost.declare("queue/somebody/jobs").await;
    site.observe().await;
    let listed = get(&site, "/api/v1/queues", Some(&token)).await;
    assert_eq!(listed.status, 200, "{}", listed.json);
    assert_eq!(names(&listed), ["queue/somebody/jobs"], "an admin sees every queue");
    let q = &listed.json[0];
    assert_eq!(q["vhost"], site.vhost.name.as_str());
    assert_eq!(q["owner"], "somebody");
    for field in [
        "messages",
        "ready",
        "unacked",
        "consumers",
        "state",
        "warn_size",
        "del_size",
    ] {
        assert!(q.get(field).is_some(), "{field} in {q}");
    }

    // Wrong, missing and malformed tokens.
    let wrong = format!("pgt_{}", pulseguardian::auth::random_token());
    for t in [
        Some(wrong.as_str()),
        None,
        Some("not-a-token"),
        Some(&token[..token.len() - 1]),
    ] {
        let a = get(&site, "/api/v1/queues", t).await;
        assert_eq!(a.status, 401, "{t:?}");
        assert!(error_of(&a).contains("token"), "{}", a.json);
    }
    // A session cookie is no token.
    let r = b.http.get(b.url("/api/v1/queues")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // The event log: admins and auditors, with its paging checked.
    let events = get(&site, "/api/v1/events?after=0&limit=2", Some(&token)).await;
    assert_eq!(events.status, 200);
    let list = events.json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["seq"], 1);
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
        assert!(list[0].get(field).is_some(), "{field} in {}", list[0]);
    }
    let next = get(&site, "/api/v1/events?after=1&limit=1", Some(&token)).await;
    assert_eq!(next.json[0]["seq"], 2);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=-1",
        "after=x",
        "after=1&after=2",
    ] {
        let a = get(&site, &format!("/api/v1/events?{bad}"), Some(&token)).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.json);
        assert!(!error_of(&a).is_empty());
    }
    let unknown = get(&site, "/api/v1/nothing-here", Some(&token)).await;
    assert_eq!(unknown.status, 404, "an unknown API route answers JSON too");
    assert_eq!(error_of(&unknown), "no such API route");

    // Revoked: refused from then on.
    let token_id = serde_json::from_str::<serde_json::Value>(&created[0].payload).unwrap()["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = b.post_form(&format!("/me/tokens/{token_id}/revoke"), &[]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let a = get(&site, "/api/v1/queues", Some(&token)).await;
    assert_eq!(a.status, 401);
    assert!(!error_of(&a).is_empty());
    // Revoking twice: not found.
    let p = b.post_form(&format!("/me/tokens/{token_id}/revoke"), &[]).await;
    assert_eq!(p.status, 404);
    assert_eq!(site.events_of("ApiTokenRevoked").await.len(), 1);
}

#[tokio::test]
async fn a_token_acts_with_its_owners_rights() {
    let auditor = mailbox::address("apiauditor");
    let site = Site::start(Backend::Sqlite, &[("AUDITOR_EMAILS", auditor.as_str())]).await;
    let alice = mailbox::address("alice");
    let a = site.person(&alice).await;
    let name = site.name("owned");
    create_account(&a, &name, &alice).await;
    let bob = mailbox::address("bob");
    let b = site.person(&bob).await;
    let aud = site.person(&auditor).await;
    let (alice_t, bob_t, auditor_t) = (
        a.create_token("alice").await,
        b.create_token("bob").await,
        aud.create_token("auditor").await,
    );

    let vhost = site.vhost.name.clone();
    let queue = format!("queue/{name}/jobs");
    site.vhost.declare(&queue).await;
    site.vhost.declare("queue/nobody/else").await;
    site.observe().await;

    assert_eq!(
        names(&get(&site, "/api/v1/queues", Some(&alice_t)).await),
        [queue.as_str()]
    );
    assert!(names(&get(&site, "/api/v1/queues", Some(&bob_t)).await).is_empty());
    let all = names(&get(&site, "/api/v1/queues", Some(&auditor_t)).await);
    assert_eq!(all, ["queue/nobody/else".to_owned(), queue.clone()]);

    // Bob cannot delete alice's queue, nor learn that it exists.
    let head = site.head().await;
    let path = queue_path(&vhost, &queue);
    let refused = call(&site, reqwest::Method::DELETE, &path, Some(&bob_t)).await;
    assert!([403, 404].contains(&refused.status), "{}", refused.status);
    let missing = call(
        &site,
        reqwest::Method::DELETE,
        &queue_path(&vhost, &format!("queue/{name}/nothing-here")),
        Some(&bob_t),
    )
    .await;
    assert_eq!(
        (refused.status, refused.json.clone()),
        (missing.status, missing.json.clone()),
        "the same answer as for a queue that does not exist"
    );
    assert!(site.vhost.exists(&queue).await);
    // The auditor reads but does not delete.
    let refused = call(&site, reqwest::Method::DELETE, &path, Some(&auditor_t)).await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    assert!(!error_of(&refused).is_empty());
    assert!(site.vhost.exists(&queue).await);
    assert_eq!(site.head().await, head, "nothing recorded");

    // The event log is for admins and auditors only.
    let ev = get(&site, "/api/v1/events", Some(&auditor_t)).await;
    assert_eq!(ev.status, 200);
    assert!(!ev.json.as_array().unwrap().is_empty());
    for t in [&alice_t, &bob_t] {
        let ev = get(&site, "/api/v1/events", Some(t)).await;
        assert_eq!(ev.status, 403);
        assert!(!error_of(&ev).is_empty());
    }
    // The same for the pages.
    assert_eq!(aud.get("/admin/users").await.status, 200);
    assert_eq!(a.get("/admin/users").await.status, 403);

    // Alice deletes her own queue.
    let done = call(&site, reqwest::Method::DELETE, &path, Some(&alice_t)).await;
    assert_eq!(done.status, 204);
    assert!(!site.vhost.exists(&queue).await);
    let deleted = site.events_of("QueueDeletedByUser").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].actor, format!("user:{alice}"));
    let again = call(&site, reqwest::Method::DELETE, &path, Some(&alice_t)).await;
    assert_eq!(again.status, 404);
    assert!(site.vhost.exists("queue/nobody/else").await);
}
