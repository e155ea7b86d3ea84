//! RabbitMQ over AMQP 0-9-1 (lapin): connections to one vhost, a queue's depth, consuming
//! with a prefetch, publishing with confirms, and the lossless mapping of a message's
//! properties and headers to and from the archive's typed JSON form.
//!
//! # Typed headers
//!
//! A header table becomes a JSON object; each value keeps its AMQP type:
//!
//! | AMQP value                      | JSON                                            |
//! |---------------------------------|-------------------------------------------------|
//! | long string, valid UTF-8        | `"text"`                                        |
//! | long string, not UTF-8          | `{"bytes": "<base64>"}`                         |
//! | boolean                         | `true` / `false`                                |
//! | i8 u8 i16 u16 i32 u32 i64       | `{"i8": -1}`, `{"u8": 1}`, ... `{"i64": n}`     |
//! | float, double                   | `{"f32": x}`, `{"f64": x}` (see below)          |
//! | decimal                         | `{"decimal": {"scale": s, "value": v}}`         |
//! | short string                    | `{"shortstr": "text"}`                          |
//! | array                           | `{"array": [typed values]}`                     |
//! | table                           | `{"table": {name: typed value}}`                |
//! | timestamp                       | `{"timestamp": seconds}`                        |
//! | void                            | `{"void": null}`                                |
//! | byte array (RabbitMQ's `x`)     | `{"bytearray": "<base64>"}`                     |
//!
//! Base64 is the standard alphabet with padding. There is no `u64`: AMQP as RabbitMQ
//! speaks it has no unsigned 64-bit field (lapin reads and writes `l` as i64).
//!
//! A float is a JSON number when the JSON text of that number reads back to the very
//! same bits (an f32 is written as its shortest decimal where that reads back, so `0.1`
//! rather than `0.10000000149011612`). Otherwise it is a string: `"NaN"` (the canonical
//! quiet NaN, `f32::NAN` / `f64::NAN`), `"Infinity"`, `"-Infinity"`, or its IEEE 754 bits
//! in hex, `"0x7fc00001"` (8 digits for an f32) or `"0x7ff0000000000001"` (16 for an f64),
//! for any other NaN and for any number whose text would not read back exactly. So every
//! float comes back bit for bit, through JSON text too. (serde_json's default float
//! parser is approximate: about one double in ten of 17 significant digits, such as
//! `968.6936479946659`, reads back one bit off, and so is written in hex.)
//!
//! RabbitMQ (its Erlang side) cannot read a NaN or an infinity: a message with one in
//! its headers closes the whole connection (541 INTERNAL_ERROR). Such a message can
//! never have been taken from RabbitMQ; [`publish_confirmed`] refuses it beforehand.
//!
//! A short string inside headers can only be made locally: RabbitMQ never sends one, and
//! lapin writes it with no type tag RabbitMQ knows, so it is kept for completeness only.
//!
//! # Consuming N messages and stopping cleanly
//!
//! [`consume`] sets the channel's prefetch (`basic.qos`, per consumer) and starts a
//! consumer with manual acknowledgement. The [`Consumer`] is a
//! `Stream<Item = lapin::Result<Delivery>>` (use `futures::StreamExt::next`):
//!
//! 1. Take deliveries from the stream until N are in hand (keep each one's
//!    `delivery_tag`). At most `prefetch` are unacknowledged at a time, so use a prefetch
//!    of at least N (it is a u16: at most 65,535) or acknowledge as you go.
//! 2. [`cancel`] the consumer (`basic.cancel`, waits for cancel-ok). The broker may have
//!    sent up to `prefetch` more by then: in lapin 4 the stream still yields every
//!    delivery that arrived before the cancel-ok, in order, and then ends (`None`). Those
//!    surplus deliveries are not acknowledged: they stay unacknowledged on the channel.
//!    A consumer that is only dropped is cancelled too, but without waiting.
//! 3. Acknowledge the N taken with [`ack_up_to`] (`basic.ack`, `multiple: true`, the
//!    N-th's tag) once they are safe: that acknowledges exactly those, as deliveries on a
//!    channel are numbered in order.
//! 4. Close the channel (`ch.close(200, "OK".into())`): the broker puts the surplus
//!    back at the head of the queue, in their order, flagged redelivered. Closing the
//!    channel (or losing the connection) before step 3 puts back everything taken.
//!
//! If the channel or connection fails, the stream yields one `Err` and then ends (as
//! lapin documents it; the surplus is put back by the broker as in step 4).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ErrorKind};
use serde_json::{Map, Number, Value};

use crate::domain::archive::{ArchivedMessage, Properties, Taken};

/// The connection name RabbitMQ shows for PulseGuardian's connections.
pub const CONNECTION_NAME: &str = "pulseguardian";

/// The consumer tags of archivers start with this.
pub const ARCHIVER_TAG_PREFIX: &str = "pulseguardian-archiver-";

