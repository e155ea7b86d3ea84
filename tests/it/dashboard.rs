//! The dashboard's pages and partials over real HTTP: status, key content, escaping of
//! hostile queue names, ETags, the expired-session prompt, and who may see what.

use pulseguardian::domain::encode_segment;
use pulseguardian::domain::event::{AccountCreated, Event};
use pulseguardian::domain::roles::Role;
use pulseguardian::events::store::NewEvent;

use crate::browser::{Browser, Site};
use crate::mailbox;
use crate::support::Backend;

/// A site with the account `acct` owned by a signed-in person; `queues` filled with
/// `n` messages each and observed by one guardian cycle.
async fn site_with(queues: &[(&str, usize)]) -> (Site, Browser, String) {
    let site = Site::start(Backend::Sqlite, &[("WARN_QUEUE_SIZE", "3"), ("DEL_QUEUE_SIZE", "50")]).await;
    let owner = mailbox::address("owner");
    site.app()
        .record(vec![NewEvent::new(
            "account/acct",
            Event::AccountCreated(AccountCreated {
                name: "acct".into(),
                owners: vec![owner.clone()],
                vhosts: vec![site.vhost.name.clone()],
            }),
            &pulseguardian::domain::Actor::Cli,
        )])
        .await
        .unwrap();
    for (q, n) in queues {
        site.vhost.fill(q, *n).await;
    }
    site.observe().await;
    let b = site.person(&owner).await;
    (site, b, owner)
}

/// A signed-in person with a role (granted as the command line would).
async fn with_role(site: &Site, who: &str, role: Role) -> Browser {
    let email = pulseguardian::domain::EmailAddress::parse(&mailbox::address(who)).unwrap();
    pulseguardian::app::roles::grant(site.app(), &pulseguardian::auth::Principal::cli(), &email, role)
        .await
        .unwrap();
    site.person(email.as_str()).await
}

fn queue_path(site: &Site, name: &str) -> String {
    format!("/queues/{}/{}", encode_segment(&site.vhost.name), encode_segment(name))
}

