//! Archives over HTTP with real tokens and sessions, on a vhost and a queue name as hostile
//! as RabbitMQ allows (255 bytes, `%`, `/`, `#`, an emoji, a space, accents): the NDJSON
//! download and its resumption, re-publishing, who may do what (another person's archive
//! is not found), the queue page's archive card and policy form, and a stream.

use pulseguardian::domain::encode_segment;
use pulseguardian::guardian::Guardian;

use crate::api::create_account;
use crate::archive::{assert_is, drain, publish, ready};
use crate::browser::Site;
use crate::mailbox;
use crate::on_both;
use crate::rabbit::TestVhost;
use crate::rabbit::amqp::connect;
use crate::support::Backend;

/// The longest queue name of account `account`: 255 bytes of the worst characters.
fn hostile_queue(account: &str) -> String {
    let mut name = format!("queue/{account}/ %/#😀 ");
    while name.len() + 'é'.len_utf8() <= 255 {
        name.push('é');
    }
    while name.len() < 255 {
        name.push('x');
    }
    name
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn call(site: &Site, method: reqwest::Method, path: &str, token: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", site.url));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

fn lines(body: &str) -> Vec<serde_json::Value> {
    body.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A stream holding `n` messages (declared and filled through the management API).
async fn declare_stream(site: &Site, name: &str, n: usize) {
    let http = reqwest::Client::new();
    let v = encode_segment(&site.vhost.name);
    let r = http
        .put(format!(
            "{}/api/queues/{v}/{}",
            crate::rabbit::MANAGEMENT,
            encode_segment(name)
        ))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"durable": true, "arguments": {"x-queue-type": "stream"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "declare the stream: {}", r.status());
    for i in 0..n {
        let r = http
            .post(format!("{}/api/exchanges/{v}/amq.default/publish", crate::rabbit::MANAGEMENT))
            .basic_auth("guest", Some("guest"))
            .json(&serde_json::json!({"properties": {}, "routing_key": name, "payload": format!("s{i}"), "payload_encoding": "string"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

on_both!(archives_over_http_for_their_readers_only);

async fn archives_over_http_for_their_readers_only(backend: Backend) {
    let admin = mailbox::address("archadmin");
    let auditor = mailbox::address("archauditor");
    let vhost = TestVhost::hostile().await;
    let site = Site::start_in(
        backend,
        vhost,
        &[
            ("ADMIN_EMAILS", admin.as_str()),
            ("AUDITOR_EMAILS", auditor.as_str()),
            ("WARN_QUEUE_SIZE", "5"),
            ("ARCHIVE_QUEUE_SIZE", "20"),
            ("DEL_QUEUE_SIZE", "1000"),
        ],
    )
    .await;
    let alice = mailbox::address("alice");
    let a = site.person(&alice).await;
    let account = site.name("arch");
    create_account(&a, &account, &alice).await;
    let bob = site.person(&mailbox::address("bob")).await;
    let aud = site.person(&auditor).await;
    let adm = site.person(&admin).await;
    let (alice_t, bob_t, auditor_t) = (
        a.create_token("alice").await,
        bob.create_token("bob").await,
        aud.create_token("auditor").await,
    );

    let q = hostile_queue(&account);
    assert_eq!(q.len(), 255);
    let conn = connect("guest", "guest", &site.vhost.name).await.unwrap();
    publish(&conn, &q, "classic", 0, 60).await;
    let g = Guardian::new(site.app().clone());
    g.cycle().await.unwrap();
    assert_eq!(g.finish_archiving().await, 40);
    g.release().await;
    assert_eq!(ready(&conn, &q).await, 20);

    let path = format!(
        "/api/v1/archives/{}/{}",
        encode_segment(&site.vhost.name),
        encode_segment(&q)
    );
    let got = call(&site, reqwest::Method::GET, &path, Some(&alice_t)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(
        got.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-ndjson")
    );
    assert_eq!(got.headers["x-archive-count"], "40");
    assert!(got.headers["x-archive-bytes"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    let all = lines(&got.body);
    assert_eq!(all.len(), 40);
    for (i, line) in all.iter().enumerate() {
        let m: pulseguardian::domain::archive::ArchivedMessage = serde_json::from_value(line.clone()).unwrap();
        assert_is(&m, i, &q);
    }
    let rest = call(
        &site,
        reqwest::Method::GET,
        &format!("{path}?after=37"),
        Some(&auditor_t),
    )
    .await;
    assert_eq!(rest.status, 200, "auditors read archives");
    assert_eq!(rest.headers["x-archive-count"], "3");
    let positions: Vec<u64> = lines(&rest.body)
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [38, 39, 40]);
    for bad in ["after=x", "after=-1", "after=1.5"] {
        let r = call(&site, reqwest::Method::GET, &format!("{path}?{bad}"), Some(&alice_t)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.body.contains("\"error\""), "{}", r.body);
    }

    // Bob may not read it, nor learn that it exists: the answer for no archive at all.
    let refused = call(&site, reqwest::Method::GET, &path, Some(&bob_t)).await;
    let missing_path = format!(
        "/api/v1/archives/{}/{}",
        encode_segment(&site.vhost.name),
        encode_segment(&format!("queue/{account}/nothing"))
    );
    let missing = call(&site, reqwest::Method::GET, &missing_path, Some(&alice_t)).await;
    assert_eq!((refused.status, refused.body.as_str()), (404, missing.body.as_str()));
    assert_eq!(call(&site, reqwest::Method::GET, &path, None).await.status, 401);

    // Re-publishing: not by bob (not found), not by the auditor (forbidden), not while
    // the queue is at its archive size (nothing fits), then by alice once it has room.
    let republish = format!("{path}/republish");
    assert_eq!(
        call(&site, reqwest::Method::POST, &republish, Some(&bob_t))
            .await
            .status,
        404
    );
    assert_eq!(
        call(&site, reqwest::Method::POST, &republish, Some(&auditor_t))
            .await
            .status,
        403
    );
    let full = call(&site, reqwest::Method::POST, &republish, Some(&alice_t)).await;
    assert_eq!(full.status, 409, "{}", full.body);
    assert!(full.body.contains("nothing fits"), "{}", full.body);
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(drain(&ch, &q).await.len(), 20);
    let done = call(&site, reqwest::Method::POST, &republish, Some(&alice_t)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let r: serde_json::Value = serde_json::from_str(&done.body).unwrap();
    assert_eq!((r["published"].as_u64(), r["remaining"].as_u64()), (Some(20), Some(20)));
    let back = drain(&ch, &q).await;
    assert_eq!(
        back.iter().map(|(id, _, _)| id.clone()).collect::<Vec<_>>(),
        (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );

    // The API's queue list says the type and what is archived.
    let listed = call(&site, reqwest::Method::GET, "/api/v1/queues", Some(&alice_t)).await;
    let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == q.as_str())
        .unwrap();
    assert_eq!(
        (mine["type"].as_str(), mine["archived"].as_u64()),
        (Some("classic"), Some(40))
    );
    // Not growing (it was just archived down): no forecast, said as null.
    assert!(
        mine["growth_per_minute"].is_null() && mine["forecast_delete_at"].is_null(),
        "{mine}"
    );
    assert_eq!(
        (mine["unconsumed"].as_bool(), mine["overflowing"].as_bool()),
        (Some(false), Some(false))
    );

    // The page: the archive card with its download, for a signed-in person.
    let page_path = format!("/queues/{}/{}", encode_segment(&site.vhost.name), encode_segment(&q));
    let page = a.get(&page_path).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("Archive") && text.contains("Download (NDJSON)"), "{text}");
    assert!(text.contains("Re-publish into the queue"), "{text}");
    assert!(!text.contains("Purge the archive"), "only admins purge");
    let file = a.get(&format!("{page_path}/archive?after=39")).await;
    assert_eq!(file.status, 200);
    assert_eq!(lines(&file.body).len(), 1);
    assert_eq!(bob.get(&format!("{page_path}/archive")).await.status, 404);
    let no_csrf = a.post_raw(&format!("{page_path}/archive/republish"), &[]).await;
    assert_eq!(no_csrf.status, 403, "the button's form is CSRF-checked");

    // The admin's policy form: an archive size out of order is refused with its field's
    // error and changes nothing; a good one is recorded; the purge removes the archive.
    let head = site.head().await;
    let bad = adm
        .post_form(&format!("{page_path}/policy"), &[("archive_size", "3")])
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.field_error("f-archive_size")
            .is_some_and(|e| e.contains("more than the warning size")),
        "{:?}",
        bad.field_errors()
    );
    assert_eq!(site.head().await, head, "nothing recorded");
    let good = adm
        .post_form(
            &format!("{page_path}/policy"),
            &[("archive_size", "50"), ("archive_when_idle", "on")],
        )
        .await;
    assert_eq!(good.status, 303, "{}", good.body);
    let text = adm.get(&page_path).await.text();
    assert!(text.contains("only while nobody else consumes it"), "{text}");
    let purged = adm
        .post_form(&format!("{page_path}/archive/purge"), &[("confirm", "yes")])
        .await;
    assert_eq!(purged.status, 303, "{}", purged.body);
    assert_eq!(site.events_of("ArchivePurged").await.len(), 1);
    let gone = call(&site, reqwest::Method::GET, &path, Some(&alice_t)).await;
    assert_eq!(gone.status, 200);
    assert_eq!(gone.headers["x-archive-count"], "0");
    assert!(gone.body.is_empty());
}

/// A stream is never consumed by the guardian (reading one does not shrink it), and its
/// page says so. (On a vhost of a plain name: RabbitMQ names a stream's files after its
/// vhost and name, and a 255-byte vhost's do not fit a file name.)
#[tokio::test]
async fn a_stream_is_never_archived_and_its_page_says_so() {
    let site = Site::start(
        Backend::Sqlite,
        &[
            ("WARN_QUEUE_SIZE", "5"),
            ("ARCHIVE_QUEUE_SIZE", "20"),
            ("DEL_QUEUE_SIZE", "1000"),
        ],
    )
    .await;
    let alice = mailbox::address("alice");
    let a = site.person(&alice).await;
    let account = site.name("strm");
    create_account(&a, &account, &alice).await;
    let stream = format!("queue/{account}/events");
    declare_stream(&site, &stream, 30).await;
    crate::support::wait_for(
        "the broker to count the stream",
        std::time::Duration::from_secs(60),
        || async {
            let all = site.app().broker.queue_depths(&site.vhost.name).await.ok()?;
            let d = all.into_iter().find(|q| q.name == stream)?;
            // RabbitMQ lists a stream's type, but not its count.
            (d.kind == pulseguardian::domain::QueueKind::Stream).then_some(())
        },
    )
    .await;
    let g = Guardian::new(site.app().clone());
    g.cycle().await.unwrap();
    assert_eq!(g.finish_archiving().await, 0);
    g.release().await;
    assert!(site.events_of("ArchiveStarted").await.is_empty());
    let page = a
        .get(&format!(
            "/queues/{}/{}",
            encode_segment(&site.vhost.name),
            encode_segment(&stream)
        ))
        .await;
    assert!(
        page.text().contains("reading a stream does not shrink it"),
        "{}",
        page.text()
    );
    let t = a.create_token("t").await;
    let listed = call(&site, reqwest::Method::GET, "/api/v1/queues", Some(&t)).await;
    let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(listed[0]["type"], "stream");
    assert_eq!(listed[0]["archive_size"], serde_json::Value::Null);
}