/// How long [`Amqp::connect`] waits for the TCP connection and the AMQP handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest name AMQP carries (a vhost, a queue, a header name, a short string).
const MAX_SHORT: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmqpError {
    /// `RABBIT_AMQP_URL` is not usable, or a name is longer than AMQP carries.
    #[error("{0}")]
    Config(String),
    /// Connecting failed, or the broker, the connection or the channel failed. Never
    /// holds the URL's password.
    #[error("RabbitMQ over AMQP: {0}")]
    Broker(String),
    /// The queue is not on the broker (a passive declare or a consume answered 404). The
    /// broker closes the channel with that answer: open another one.
    #[error("queue {queue:?} is not on the broker")]
    QueueGone { queue: String },
    /// The broker refused (nacked) a published message.
    #[error("RabbitMQ refused message {position} published into queue {queue:?}")]
    Nacked { queue: String, position: u64 },
    /// The broker returned a published message as unroutable. Through the default
    /// exchange that means the queue is not there (any more).
    #[error("RabbitMQ returned message {position} published into queue {queue:?}: {code} {text}")]
    Returned {
        queue: String,
        position: u64,
        code: u16,
        text: String,
    },
    /// A message that cannot be published as archived (a property too long for AMQP,
    /// headers not in the typed form or with a float RabbitMQ cannot take, a base64 body
    /// that does not decode).
    #[error("{0}")]
    Invalid(String),
    /// lapin could not read the broker's answer, and the connection is lost. RabbitMQ
    /// cuts its error texts at 255 bytes, which can split a character of a long
    /// non-ASCII queue or vhost name, and lapin refuses the whole frame: so a missing
    /// queue (404) can show up as this instead of [`QueueGone`](Self::QueueGone). Ask
    /// the management API whether the queue is there.
    #[error("RabbitMQ over AMQP: {0}")]
    Unreadable(String),
}

impl AmqpError {
    /// Whether the queue is gone: a 404, or a message returned as unroutable.
    pub fn is_queue_gone(&self) -> bool {
        match self {
            AmqpError::QueueGone { .. } => true,
            AmqpError::Returned { code, .. } => *code == AMQPSoftError::NOROUTE.get_id(),
            _ => false,
        }
    }
}

fn broker(what: &str, e: &lapin::Error) -> AmqpError {
    match e.kind() {
        ErrorKind::ParsingError(_) => AmqpError::Unreadable(format!(
            "{what}: the broker's answer does not read (an error text cut inside a character?), \
             the connection is lost: {e}"
        )),
        _ => AmqpError::Broker(format!("{what}: {e}")),
    }
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(p) if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

/// The queue's answer: `QueueGone` on a 404, else what failed.
fn on_queue(what: &str, queue: &str, e: &lapin::Error) -> AmqpError {
    if is_not_found(e) {
        AmqpError::QueueGone {
            queue: queue.to_owned(),
        }
    } else {
        broker(&format!("{what} queue {queue:?}"), e)
    }
}

fn short(what: &str, s: &str) -> Result<ShortString, AmqpError> {
    ShortString::try_new(s).map_err(|_| {
        AmqpError::Config(format!(
            "{what} is {} bytes long; AMQP carries at most {MAX_SHORT}",
            s.len()
        ))
    })
}

// ---------------------------------------------------------------------------------------
// Connections

/// Connections to the broker with the credentials of `RABBIT_AMQP_URL`, to any vhost.
#[derive(Clone)]
pub struct Amqp {
    /// The URL as configured: a secret (it holds the password), never logged.
    base: String,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Amqp(***)")
    }
}

impl Amqp {
    /// `amqp_url`: `amqp://` or `amqps://`, user and password percent-encoded; its path
    /// (the vhost) and query are ignored but for `heartbeat`, `frame_max`,
    /// `channel_max` and `auth_mechanism`.
    pub fn new(amqp_url: &str) -> Amqp {
        Amqp {
            base: amqp_url.to_owned(),
        }
    }

    /// Where [`connect`](Self::connect) goes for `vhost`: the URL's host, port,
    /// credentials and options, and exactly this vhost (not decoded, so any name works).
    fn uri(&self, vhost: &str) -> Result<AMQPUri, AmqpError> {
        let bad = |why: &str| AmqpError::Config(format!("RABBIT_AMQP_URL {why}"));
        let url = url::Url::parse(&self.base).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(bad("is not an amqp:// or amqps:// URL"));
        }
        // Its own messages can quote the URL: they are not passed on.
        let mut uri: AMQPUri = self
            .base
            .parse()
            .map_err(|_| bad("is not an AMQP URL (a user, password or option does not read)"))?;
        // lapin takes only a domain name as the host (an IPv6 address would become
        // "localhost"), and would need the brackets off.
        uri.authority.host = match url.host() {
            Some(url::Host::Domain(_)) => uri.authority.host,
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("has no host")),
        };
        short("the vhost name", vhost)?;
        uri.vhost = vhost.to_owned();
        Ok(uri)
    }

    /// A new connection to `vhost` (any name: `/`, `%`, spaces, emoji, 255 bytes), named
    /// [`CONNECTION_NAME`], within [`CONNECT_TIMEOUT`].
    pub async fn connect(&self, vhost: &str) -> Result<Connection, AmqpError> {
        let uri = self.uri(vhost)?;
        let password = uri.authority.userinfo.password.clone();
        let props = ConnectionProperties::default().with_connection_name(CONNECTION_NAME.into());
        let what = format!("connecting to vhost {vhost:?}");
        let result = match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, props)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => broker(&what, &e),
            Err(_) => AmqpError::Broker(format!("{what}: no answer within {CONNECT_TIMEOUT:?}")),
        };
        Err(scrub(result, &password))
    }
}

/// The error without the password in it, should anything have quoted it.
fn scrub(e: AmqpError, password: &str) -> AmqpError {
    match e {
        AmqpError::Broker(m) if !password.is_empty() => AmqpError::Broker(m.replace(password, "***")),
        AmqpError::Unreadable(m) if !password.is_empty() => AmqpError::Unreadable(m.replace(password, "***")),
        e => e,
    }
}

// ---------------------------------------------------------------------------------------
// Channels

