//! The event log as CSV or NDJSON (the exported form of CONTRACT.md), oldest first, up
//! to the head read when the export began. One flow for the command line and the web:
//! a stream of chunks that ends with an error, never with a silently shortened file,
//! when a row cannot be read or encoded.

use bytes::Bytes;
use futures::Stream;
use sea_orm::{DatabaseConnection, DbErr};

use super::store::{self, Anchor, EventFilter, StoredEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("event {seq}: its payload is not JSON as stored ({error})")]
    Payload { seq: i64, error: String },
    #[error("encoding: {0}")]
    Encode(String),
}

/// The CSV columns: the exported fields of CONTRACT.md, then the correlation.
pub const CSV_HEADER: [&str; 13] = [
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
    "correlation_id",
    "causation_id",
];

/// One exported event as JSON: the payload exactly as stored (and hashed), not upcast,
/// so the export can be checked against the hashes.
pub fn json(e: &StoredEvent) -> Result<serde_json::Value, ExportError> {
    let payload: serde_json::Value = serde_json::from_str(&e.payload).map_err(|err| ExportError::Payload {
        seq: e.seq,
        error: err.to_string(),
    })?;
    Ok(serde_json::json!({
        "seq": e.seq,
        "id": e.id,
        "stream": e.stream,
        "version": e.version,
        "kind": e.kind,
        "schema": e.schema,
        "actor": e.actor,
        "occurred_at": e.occurred_at,
        "payload": payload,
        "hash": e.hash,
        "prev_hash": e.prev_hash,
        "correlation_id": e.correlation_id,
        "causation_id": e.causation_id,
    }))
}

/// The bytes that open an export (the CSV header line; nothing for NDJSON).
pub fn opening(format: Format) -> Result<Vec<u8>, ExportError> {
    match format {
        Format::Ndjson => Ok(Vec::new()),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_HEADER)
                .map_err(|e| ExportError::Encode(e.to_string()))?;
            w.into_inner().map_err(|e| ExportError::Encode(e.to_string()))
        }
    }
}

/// Events encoded one after the other.
pub fn encode(format: Format, events: &[StoredEvent]) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::new();
    match format {
        Format::Ndjson => {
            for e in events {
                serde_json::to_writer(&mut out, &json(e)?).map_err(|e| ExportError::Encode(e.to_string()))?;
                out.push(b'\n');
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for e in events {
                let record = [
                    e.seq.to_string(),
                    e.id.clone(),
                    e.stream.clone(),
                    e.version.to_string(),
                    e.kind.clone(),
                    e.schema.to_string(),
                    e.actor.clone(),
                    e.occurred_at.clone(),
                    e.payload.clone(),
                    e.hash.clone(),
                    e.prev_hash.clone(),
                    e.correlation_id.clone().unwrap_or_default(),
                    e.causation_id.clone().unwrap_or_default(),
                ];
                w.write_record(record).map_err(|e| ExportError::Encode(e.to_string()))?;
            }
            w.flush().map_err(|e| ExportError::Encode(e.to_string()))?;
        }
    }
    Ok(out)
}

/// Events exported per page (one database read each).
const PAGE: u64 = 2000;

/// The export of the events `filter` selects after `after`, up to `head` (read by the
/// caller when the export began, and given with it as its anchor): the opening, then
/// one chunk per page.
pub fn stream(
    db: DatabaseConnection,
    filter: EventFilter,
    after: i64,
    head: Anchor,
    format: Format,
) -> impl Stream<Item = Result<Bytes, ExportError>> + Send {
    let opening = futures::stream::once(async move { opening(format).map(Bytes::from) });
    let pages = futures::stream::try_unfold(Some(after), move |position| {
        let db = db.clone();
        let filter = filter.clone();
        let until = head.seq;
        async move {
            let Some(position) = position else { return Ok(None) };
            let page = store::select(&db, &filter, store::Order::Oldest { after: position, until }, PAGE).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                return Ok(None);
            };
            let next = (page.len() as u64 == PAGE).then_some(last);
            Ok(Some((Bytes::from(encode(format, &page)?), next)))
        }
    });
    futures::StreamExt::chain(opening, pages)
}