async fn htmx_get(b: &Browser, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut r = b.http.get(b.url(path)).header("hx-request", "true");
    if let Some(e) = etag {
        r = r.header("if-none-match", e);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn hostile_queue_names_are_escaped_everywhere() {
    let evil = r#"queue/acct/<script>alert("x")</script>"#;
    let quoted = r#"queue/acct/"quoted' & <b>bold</b>"#;
    let (site, b, _) = site_with(&[(evil, 4), (quoted, 1)]).await;
    let list = b.get("/queues").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("<script>alert"), "raw script in /queues");
    assert!(!list.body.contains("<b>bold</b>"));
    assert!(
        list.body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
        "{}",
        list.body
    );
    assert!(list.body.contains("over warning"), "the filled queue is warned");
    for name in [evil, quoted] {
        let page = b.get(&queue_path(&site, name)).await;
        assert_eq!(page.status, 200, "{name}");
        assert!(!page.body.contains("<script>alert") && !page.body.contains("<b>bold</b>"));
        assert!(page.body.contains("svg") && page.body.contains("Depth over 24 hours"));
    }
    let evil_page = b.get(&queue_path(&site, evil)).await;
    assert!(evil_page.body.contains("QueueWarned"), "the history lists the warning");
}

#[tokio::test]
async fn the_live_table_answers_304_until_something_changes() {
    let (site, b, _) = site_with(&[("queue/acct/a", 1)]).await;
    let plain = b.get("/queues/rows").await;
    assert_eq!(plain.status, 303, "a partial outside htmx goes to its page");
    assert_eq!(plain.location.as_deref(), Some("/queues?"));

    let first = htmx_get(&b, "/queues/rows", None).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(first.text().await.unwrap().contains("queue/acct/a"));
    let again = htmx_get(&b, "/queues/rows", Some(&etag)).await;
    assert_eq!(again.status(), 304);

    site.vhost.fill("queue/acct/a", 1).await;
    site.observe().await;
    let changed = htmx_get(&b, "/queues/rows", Some(&etag)).await;
    assert_eq!(changed.status(), 200, "new depths, new answer");
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    let live = htmx_get(&b, &format!("{}/live", queue_path(&site, "queue/acct/a")), None).await;
    assert_eq!(live.status(), 200);
    assert!(live.text().await.unwrap().contains("2</strong> messages"));
}

#[tokio::test]
async fn a_query_a_page_cannot_read_gets_the_error_page_with_what_was_wrong() {
    let (site, b, _) = site_with(&[("queue/acct/a", 1)]).await;
    for path in ["/queues?page=-1", "/queues/rows?page=x", "/audit?before=soon"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(
            page.body.starts_with("<!DOCTYPE html>"),
            "{path}: a page, not bare text"
        );
        let text = page.text();
        assert!(
            text.contains("This address's query is not understood (invalid digit found in string)"),
            "{path}: {text}"
        );
    }
    drop(site);
}

#[tokio::test]
async fn an_ended_session_gets_a_sign_in_prompt_not_a_fragment() {
    let (site, b, _) = site_with(&[("queue/acct/a", 1)]).await;
    let stranger = site.browser();
    let r = htmx_get(&stranger, "/queues/rows", None).await;
    assert_eq!(r.status(), 286, "stops htmx polling");
    assert_eq!(r.headers()["hx-retarget"], "#session-banner");
    assert!(r.text().await.unwrap().contains("Sign in again"));
    // A page asked for directly goes to the sign-in page and comes back after.
    let page = stranger.get("/queues?sort=depth").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/signin?next=%2Fqueues%3Fsort%3Ddepth"));
    drop(b);
}

#[tokio::test]
async fn who_sees_and_changes_which_queue() {
    let (site, owner, _) = site_with(&[("queue/acct/mine", 1), ("queue/other/theirs", 1), ("orphan", 1)]).await;
    let mine = queue_path(&site, "queue/acct/mine");
    let theirs = queue_path(&site, "queue/other/theirs");

    // An owner sees their queues only.
    let list = owner.get("/queues").await.body;
    assert!(list.contains("queue/acct/mine") && !list.contains("queue/other/theirs") && !list.contains("orphan"));
    assert_eq!(owner.get(&theirs).await.status, 404);
    assert_eq!(
        owner
            .post_form(&format!("{theirs}/delete"), &[("confirm", "yes")])
            .await
            .status,
        404
    );
    assert!(site.vhost.exists("queue/other/theirs").await);
    let policy = owner.post_form(&format!("{mine}/policy"), &[("unbounded", "on")]).await;
    assert_eq!(policy.status, 403, "only admins set policies");
    assert!(site.events_of("QueuePolicySet").await.is_empty());

    // An auditor sees everything and changes nothing.
    let auditor = with_role(&site, "auditor", Role::Auditor).await;
    let all = auditor.get("/queues").await.body;
    assert!(all.contains("queue/other/theirs") && all.contains("orphan"));
    assert_eq!(auditor.get("/audit").await.status, 200);
    assert_eq!(
        auditor
            .post_form(&format!("{theirs}/delete"), &[("confirm", "yes")])
            .await
            .status,
        403
    );
    assert!(site.vhost.exists("queue/other/theirs").await);
    assert_eq!(owner.get("/audit").await.status, 403);

    // An admin sets a policy; it shows in the queue's history and settings.
    let admin = with_role(&site, "admin", Role::Admin).await;
    let bad = admin
        .post_form(&format!("{mine}/policy"), &[("warn_size", "100"), ("del_size", "10")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("must be less than"));
    let set = admin
        .post_form(&format!("{mine}/policy"), &[("unbounded", "on"), ("warn_size", "10")])
        .await;
    assert_eq!(set.status, 303);
    let page = admin.get(&mine).await.body;
    assert!(
        page.contains("QueuePolicySet") && page.contains("never deleted (unbounded)"),
        "{page}"
    );

    // The owner deletes their queue with the confirmation, not without.
    let refused = owner.post_form(&format!("{mine}/delete"), &[]).await;
    assert_eq!(refused.status, 400);
    assert!(site.vhost.exists("queue/acct/mine").await);
    let done = owner.post_form(&format!("{mine}/delete"), &[("confirm", "yes")]).await;
    assert_eq!(done.status, 303);
    assert!(done.location.unwrap().starts_with("/queues?done="));
    assert!(!site.vhost.exists("queue/acct/mine").await);
    let deleted = site.events_of("QueueDeletedByUser").await;
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].actor.starts_with("user:owner-"));
}