/// The queue's ready messages and its consumers, by a passive declare. On a queue that is
/// not there: [`AmqpError::QueueGone`], and the broker has closed the channel (or, with
/// names long and not ASCII, [`AmqpError::Unreadable`] and the connection is lost).
pub async fn depth(ch: &Channel, queue: &str) -> Result<(u32, u32), AmqpError> {
    let name = short("the queue name", queue)?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let q = ch
        .queue_declare(name, options, FieldTable::default())
        .await
        .map_err(|e| on_queue("declaring (passively)", queue, &e))?;
    Ok((q.message_count(), q.consumer_count()))
}

/// A new channel of `conn` in confirm mode, for [`publish_confirmed`].
pub async fn confirming(conn: &Connection) -> Result<Channel, AmqpError> {
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| broker("opening a channel", &e))?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| broker("turning publisher confirms on", &e))?;
    Ok(ch)
}

/// Publishes `messages`, in order, into `queue` (the default exchange, the queue's name
/// as routing key, `mandatory`), each with its archived properties and body unchanged,
/// then waits for the broker to confirm every one. Puts the channel in confirm mode if
/// it is not yet (see [`confirming`]).
///
/// Any nack or returned message is an error (the first, by position); messages before
/// it, and maybe after it, are in the queue by then.
pub async fn publish_confirmed(ch: &Channel, queue: &str, messages: &[ArchivedMessage]) -> Result<(), AmqpError> {
    let routing_key = short("the queue name", queue)?;
    let mut prepared = Vec::with_capacity(messages.len());
    for m in messages {
        let properties =
            basic_properties(&m.properties).map_err(|e| AmqpError::Invalid(format!("message {}: {e}", m.position)))?;
        let body = m
            .body_bytes()
            .ok_or_else(|| AmqpError::Invalid(format!("message {}: its base64 body does not decode", m.position)))?;
        if let Some(name) = properties.headers().as_ref().and_then(|h| non_finite(h, "headers")) {
            return Err(AmqpError::Invalid(format!(
                "message {}: {name} is a NaN or an infinity, which RabbitMQ cannot take",
                m.position
            )));
        }
        prepared.push((m.position, properties, body));
    }
    if !ch.status().confirm() {
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| broker("turning publisher confirms on", &e))?;
    }
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let mut confirms = Vec::with_capacity(prepared.len());
    for (position, properties, body) in prepared {
        let confirm = ch
            .basic_publish(ShortString::default(), routing_key.clone(), options, &body, properties)
            .await
            .map_err(|e| broker(&format!("publishing message {position} into queue {queue:?}"), &e))?;
        confirms.push((position, confirm));
    }
    for (position, confirm) in confirms {
        let confirmation = confirm
            .await
            .map_err(|e| broker(&format!("waiting for the confirm of message {position}"), &e))?;
        match confirmation {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                return Err(AmqpError::Returned {
                    queue: queue.to_owned(),
                    position,
                    code: returned.reply_code,
                    text: returned.reply_text.as_str().to_owned(),
                });
            }
            Confirmation::Nack(None) => {
                return Err(AmqpError::Nacked {
                    queue: queue.to_owned(),
                    position,
                });
            }
            Confirmation::NotRequested => {
                return Err(AmqpError::Broker(format!(
                    "message {position} was published without a confirm: the channel is not in confirm mode"
                )));
            }
        }
    }
    Ok(())
}

/// Sets the channel's prefetch to `prefetch` and consumes `queue` as `tag`, with manual
/// acknowledgement, not exclusively. See the module's documentation for taking N
/// messages and stopping cleanly. A queue that is not there: [`AmqpError::QueueGone`]
/// (and the channel is closed).
pub async fn consume(ch: &Channel, queue: &str, tag: &str, prefetch: u16) -> Result<Consumer, AmqpError> {
    let name = short("the queue name", queue)?;
    let tag = short("the consumer tag", tag)?;
    ch.basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(|e| broker("setting the prefetch", &e))?;
    let options = BasicConsumeOptions {
        no_local: false,
        no_ack: false,
        exclusive: false,
        nowait: false,
    };
    ch.basic_consume(name, tag, options, FieldTable::default())
        .await
        .map_err(|e| on_queue("consuming", queue, &e))
}

/// Cancels the consumer `tag` and waits for the broker's cancel-ok; its stream then yields
/// what had arrived and ends.
pub async fn cancel(ch: &Channel, tag: &str) -> Result<(), AmqpError> {
    ch.basic_cancel(short("the consumer tag", tag)?, BasicCancelOptions { nowait: false })
        .await
        .map_err(|e| broker(&format!("cancelling consumer {tag:?}"), &e))
}

/// Acknowledges every delivery on the channel up to and including `delivery_tag`.
pub async fn ack_up_to(ch: &Channel, delivery_tag: u64) -> Result<(), AmqpError> {
    ch.basic_ack(delivery_tag, BasicAckOptions { multiple: true })
        .await
        .map_err(|e| broker(&format!("acknowledging up to delivery {delivery_tag}"), &e))
}

