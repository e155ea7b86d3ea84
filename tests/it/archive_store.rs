//! The S3 archive store against a real S3 API: moto's server mode on 127.0.0.1:9000
//! (started by `scripts/services s3`) stands in for Amazon S3. Every test makes a bucket
//! of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulseguardian::Config;
use pulseguardian::archive::{Store, StoreError, decode, encode, key, open};
use pulseguardian::domain::QueueRef;
use pulseguardian::domain::archive::{Properties, Taken};

pub const S3: &str = "http://127.0.0.1:9000";
const PREFIX: &str = "some/prefix";

fn config(bucket: &str, endpoint: &str, secret: &str) -> Config {
    config_at(&format!("s3://{bucket}/{PREFIX}"), endpoint, secret)
}

fn config_at(url: &str, endpoint: &str, secret: &str) -> Config {
    let vars: HashMap<&str, String> = [
        ("ARCHIVE_URL", url.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration is valid")
}

/// A bucket of its own on moto (which takes unsigned requests), and a store in it.
async fn bucket() -> (String, Arc<dyn Store>) {
    let bucket = new_bucket().await;
    let store = open(&config(&bucket, S3, "test")).expect("the S3 store opens");
    (bucket, store)
}

/// A bucket of the test's own.
pub async fn new_bucket() -> String {
    let bucket = format!("pg-test-{}", uuid::Uuid::new_v4().simple());
    let created = reqwest::Client::new()
        .put(format!("{S3}/{bucket}"))
        .send()
        .await
        .expect("moto's S3 on 127.0.0.1:9000 (run scripts/services s3)");
    assert!(created.status().is_success(), "create bucket: {}", created.status());
    bucket
}

/// Every object key in the bucket, as S3 itself lists them.
pub async fn raw_keys(bucket: &str) -> Vec<String> {
    let xml = reqwest::get(format!("{S3}/{bucket}?list-type=2"))
        .await
        .expect("list the bucket")
        .text()
        .await
        .unwrap();
    let mut keys: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect();
    keys.sort();
    keys
}

fn messages() -> Vec<pulseguardian::domain::archive::ArchivedMessage> {
    (1..=3u64)
        .map(|i| {
            Taken {
                exchange: "exchange/acct/x".into(),
                routing_key: format!("route.{i}"),
                redelivered: false,
                properties: Properties {
                    message_id: Some(format!("m{i}")),
                    ..Default::default()
                },
                body: if i == 2 {
                    vec![0xff, 0, i as u8]
                } else {
                    format!("body {i}").into_bytes()
                },
            }
            .archived(i, "2025-01-02T03:04:05Z")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_put_to_s3_reads_back_lists_under_the_prefix_and_deletes() {
    let (bucket, store) = bucket().await;
    assert_eq!(store.describe(), format!("s3://{bucket}/{PREFIX}"));
    store.probe().await.expect("moto takes segments");
    // given the probe, then it left nothing behind
    assert_eq!(raw_keys(&bucket).await, Vec::<String>::new());

    let q = QueueRef::new("/", "queue/acct/hostile %2F../😀");
    let messages = messages();
    let segment = encode(&messages);
    let k = key(&q, 1);
    let before = chrono::Utc::now() - chrono::Duration::seconds(60);
    store.put(&k, Bytes::from(segment.bytes.clone())).await.unwrap();

    let back = store.get(&k).await.unwrap();
    assert_eq!(pulseguardian::archive::checksum(&back), segment.checksum);
    assert_eq!(decode(&back).unwrap(), messages);

    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, k);
    assert!(listed[0].1 > before, "{:?}", listed[0].1);
    assert_eq!(raw_keys(&bucket).await, vec![format!("{PREFIX}/{k}")]);

    // given an object of the bucket outside the prefix, then the store does not list it
    let other = reqwest::Client::new()
        .put(format!("{S3}/{bucket}/elsewhere/x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(other.status().is_success());
    assert_eq!(store.list().await.unwrap().len(), 1);

    store.delete(&k).await.unwrap();
    assert_eq!(store.get(&k).await, Err(StoreError::NotFound(k.clone())));
    store.delete(&k).await.expect("deleting a missing key is Ok");
    assert_eq!(store.list().await.unwrap(), vec![]);
    assert_eq!(raw_keys(&bucket).await, vec!["elsewhere/x".to_owned()]);
    assert!(matches!(
        store.put("../x", Bytes::new()).await,
        Err(StoreError::InvalidKey(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_with_spaces_capitals_and_accents_holds_the_segments() {
    let bucket = new_bucket().await;
    let store = open(&config_at(&format!("s3://{bucket}/Pulse Archive/été+1/"), S3, "test")).unwrap();
    assert_eq!(store.describe(), format!("s3://{bucket}/Pulse Archive/été+1"));
    store.probe().await.unwrap();
    let k = key(&QueueRef::new("/", "q"), 5);
    store.put(&k, Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"x"));
    let keys: Vec<String> = store.list().await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![k.clone()]);
    assert_eq!(raw_keys(&bucket).await, vec![format!("Pulse Archive/été+1/{k}")]);
    store.delete(&k).await.unwrap();
    assert_eq!(store.list().await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_the_probe() {
    let store = open(&config(
        &format!("pg-test-{}", uuid::Uuid::new_v4().simple()),
        S3,
        "test",
    ))
    .unwrap();
    let err = store.probe().await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Failed(m) if m.contains("NoSuchBucket")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_fails_the_probe_in_bounded_time() {
    let store = open(&config("pg-test-nowhere", "http://127.0.0.1:1", "s3cr3t-never-shown")).unwrap();
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), store.probe())
        .await
        .expect("the probe of a dead endpoint returns instead of hanging");
    let err = result.unwrap_err();
    assert!(matches!(&err, StoreError::Failed(m) if !m.contains("s3cr3t")), "{err}");
    eprintln!("a dead endpoint failed after {:?}: {err}", started.elapsed());
}