#[tokio::test]
async fn the_audit_page_filters_pages_and_exports() {
    let (site, _, _) = site_with(&[("queue/acct/a", 4)]).await;
    let admin = with_role(&site, "admin", Role::Admin).await;
    let page = admin.get("/audit").await;
    assert_eq!(page.status, 200);
    for kind in ["QueueWarned", "AccountCreated", "UserSignedIn", "AdminGranted"] {
        assert!(page.body.contains(kind), "{kind} not listed");
    }
    assert!(page.body.contains("Events per hour"));
    let only = admin.get("/audit?kind=QueueWarned").await.body;
    assert!(only.contains("<strong>QueueWarned</strong>") && !only.contains("<strong>UserSignedIn</strong>"));
    assert_eq!(admin.get("/audit?kind=Nope").await.status, 400);
    assert_eq!(admin.get("/audit?from=yesterday").await.status, 400);
    assert_eq!(admin.get("/audit/rows?before=5").await.status, 303);

    let csv = admin
        .http
        .get(admin.url("/audit/export?kind=QueueWarned&format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("seq,id,stream,version,kind"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains("QueueWarned"));
    let ndjson = admin
        .http
        .get(admin.url("/audit/export?format=ndjson"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len() as i64, site.head().await, "everything, oldest first");
    assert_eq!(events[0]["seq"], 1);
}

#[tokio::test]
async fn owners_lower_their_queues_alarms_within_the_bounds_and_the_overview_counts_them() {
    let (site, owner, _) = site_with(&[("queue/acct/mine", 4), ("queue/other/theirs", 1)]).await;
    let mine = queue_path(&site, "queue/acct/mine");
    let theirs = queue_path(&site, "queue/other/theirs");

    // Above the bounds, or not a number: field errors, nothing recorded.
    let high = owner
        .post_form(&format!("{mine}/alarms"), &[("alarm_warn_size", "4")])
        .await;
    assert_eq!(high.status, 422);
    assert!(high.body.contains("can only be lowered: at most 3"), "{}", high.body);
    let bad = owner
        .post_form(&format!("{mine}/alarms"), &[("unconsumed_minutes", "soon")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("Minutes must be a whole number"));
    let long = owner
        .post_form(&format!("{mine}/alarms"), &[("unconsumed_minutes", "10081")])
        .await;
    assert_eq!(long.status, 422);
    assert!(site.events_of("QueueAlarmsSet").await.is_empty());
    // Someone else's queue: not there.
    let other = owner
        .post_form(&format!("{theirs}/alarms"), &[("alarm_warn_size", "1")])
        .await;
    assert_eq!(other.status, 404);

    let set = owner
        .post_form(
            &format!("{mine}/alarms"),
            &[
                ("alarm_warn_size", "2"),
                ("alarm_del_size", "40"),
                ("unconsumed_minutes", "0"),
                ("reminders_off", "on"),
            ],
        )
        .await;
    assert_eq!(set.status, 303);
    let events = site.events_of("QueueAlarmsSet").await;
    assert_eq!(events.len(), 1);
    assert!(events[0].actor.starts_with("user:owner-"));
    let page = owner.get(&mine).await.body;
    assert!(
        page.contains("not watched") && page.contains("off for this queue"),
        "{page}"
    );
    assert!(page.contains("warn &gt; 2"), "the owner's size is in force: {page}");

    // The overview line says what needs attention, each figure a filter.
    let list = owner.get("/queues").await.body;
    assert!(list.contains("id=\"overview\""), "{list}");
    assert!(list.contains("<strong>1</strong> over the warning size"), "{list}");
    assert!(list.contains("href=\"/queues?needs=unconsumed\""));
    let dropping = owner.get("/queues?needs=dropping").await.body;
    assert!(dropping.contains("No queues to show."), "{dropping}");
    drop(site);
}