/// A delivery as the archive takes it.
pub fn taken(d: &Delivery) -> Taken {
    Taken {
        exchange: d.exchange.as_str().to_owned(),
        routing_key: d.routing_key.as_str().to_owned(),
        redelivered: d.redelivered,
        properties: properties_of(&d.properties),
        body: d.data.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Properties

/// Every basic property, headers in the typed form.
pub fn properties_of(p: &BasicProperties) -> Properties {
    let text = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_owned());
    Properties {
        content_type: text(p.content_type()),
        content_encoding: text(p.content_encoding()),
        headers: p.headers().as_ref().map(headers_to_json),
        delivery_mode: *p.delivery_mode(),
        priority: *p.priority(),
        correlation_id: text(p.correlation_id()),
        reply_to: text(p.reply_to()),
        expiration: text(p.expiration()),
        message_id: text(p.message_id()),
        timestamp: *p.timestamp(),
        kind: text(p.kind()),
        user_id: text(p.user_id()),
        app_id: text(p.app_id()),
        cluster_id: text(p.cluster_id()),
    }
}

/// The basic properties of `p`; refused when a text is longer than AMQP carries (255
/// bytes) or the headers are not in the typed form.
pub fn basic_properties(p: &Properties) -> Result<BasicProperties, String> {
    fn text(name: &str, v: &Option<String>) -> Result<Option<ShortString>, String> {
        v.as_deref()
            .map(|s| {
                ShortString::try_new(s)
                    .map_err(|_| format!("{name} is {} bytes long; AMQP carries at most {MAX_SHORT}", s.len()))
            })
            .transpose()
    }
    let mut b = BasicProperties::default();
    if let Some(v) = text("content_type", &p.content_type)? {
        b = b.with_content_type(v);
    }
    if let Some(v) = text("content_encoding", &p.content_encoding)? {
        b = b.with_content_encoding(v);
    }
    if let Some(h) = &p.headers {
        b = b.with_headers(headers_from_json(h)?);
    }
    if let Some(v) = p.delivery_mode {
        b = b.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        b = b.with_priority(v);
    }
    if let Some(v) = text("correlation_id", &p.correlation_id)? {
        b = b.with_correlation_id(v);
    }
    if let Some(v) = text("reply_to", &p.reply_to)? {
        b = b.with_reply_to(v);
    }
    if let Some(v) = text("expiration", &p.expiration)? {
        b = b.with_expiration(v);
    }
    if let Some(v) = text("message_id", &p.message_id)? {
        b = b.with_message_id(v);
    }
    if let Some(v) = p.timestamp {
        b = b.with_timestamp(v);
    }
    if let Some(v) = text("type", &p.kind)? {
        b = b.with_type(v);
    }
    if let Some(v) = text("user_id", &p.user_id)? {
        b = b.with_user_id(v);
    }
    if let Some(v) = text("app_id", &p.app_id)? {
        b = b.with_app_id(v);
    }
    if let Some(v) = text("cluster_id", &p.cluster_id)? {
        b = b.with_cluster_id(v);
    }
    Ok(b)
}

// ---------------------------------------------------------------------------------------
// Typed headers

/// Where the first NaN or infinity in `t` is, if any.
fn non_finite(t: &FieldTable, at: &str) -> Option<String> {
    fn value(v: &AMQPValue, at: String) -> Option<String> {
        match v {
            AMQPValue::Float(x) if !x.is_finite() => Some(at),
            AMQPValue::Double(x) if !x.is_finite() => Some(at),
            AMQPValue::FieldArray(a) => a
                .as_slice()
                .iter()
                .enumerate()
                .find_map(|(i, v)| value(v, format!("{at}[{i}]"))),
            AMQPValue::FieldTable(t) => non_finite(t, &at),
            _ => None,
        }
    }
    t.inner()
        .iter()
        .find_map(|(k, v)| value(v, format!("{at}.{}", shown(&Value::String(k.as_str().to_owned())))))
}

/// A header table in the typed JSON form (see the module's documentation).
pub fn headers_to_json(t: &FieldTable) -> Map<String, Value> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
        .collect()
}

/// The header table a typed JSON object stands for; refused, saying where and why, when
/// it is not in the typed form.
pub fn headers_from_json(m: &Map<String, Value>) -> Result<FieldTable, String> {
    table_from_json(m, "headers")
}

fn typed(kind: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(kind.to_owned(), v);
    Value::Object(m)
}

fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => typed("bytes", Value::String(BASE64.encode(s.as_bytes()))),
        },
        AMQPValue::ShortShortInt(n) => typed("i8", (*n).into()),
        AMQPValue::ShortShortUInt(n) => typed("u8", (*n).into()),
        AMQPValue::ShortInt(n) => typed("i16", (*n).into()),
        AMQPValue::ShortUInt(n) => typed("u16", (*n).into()),
        AMQPValue::LongInt(n) => typed("i32", (*n).into()),
        AMQPValue::LongUInt(n) => typed("u32", (*n).into()),
        AMQPValue::LongLongInt(n) => typed("i64", (*n).into()),
        AMQPValue::Float(x) => typed("f32", f32_to_json(*x)),
        AMQPValue::Double(x) => typed("f64", f64_to_json(*x)),
        AMQPValue::DecimalValue(d) => {
            let mut m = Map::new();
            m.insert("scale".into(), d.scale.into());
            m.insert("value".into(), d.value.into());
            typed("decimal", Value::Object(m))
        }
        AMQPValue::ShortString(s) => typed("shortstr", Value::String(s.as_str().to_owned())),
        AMQPValue::FieldArray(a) => typed("array", Value::Array(a.as_slice().iter().map(value_to_json).collect())),
        AMQPValue::Timestamp(t) => typed("timestamp", (*t).into()),
        AMQPValue::FieldTable(t) => typed("table", Value::Object(headers_to_json(t))),
        AMQPValue::ByteArray(b) => typed("bytearray", Value::String(BASE64.encode(b.as_slice()))),
        AMQPValue::Void => typed("void", Value::Null),
    }
}

/// What a JSON number reads back as once written as JSON text.
fn read_back(n: &Number) -> Option<f64> {
    let text = serde_json::to_string(n).ok()?;
    serde_json::from_str::<Value>(&text).ok()?.as_f64()
}

fn f64_to_json(x: f64) -> Value {
    if let Some(n) = Number::from_f64(x)
        && read_back(&n).is_some_and(|y| y.to_bits() == x.to_bits())
    {
        return Value::Number(n);
    }
    Value::String(if x.to_bits() == f64::NAN.to_bits() {
        "NaN".to_owned()
    } else if x == f64::INFINITY {
        "Infinity".to_owned()
    } else if x == f64::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        format!("0x{:016x}", x.to_bits())
    })
}

fn f32_to_json(x: f32) -> Value {
    if x.is_finite() {
        // Its shortest decimal (0.1), else its exact value (0.10000000149011612).
        let candidates = [x.to_string().parse::<f64>().ok(), Some(f64::from(x))];
        for c in candidates.into_iter().flatten() {
            if let Some(n) = Number::from_f64(c)
                && read_back(&n).is_some_and(|y| (y as f32).to_bits() == x.to_bits())
            {
                return Value::Number(n);
            }
        }
    }
    Value::String(if x.to_bits() == f32::NAN.to_bits() {
        "NaN".to_owned()
    } else if x == f32::INFINITY {
        "Infinity".to_owned()
    } else if x == f32::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        format!("0x{:08x}", x.to_bits())
    })
}

/// A float's JSON form: a number (as f64), or one of the words, or `0x` and `digits` hex
/// digits of its bits.
fn float_from_json(v: &Value, digits: usize, at: &str, kind: &str) -> Result<Result<f64, u64>, String> {
    let bad = || {
        format!(
            "{at}: {kind:?} takes a number, \"NaN\", \"Infinity\", \"-Infinity\" or \"0x\" and {digits} hex digits of its bits, not {}",
            shown(v)
        )
    };
    match v {
        Value::Number(n) => n.as_f64().map(Ok).ok_or_else(bad),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(Ok(f64::NAN)),
            "Infinity" => Ok(Ok(f64::INFINITY)),
            "-Infinity" => Ok(Ok(f64::NEG_INFINITY)),
            s => match s.strip_prefix("0x") {
                Some(hex) if hex.len() == digits && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u64::from_str_radix(hex, 16).map(Err).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        },
        _ => Err(bad()),
    }
}

/// A JSON value as an error message shows it: at most 60 characters.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn table_from_json(m: &Map<String, Value>, at: &str) -> Result<FieldTable, String> {
    let mut t = FieldTable::default();
    for (k, v) in m {
        let here = format!("{at}.{}", shown(&Value::String(k.clone())));
        let key = ShortString::try_new(k.as_str()).map_err(|_| {
            format!(
                "{here}: a header name is at most {MAX_SHORT} bytes, this one is {}",
                k.len()
            )
        })?;
        t.insert(key, value_from_json(v, &here)?);
    }
    Ok(t)
}

fn value_from_json(v: &Value, at: &str) -> Result<AMQPValue, String> {
    match v {
        Value::String(s) => Ok(AMQPValue::LongString(LongString::from(s.as_bytes()))),
        Value::Bool(b) => Ok(AMQPValue::Boolean(*b)),
        Value::Object(o) => match o.iter().next() {
            Some((kind, inner)) if o.len() == 1 => typed_from_json(kind, inner, at),
            _ => Err(format!(
                "{at}: a typed value is an object of exactly one key naming its AMQP type, not {}",
                shown(v)
            )),
        },
        Value::Number(n) => Err(format!(
            "{at}: the number {n} does not say its AMQP type (write e.g. {{\"i32\": {n}}})"
        )),
        Value::Null => Err(format!("{at}: null is no header value (write {{\"void\": null}})")),
        Value::Array(_) => Err(format!("{at}: an array is written {{\"array\": [...]}}")),
    }
}

fn integer<T: TryFrom<i128>>(v: &Value, at: &str, kind: &str) -> Result<T, String> {
    let n = match v {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("{at}: {kind:?} takes a whole number that fits {kind}, not {}", shown(v)))
}

fn base64_from_json(v: &Value, at: &str, kind: &str) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => BASE64
            .decode(s)
            .map_err(|e| format!("{at}: {kind:?} takes base64 (standard, padded): {e}")),
        _ => Err(format!("{at}: {kind:?} takes a base64 string, not {}", shown(v))),
    }
}

fn typed_from_json(kind: &str, v: &Value, at: &str) -> Result<AMQPValue, String> {
    Ok(match kind {
        "i8" => AMQPValue::ShortShortInt(integer(v, at, kind)?),
        "u8" => AMQPValue::ShortShortUInt(integer(v, at, kind)?),
        "i16" => AMQPValue::ShortInt(integer(v, at, kind)?),
        "u16" => AMQPValue::ShortUInt(integer(v, at, kind)?),
        "i32" => AMQPValue::LongInt(integer(v, at, kind)?),
        "u32" => AMQPValue::LongUInt(integer(v, at, kind)?),
        "i64" => AMQPValue::LongLongInt(integer(v, at, kind)?),
        "timestamp" => AMQPValue::Timestamp(integer::<u64>(v, at, "u64")?),
        "f32" => AMQPValue::Float(match float_from_json(v, 8, at, kind)? {
            Ok(x) => x as f32,
            Err(bits) => f32::from_bits(bits as u32),
        }),
        "f64" => AMQPValue::Double(match float_from_json(v, 16, at, kind)? {
            Ok(x) => x,
            Err(bits) => f64::from_bits(bits),
        }),
        "decimal" => {
            let fields = v.as_object().filter(|o| o.len() == 2);
            let (Some(scale), Some(value)) = (fields.and_then(|o| o.get("scale")), fields.and_then(|o| o.get("value")))
            else {
                return Err(format!(
                    "{at}: \"decimal\" takes {{\"scale\": u8, \"value\": u32}}, not {}",
                    shown(v)
                ));
            };
            AMQPValue::DecimalValue(DecimalValue {
                scale: integer(scale, &format!("{at}.scale"), "u8")?,
                value: integer(value, &format!("{at}.value"), "u32")?,
            })
        }
        "shortstr" => match v {
            Value::String(s) => AMQPValue::ShortString(ShortString::try_new(s.as_str()).map_err(|_| {
                format!(
                    "{at}: a \"shortstr\" is at most {MAX_SHORT} bytes, this one is {}",
                    s.len()
                )
            })?),
            _ => return Err(format!("{at}: \"shortstr\" takes a string, not {}", shown(v))),
        },
        "bytes" => AMQPValue::LongString(LongString::from(base64_from_json(v, at, kind)?)),
        "bytearray" => AMQPValue::ByteArray(ByteArray::from(base64_from_json(v, at, kind)?)),
        "array" => match v {
            Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| value_from_json(item, &format!("{at}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            _ => return Err(format!("{at}: \"array\" takes an array, not {}", shown(v))),
        },
        "table" => match v {
            Value::Object(m) => AMQPValue::FieldTable(table_from_json(m, at)?),
            _ => return Err(format!("{at}: \"table\" takes an object, not {}", shown(v))),
        },
        "void" => match v {
            Value::Null => AMQPValue::Void,
            _ => return Err(format!("{at}: \"void\" takes null, not {}", shown(v))),
        },
        "u64" => {
            return Err(format!(
                "{at}: AMQP (as RabbitMQ speaks it) has no \"u64\"; an unsigned 64-bit value travels as \"i64\""
            ));
        }
        other => {
            return Err(format!(
                "{at}: {} is no AMQP type (i8 u8 i16 u16 i32 u32 i64 f32 f64 decimal shortstr bytes \
                 array table timestamp void bytearray)",
                shown(&Value::String(other.to_owned()))
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Equal, floats bit for bit (NaN included).
    fn same(a: &AMQPValue, b: &AMQPValue) -> bool {
        match (a, b) {
            (AMQPValue::Float(x), AMQPValue::Float(y)) => x.to_bits() == y.to_bits(),
            (AMQPValue::Double(x), AMQPValue::Double(y)) => x.to_bits() == y.to_bits(),
            (AMQPValue::FieldArray(x), AMQPValue::FieldArray(y)) => {
                x.as_slice().len() == y.as_slice().len()
                    && x.as_slice().iter().zip(y.as_slice()).all(|(x, y)| same(x, y))
            }
            (AMQPValue::FieldTable(x), AMQPValue::FieldTable(y)) => same_table(x, y),
            (a, b) => a == b,
        }
    }

    fn same_table(a: &FieldTable, b: &FieldTable) -> bool {
        a.inner().len() == b.inner().len()
            && a.inner()
                .iter()
                .zip(b.inner())
                .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
    }

    fn scalar() -> impl Strategy<Value = AMQPValue> {
        prop_oneof![
            any::<bool>().prop_map(AMQPValue::Boolean),
            any::<i8>().prop_map(AMQPValue::ShortShortInt),
            any::<u8>().prop_map(AMQPValue::ShortShortUInt),
            any::<i16>().prop_map(AMQPValue::ShortInt),
            any::<u16>().prop_map(AMQPValue::ShortUInt),
            any::<i32>().prop_map(AMQPValue::LongInt),
            any::<u32>().prop_map(AMQPValue::LongUInt),
            any::<i64>().prop_map(AMQPValue::LongLongInt),
            any::<f32>().prop_map(AMQPValue::Float),
            any::<u32>().prop_map(|bits| AMQPValue::Float(f32::from_bits(bits))),
            any::<f64>().prop_map(AMQPValue::Double),
            any::<u64>().prop_map(|bits| AMQPValue::Double(f64::from_bits(bits))),
            (any::<u8>(), any::<u32>())
                .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
            "\\PC{0,40}".prop_map(|s| AMQPValue::ShortString(s.as_str().into())),
            any::<String>().prop_map(|s| AMQPValue::LongString(s.into())),
            vec(any::<u8>(), 0..40).prop_map(|b| AMQPValue::LongString(b.into())),
            any::<u64>().prop_map(AMQPValue::Timestamp),
            vec(any::<u8>(), 0..40).prop_map(|b| AMQPValue::ByteArray(b.into())),
            Just(AMQPValue::Void),
        ]
    }

    fn key() -> impl Strategy<Value = ShortString> {
        prop_oneof!["[a-z-]{0,12}", "\\PC{0,30}", "x{255}"].prop_map(|s: String| ShortString::from(s))
    }

    fn table_of(m: BTreeMap<ShortString, AMQPValue>) -> FieldTable {
        FieldTable::from(m)
    }

    fn value() -> impl Strategy<Value = AMQPValue> {
        scalar().prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(|v| AMQPValue::FieldArray(v.into())),
                btree_map(key(), inner, 0..6).prop_map(|m| AMQPValue::FieldTable(table_of(m))),
            ]
        })
    }

    fn table() -> impl Strategy<Value = FieldTable> {
        btree_map(key(), value(), 0..8).prop_map(table_of)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn headers_come_back_from_their_json_and_its_text_exactly(t in table()) {
            let json = headers_to_json(&t);
            let back = headers_from_json(&json).unwrap();
            prop_assert!(same_table(&back, &t), "{t:?}\n{json:?}\n{back:?}");
            let text = serde_json::to_string(&json).unwrap();
            let reread: Map<String, Value> = serde_json::from_str(&text).unwrap();
            let back = headers_from_json(&reread).unwrap();
            prop_assert!(same_table(&back, &t), "{t:?}\n{text}\n{back:?}");
            // and the JSON form is stable: written again, it is the same text
            prop_assert_eq!(serde_json::to_string(&headers_to_json(&back)).unwrap(), text);
        }

        #[test]
        fn any_json_is_refused_or_read_never_a_panic(s in "\\PC{0,60}", n in any::<i64>(), f in any::<f64>()) {
            for v in [json!({"i8": n}), json!({"u8": n}), json!({"f32": s}), json!({"f64": f}), json!({s.as_str(): n}),
                      json!({"decimal": {"scale": n, "value": n}}), json!({"bytes": s}), json!({"array": [n]}),
                      json!({"table": {"k": s}}), json!({"timestamp": n}), json!({"void": s})] {
                let mut m = Map::new();
                m.insert("h".into(), v);
                let _ = headers_from_json(&m);
            }
        }
    }

    fn one(v: Value) -> Result<AMQPValue, String> {
        let mut m = Map::new();
        m.insert("h".into(), v);
        headers_from_json(&m).map(|t| t.inner()["h"].clone())
    }

    fn json_of(v: AMQPValue) -> Value {
        let mut t = FieldTable::default();
        t.insert("h".into(), v);
        headers_to_json(&t)["h"].clone()
    }

    #[test]
    fn each_type_has_its_json_form() {
        assert_eq!(json_of(AMQPValue::LongString("héllo".into())), json!("héllo"));
        assert_eq!(
            json_of(AMQPValue::LongString(vec![0xff, 0].into())),
            json!({"bytes": "/wA="})
        );
        assert_eq!(json_of(AMQPValue::Boolean(true)), json!(true));
        assert_eq!(json_of(AMQPValue::ShortShortInt(-3)), json!({"i8": -3}));
        assert_eq!(json_of(AMQPValue::LongLongInt(i64::MIN)), json!({"i64": i64::MIN}));
        assert_eq!(json_of(AMQPValue::Float(0.1)), json!({"f32": 0.1}));
        assert_eq!(json_of(AMQPValue::Double(0.1)), json!({"f64": 0.1}));
        assert_eq!(json_of(AMQPValue::Double(f64::NAN)), json!({"f64": "NaN"}));
        assert_eq!(
            json_of(AMQPValue::Float(f32::NEG_INFINITY)),
            json!({"f32": "-Infinity"})
        );
        assert_eq!(
            json_of(AMQPValue::Double(f64::from_bits(0x7ff8_0000_0000_0001))),
            json!({"f64": "0x7ff8000000000001"})
        );
        assert_eq!(
            json_of(AMQPValue::Float(f32::from_bits(0xffc0_0000))),
            json!({"f32": "0xffc00000"})
        );
        assert_eq!(
            json_of(AMQPValue::DecimalValue(DecimalValue { scale: 2, value: 12345 })),
            json!({"decimal": {"scale": 2, "value": 12345}})
        );
        assert_eq!(json_of(AMQPValue::ShortString("s".into())), json!({"shortstr": "s"}));
        assert_eq!(
            json_of(AMQPValue::Timestamp(1_700_000_000)),
            json!({"timestamp": 1_700_000_000u64})
        );
        assert_eq!(json_of(AMQPValue::Void), json!({"void": null}));
        assert_eq!(
            json_of(AMQPValue::ByteArray(vec![1, 2].into())),
            json!({"bytearray": "AQI="})
        );
        // -0.0 keeps its sign, through text too
        let neg = json_of(AMQPValue::Double(-0.0));
        let reread: Value = serde_json::from_str(&neg.to_string()).unwrap();
        assert!(matches!(one(reread).unwrap(), AMQPValue::Double(x) if x.to_bits() == (-0.0f64).to_bits()));
    }

    #[test]
    fn x_death_an_array_of_tables_comes_back() {
        let death = json!({
            "x-death": {"array": [{"table": {
                "count": {"i64": 3},
                "reason": "expired",
                "queue": "q/with %",
                "time": {"timestamp": 1_767_225_600u64},
                "exchange": "",
                "routing-keys": {"array": ["q/with %"]},
                "original-expiration": "1000",
            }}]},
            "x-first-death-reason": "expired",
        });
        let m = death.as_object().unwrap().clone();
        let t = headers_from_json(&m).unwrap();
        let AMQPValue::FieldArray(a) = &t.inner()["x-death"] else {
            panic!("x-death is an array: {t:?}")
        };
        assert!(
            matches!(&a.as_slice()[0], AMQPValue::FieldTable(d) if d.inner()["count"] == AMQPValue::LongLongInt(3))
        );
        assert_eq!(headers_to_json(&t), m);
    }

    #[test]
    fn malformed_typed_json_is_refused_with_a_message() {
        let cases = [
            (json!({"i8": 300}), "fits i8"),
            (json!({"u8": -1}), "fits u8"),
            (json!({"i32": 1.5}), "whole number"),
            (json!({"nope": 1}), "no AMQP type"),
            (json!({"u64": 1}), "no \"u64\""),
            (json!({"i8": 1, "u8": 2}), "exactly one key"),
            (json!({}), "exactly one key"),
            (json!(7), "does not say its AMQP type"),
            (json!(null), "void"),
            (json!([1]), "array"),
            (json!({"decimal": {"scale": 1}}), "decimal"),
            (json!({"decimal": {"scale": 256, "value": 1}}), "\"h\".scale"),
            (json!({"bytes": "!!"}), "base64"),
            (json!({"bytearray": 5}), "base64"),
            (json!({"f64": "0x12"}), "hex digits"),
            (json!({"f32": "nan"}), "NaN"),
            (json!({"f64": true}), "number"),
            (json!({"void": 1}), "null"),
            (json!({"shortstr": "x".repeat(256)}), "at most 255"),
            (json!({"timestamp": -1}), "u64"),
            (json!({"array": [true, {"i8": 999}]}), "\"h\"[1]"),
            (json!({"table": {"inner": {"array": [{"x": 1}]}}}), "\"h\".\"inner\"[0]"),
        ];
        for (v, says) in cases {
            let e = one(v.clone()).expect_err(&format!("{v} is refused"));
            assert!(e.contains(says), "{v}: {e:?} says {says:?}");
            assert!(e.starts_with("headers."), "{e}");
        }
        let mut m = Map::new();
        m.insert("k".repeat(256), json!("v"));
        assert!(headers_from_json(&m).unwrap_err().contains("at most 255 bytes"));
        // a bare array inside an array is refused too (an array is always {"array": [...]})
        assert!(one(json!({"array": [[1]]})).unwrap_err().contains("\"h\"[0]"));
    }

    fn every_property() -> Properties {
        let headers = json!({
            "text": "t", "flag": false, "n": {"i32": -5}, "f": {"f64": "NaN"},
            "x-death": {"array": [{"table": {"count": {"i64": 1}, "reason": "rejected"}}]},
        });
        Properties {
            content_type: Some("application/json".into()),
            content_encoding: Some("gzip".into()),
            headers: Some(headers.as_object().unwrap().clone()),
            delivery_mode: Some(2),
            priority: Some(7),
            correlation_id: Some("corr-😀".into()),
            reply_to: Some("amq.rabbitmq.reply-to".into()),
            expiration: Some("60000".into()),
            message_id: Some("m-1".into()),
            timestamp: Some(1_767_225_600),
            kind: Some("order.created".into()),
            user_id: Some("guest".into()),
            app_id: Some("shop".into()),
            cluster_id: Some("c1".into()),
        }
    }

    #[test]
    fn every_property_comes_back() {
        let p = every_property();
        let b = basic_properties(&p).unwrap();
        assert_eq!(b.kind().as_ref().map(|s| s.as_str()), Some("order.created"));
        assert_eq!(properties_of(&b), p);
        assert_eq!(properties_of(&BasicProperties::default()), Properties::default());
        assert_eq!(
            properties_of(&basic_properties(&Properties::default()).unwrap()),
            Properties::default()
        );
    }

    #[test]
    fn a_property_too_long_or_bad_headers_are_refused() {
        let mut p = every_property();
        p.message_id = Some("m".repeat(256));
        assert!(basic_properties(&p).unwrap_err().contains("message_id is 256 bytes"));
        let mut p = every_property();
        p.headers = Some(json!({"h": 1}).as_object().unwrap().clone());
        assert!(basic_properties(&p).unwrap_err().contains("headers.\"h\""));
    }

    #[test]
    fn the_uri_keeps_the_credentials_and_options_and_takes_the_vhost_as_it_is() {
        let a = Amqp::new("amqps://us%40er:p%40ss%2Fw@rabbit.example:5673/%2f?heartbeat=7&frame_max=8192");
        let vhost = "a/b %2f 😀 ";
        let u = a.uri(vhost).unwrap();
        assert_eq!(u.vhost, vhost);
        assert_eq!(u.authority.host, "rabbit.example");
        assert_eq!(u.authority.port, 5673);
        assert_eq!(u.authority.userinfo.username, "us@er");
        assert_eq!(u.authority.userinfo.password, "p@ss/w");
        assert_eq!(u.query.heartbeat, Some(7));
        assert_eq!(u.query.frame_max, Some(8192));
        assert_eq!(u.scheme, lapin::uri::AMQPScheme::AMQPS);
        assert_eq!(
            Amqp::new("amqp://g:g@127.0.0.1/").uri("v").unwrap().authority.host,
            "127.0.0.1"
        );
        assert_eq!(
            Amqp::new("amqp://g:g@[::1]:5672/").uri("v").unwrap().authority.host,
            "::1"
        );
        assert_eq!(
            Amqp::new("amqp://g:g@h/").uri(&"é".repeat(127)).unwrap().vhost.len(),
            254
        );
        assert!(matches!(
            Amqp::new("amqp://g:g@h/").uri(&"x".repeat(256)),
            Err(AmqpError::Config(_))
        ));
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        for url in [
            "http://u:sekrit@h/",
            "amqp://u:sekrit@h:99999/",
            "sekrit",
            "amqp://u:sekrit@h/?heartbeat=soon",
            "amqp://u:sekrit@/x",
        ] {
            let e = Amqp::new(url).uri("v").expect_err(url);
            assert!(!e.to_string().contains("sekrit"), "{url}: {e}");
            assert!(!format!("{e:?}").contains("sekrit"), "{url}: {e:?}");
        }
        assert_eq!(format!("{:?}", Amqp::new("amqp://u:sekrit@h/")), "Amqp(***)");
        let e = scrub(AmqpError::Broker("failed for amqp://u:sekrit@h".into()), "sekrit");
        assert!(!e.to_string().contains("sekrit"));
    }

    #[test]
    fn a_delivery_is_taken_whole() {
        let mut d = Delivery::mock(9, "ex/a".into(), "rk".into(), true, vec![0xff, 0, 1]);
        d.properties = basic_properties(&every_property()).unwrap();
        let t = taken(&d);
        assert_eq!(
            (t.exchange.as_str(), t.routing_key.as_str(), t.redelivered),
            ("ex/a", "rk", true)
        );
        assert_eq!(t.body, vec![0xff, 0, 1]);
        assert_eq!(t.properties, every_property());
    }
}
