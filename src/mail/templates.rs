//! Email texts. Subjects are exact (CONTRACT.md); queue emails state the queue, its
//! vhost, the message counts, the thresholds and a link to the queue's page.

use chrono::{DateTime, Utc};

use crate::domain::alarms::{self, Forecast, Limits};
use crate::domain::event::DeleteReason;
use crate::domain::notice::About;
use crate::domain::{Depth, QueueRef};

/// A subject and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

/// A link to a path of the site at `public_url`.
fn link(public_url: &str, path: &str) -> String {
    format!("{}{path}", public_url.trim_end_matches('/'))
}

/// The words of an email the deciders asked for; links lead to `public_url`.
pub fn render(about: &About, public_url: &str) -> Text {
    match about {
        About::QueueWarning {
            queue,
            depth,
            warn_size,
            del_size,
            unbounded,
            forecast,
            now,
        } => {
            let mut t = warning(
                queue,
                *depth,
                *warn_size,
                *del_size,
                *unbounded,
                &link(public_url, &queue.path()),
            );
            t.body = with_outlook(&t.body, *forecast, *now);
            t
        }
        About::QueueReminded {
            queue,
            depth,
            warn_size,
            del_size,
            unbounded,
            since,
            forecast,
            now,
            every,
        } => reminded(
            queue,
            *depth,
            (*warn_size, *del_size, *unbounded),
            (*since, *forecast, *now, *every),
            &link(public_url, &queue.path()),
        ),
        About::QueueUnconsumed {
            queue,
            depth,
            minutes,
            idle_since,
        } => unconsumed(queue, *depth, *minutes, *idle_since, &link(public_url, &queue.path())),
        About::QueueConsumed { queue, consumers } => consumed(queue, *consumers, &link(public_url, &queue.path())),
        About::QueueUnused {
            queue,
            days,
            last_used,
            delete_on,
        } => unused(queue, *days, *last_used, *delete_on, &link(public_url, &queue.path())),
        About::QueueOverflowing {
            queue,
            depth,
            limits,
            bytes,
        } => overflowing(queue, *depth, limits, *bytes, &link(public_url, &queue.path())),
        About::QueueRecovered {
            queue,
            depth,
            warn_size,
        } => recovered(queue, *depth, *warn_size, &link(public_url, &queue.path())),
        About::QueueDeleted {
            queue,
            depth,
            del_size,
            archived,
            reason: DeleteReason::Size,
        } => deleted(queue, *depth, *del_size, *archived, &link(public_url, &queue.path())),
        About::QueueDeleted {
            queue,
            depth,
            archived,
            reason: DeleteReason::Unused,
            ..
        } => deleted_unused(queue, *depth, *archived, &link(public_url, &queue.path())),
        About::ArchiveStarted {
            queue,
            depth,
            archive_size,
            max_archive,
            consumers,
            when_idle,
        } => archiving(
            queue,
            *depth,
            (*archive_size, *max_archive),
            (*consumers, *when_idle),
            &link(public_url, &queue.path()),
        ),
        About::BrokerUnreachable { error } => broker_unreachable(error, &link(public_url, "/queues")),
        About::StreamUnbounded { queue } => stream_unbounded(queue, &link(public_url, &queue.path())),
        About::OwnerAdded { account, by } => owner_added(account, by, &link(public_url, "/accounts")),
    }
}

fn facts(q: &QueueRef, depth: Depth) -> String {
    format!(
        "Queue:    {}\nVhost:    {}\nMessages: {} ({} ready, {} unacknowledged)\n",
        q.name, q.vhost, depth.messages, depth.ready, depth.unacked
    )
}

const ADVICE: &str = "Please check that the consumers of this queue are running and keeping up, and \
delete durable queues that nothing reads any more.";

fn warning(q: &QueueRef, depth: Depth, warn_size: u64, del_size: u64, unbounded: bool, link: &str) -> Text {
    let fate = if unbounded {
        "This queue is unbounded: it will not be deleted automatically.".to_owned()
    } else {
        format!("It will be deleted automatically when it holds more than {del_size} messages.")
    };
    Text {
        subject: format!("Pulse warning: queue \"{}\" is overgrowing", q.name),
        body: format!(
            "Your queue holds more than {warn_size} messages, the warning size on this broker.\n\n{}\
             Warning size:  {warn_size}\nDeletion size: {}\n\n{fate}\n\n{ADVICE}\n\nSee the queue: {link}\n",
            facts(q, depth),
            if unbounded {
                "none (unbounded)".to_owned()
            } else {
                del_size.to_string()
            },
        ),
    }
}

/// The forecast, in words: "At +40/min it reaches the deletion size in about 2 h
/// (around 14:05 UTC)."
fn outlook(forecast: Option<Forecast>, now: DateTime<Utc>) -> Option<String> {
    let f = forecast?;
    let rate = alarms::describe_rate(f.per_minute);
    Some(match f.delete_at {
        Some(at) => format!(
            "Growing at {rate} over the last 15 minutes: at that rate it passes the deletion size in {} \
             (around {} UTC) and is deleted.",
            alarms::describe_in(now, at),
            at.format("%Y-%m-%d %H:%M")
        ),
        None => format!("Growing at {rate} over the last 15 minutes."),
    })
}

/// A body with the forecast after the counts.
fn with_outlook(body: &str, forecast: Option<Forecast>, now: DateTime<Utc>) -> String {
    match outlook(forecast, now) {
        Some(line) => body.replacen("\n\n", &format!("\n\n{line}\n\n"), 1),
        None => body.to_owned(),
    }
}

type Sizes = (u64, u64, bool);
type Reminder = (Option<DateTime<Utc>>, Option<Forecast>, DateTime<Utc>, u32);

fn reminded(q: &QueueRef, depth: Depth, sizes: Sizes, r: Reminder, link: &str) -> Text {
    let (warn_size, del_size, unbounded) = sizes;
    let (since, forecast, now, every) = r;
    let how_long = since
        .map(|t| format!(" for {}", alarms::describe_in(t, now).trim_start_matches("about ")))
        .unwrap_or_default();
    let fate = if unbounded {
        "This queue is unbounded: it will not be deleted automatically.".to_owned()
    } else {
        format!("It will be deleted automatically when it holds more than {del_size} messages.")
    };
    let outlook = outlook(forecast, now).map(|l| format!("{l}\n\n")).unwrap_or_default();
    Text {
        subject: format!("Pulse reminder: queue \"{}\" is still overgrowing", q.name),
        body: format!(
            "Your queue has held more than {warn_size} messages, the warning size,{how_long}.\n\n{outlook}{}\
             Warning size:  {warn_size}\nDeletion size: {}\n\n{fate}\n\nThis reminder comes every {every} hours \
             while the queue stays above the warning size; its owners can switch reminders off on the queue's \
             page.\n\n{ADVICE}\n\nSee the queue: {link}\n",
            facts(q, depth),
            if unbounded {
                "none (unbounded)".to_owned()
            } else {
                del_size.to_string()
            },
        ),
    }
}

fn unconsumed(q: &QueueRef, depth: Depth, minutes: u32, idle_since: DateTime<Utc>, link: &str) -> Text {
    Text {
        subject: format!("Pulse warning: queue \"{}\" has no consumers", q.name),
        body: format!(
            "Your queue holds messages and has had no consumer for {minutes} minutes or more (since {} UTC): \
             nothing reads it, so it only grows.\n\n{}\nYou will hear again when a consumer is back.\n\n\
             {ADVICE}\n\nSee the queue: {link}\n",
            idle_since.format("%Y-%m-%d %H:%M"),
            facts(q, depth)
        ),
    }
}

fn consumed(q: &QueueRef, consumers: u64, link: &str) -> Text {
    Text {
        subject: format!("Pulse warning: queue \"{}\" has consumers again", q.name),
        body: format!(
            "Your queue has {consumers} consumer(s) again.\n\nQueue: {}\nVhost: {}\n\nSee the queue: {link}\n",
            q.name, q.vhost
        ),
    }
}

fn unused(q: &QueueRef, days: u32, last_used: DateTime<Utc>, delete_on: DateTime<Utc>, link: &str) -> Text {
    let on = delete_on.format("%Y-%m-%d");
    Text {
        subject: format!(
            "Pulse warning: queue \"{}\" is unused and will be deleted on {on}",
            q.name
        ),
        body: format!(
            "Your queue has had no consumer and nothing read from it for {days} days or more (last used {} UTC). \
             Unused queues are deleted on this broker: it will be deleted on {on} unless something consumes it \
             before then.\n\nQueue: {}\nVhost: {}\n\nTo keep it, connect a consumer. To be rid of it sooner, \
             delete it from its page.\n\nSee the queue: {link}\n",
            last_used.format("%Y-%m-%d %H:%M"),
            q.name,
            q.vhost
        ),
    }
}

fn overflowing(q: &QueueRef, depth: Depth, limits: &Limits, bytes: Option<u64>, link: &str) -> Text {
    let mut limit = Vec::new();
    if let Some(n) = limits.max_length {
        limit.push(format!("{n} messages (x-max-length)"));
    }
    if let Some(b) = limits.max_bytes {
        limit.push(format!("{b} bytes (x-max-length-bytes)"));
    }
    let behaviour = limits.overflow.unwrap_or_default();
    let held = bytes.map(|b| format!("Bytes:    {b}\n")).unwrap_or_default();
    Text {
        subject: format!("Pulse warning: queue \"{}\" is dropping messages", q.name),
        body: format!(
            "Your queue is at its length limit of {}: while it stays there it {} (overflow: {}), and nobody \
             is told about each one.\n\n{}{held}\nThe limit comes from the queue's arguments or a policy. \
             Make the consumers keep up, or raise the limit if the messages matter.\n\nSee the queue: {link}\n",
            limit.join(" and "),
            behaviour.describe(),
            serde_json::to_value(behaviour)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            facts(q, depth),
        ),
    }
}

fn deleted_unused(q: &QueueRef, depth: Depth, archived: u64, link: &str) -> Text {
    let saved = if archived > 0 {
        format!("Its {archived} archived messages can still be downloaded from the queue's page.\n\n")
    } else {
        String::new()
    };
    Text {
        subject: format!("Pulse warning: queue \"{}\" has been deleted", q.name),
        body: format!(
            "Your queue has been deleted because it stayed unused through the grace period announced \
             earlier: no consumer, nothing read.\n\n{saved}{}\nThe queue's history: {link}\n",
            facts(q, depth)
        ),
    }
}

fn recovered(q: &QueueRef, depth: Depth, warn_size: u64, link: &str) -> Text {
    Text {
        subject: format!("Pulse warning: queue \"{}\" is back to normal", q.name),
        body: format!(
            "Your queue is back at or below the warning size of {warn_size} messages.\n\n{}\nSee the queue: {link}\n",
            facts(q, depth)
        ),
    }
}

fn deleted(q: &QueueRef, depth: Depth, del_size: u64, archived: u64, link: &str) -> Text {
    let saved = if archived > 0 {
        format!(
            "Before that, its {archived} oldest messages of this excursion were archived: you can download them, \
             or publish them back into a new queue of that name, from the queue's page.\n\n"
        )
    } else {
        String::new()
    };
    Text {
        subject: format!("Pulse warning: queue \"{}\" has been deleted", q.name),
        body: format!(
            "Your queue has been deleted because it held more than {del_size} messages, the deletion size \
             on this broker. The messages it held are gone; clients that declare it again get a new, empty \
             queue.\n\n{saved}{}Deletion size: {del_size}\n\n{ADVICE}\n\nThe queue's history: {link}\n",
            facts(q, depth)
        ),
    }
}

fn archiving(q: &QueueRef, depth: Depth, sizes: (u64, u64), others: (Option<u64>, bool), link: &str) -> Text {
    let (archive_size, max_archive) = sizes;
    let beside = match others {
        (_, true) => "It is archived only while nothing else consumes it: a consumer coming back stops it.".to_owned(),
        (Some(0), false) => "Nothing consumes it at the moment.".to_owned(),
        (Some(n), false) => format!(
            "It has {n} consumer(s): the archived messages are the ones they would have received next. \
             You can publish them back into the queue from its page."
        ),
        (None, false) => "Any consumer it has may find the oldest messages gone to the archive.".to_owned(),
    };
    Text {
        subject: format!("Pulse warning: queue \"{}\" is being archived", q.name),
        body: format!(
            "Your queue holds more than {archive_size} messages, the archive size on this broker. To keep the \
             broker up, the guardian moves its oldest messages to the archive until it is back at \
             {archive_size}; no message is lost, and each is stored before the broker forgets it.\n\n{}\
             Archive size: {archive_size}\nMost archived in one excursion: {max_archive}\n\n{beside}\n\n\
             After {max_archive} messages the guardian stops archiving and the queue grows toward the deletion \
             size again.\n\n{ADVICE}\n\nDownload or re-publish the archive: {link}\n",
            facts(q, depth)
        ),
    }
}

fn stream_unbounded(q: &QueueRef, link: &str) -> Text {
    Text {
        subject: format!("Pulse warning: stream \"{}\" has no retention limit", q.name),
        body: format!(
            "Your stream has no retention limit: neither x-max-length-bytes nor x-max-age, as an argument \
             or from a policy. Reading a stream does not remove anything from it, so it keeps every message \
             until the broker's disk is full.\n\nStream:   {}\nVhost:    {}\n\nThe guardian never deletes a \
             stream for its size, and tells you this once. Declare it again with a retention limit (for \
             example x-max-age: 7D), or ask an admin for a policy.\n\nSee the stream: {link}\n",
            q.name, q.vhost
        ),
    }
}

fn broker_unreachable(error: &str, link: &str) -> Text {
    Text {
        subject: "PulseGuardian error: cannot reach RabbitMQ".to_owned(),
        body: format!(
            "The guardian cannot read the broker's queues, so it guards nothing until the broker answers \
             again. It keeps trying, less often the longer the outage lasts, and records the recovery.\n\n\
             Error: {error}\n\nStatus: {link}\n"
        ),
    }
}

pub fn sign_in(link: &str, minutes: i64) -> Text {
    Text {
        subject: "PulseGuardian sign-in link".to_owned(),
        body: format!(
            "Open this link to sign in to PulseGuardian. It works once, for {minutes} minutes:\n\n{link}\n\n\
             If you did not ask to sign in, ignore this email: nothing happens without the link.\n"
        ),
    }
}

fn owner_added(account: &str, by: &str, link: &str) -> Text {
    Text {
        subject: format!("PulseGuardian: you are now an owner of the RabbitMQ account \"{account}\""),
        body: format!(
            "{by} made you an owner of the RabbitMQ account \"{account}\". You will receive the guardian's \
             emails about its queues (once your address is verified by signing in).\n\nThe account: {link}\n"
        ),
    }
}

/// The email that asks a new extra recipient to confirm (sent directly: the link is a
/// secret).
pub fn confirm_recipient(account: &str, by: &str, link: &str, days: i64) -> Text {
    Text {
        subject: format!("PulseGuardian: confirm that you want alerts about {account}"),
        body: format!(
            "{by} asked PulseGuardian to send you the guardian's alarms about the queues of the RabbitMQ \
             account \"{account}\" (a queue overgrowing, deleted, without consumers, ...).\n\n\
             To receive them, open this link within {days} days and press the button:\n\n{link}\n\n\
             If you do not want them, ignore this email: nothing is sent to you without your confirmation.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_the_contract_ones() {
        let q = QueueRef::new("/", "queue/alice/jobs");
        let d = Depth::of(2400, 100);
        let link = link("http://pg.example/", &q.path());
        assert_eq!(link, "http://pg.example/queues/%2F/queue%2Falice%2Fjobs");
        assert_eq!(
            warning(&q, d, 2000, 8000, false, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" is overgrowing"
        );
        assert_eq!(
            recovered(&q, d, 2000, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" is back to normal"
        );
        assert_eq!(
            deleted(&q, d, 8000, 0, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" has been deleted"
        );
        assert_eq!(
            archiving(&q, d, (5000, 100_000), (Some(0), false), &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" is being archived"
        );
        assert_eq!(sign_in("x", 30).subject, "PulseGuardian sign-in link");
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            reminded(&q, d, (2000, 8000, false), (Some(now), None, now, 24), &link).subject,
            "Pulse reminder: queue \"queue/alice/jobs\" is still overgrowing"
        );
        assert_eq!(
            unconsumed(&q, d, 60, now, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" has no consumers"
        );
        assert_eq!(
            consumed(&q, 1, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" has consumers again"
        );
        assert_eq!(
            unused(&q, 30, now, now + chrono::Duration::days(7), &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" is unused and will be deleted on 2026-12-08"
        );
        assert_eq!(
            overflowing(&q, d, &Limits::default(), None, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" is dropping messages"
        );
        assert_eq!(
            deleted_unused(&q, d, 0, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" has been deleted"
        );
    }

    #[test]
    fn the_warning_says_when_the_queue_will_be_deleted_at_its_growth() {
        let q = QueueRef::new("/", "queue/alice/jobs");
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let f = alarms::forecast(Some(40.0), 2500, 8000, false, now);
        let about = About::QueueWarning {
            queue: q.clone(),
            depth: Depth::of(2500, 0),
            warn_size: 2000,
            del_size: 8000,
            unbounded: false,
            forecast: f,
            now,
        };
        let body = render(&about, "http://pg").body;
        assert!(
            body.contains("Growing at +40/min") && body.contains("about 2 h"),
            "{body}"
        );
        assert!(body.contains("around 2026-12-01 14:17 UTC"), "{body}");
    }

    #[test]
    fn the_overflow_email_names_the_limit_and_the_behaviour() {
        let q = QueueRef::new("/", "queue/alice/jobs");
        let limits = Limits {
            max_length: Some(100),
            max_bytes: None,
            overflow: Some(alarms::Overflow::RejectPublish),
            max_age: None,
        };
        let body = overflowing(&q, Depth::of(100, 0), &limits, None, "L").body;
        assert!(body.contains("100 messages (x-max-length)"), "{body}");
        assert!(
            body.contains("rejects new messages (overflow: reject-publish)"),
            "{body}"
        );
    }

    #[test]
    fn the_confirmation_subject_is_the_contract_one() {
        assert_eq!(
            confirm_recipient("alice", "ann@x.org", "L", 7).subject,
            "PulseGuardian: confirm that you want alerts about alice"
        );
    }

    #[test]
    fn warning_states_counts_thresholds_and_fate() {
        let q = QueueRef::new("v1", "queue/alice/jobs");
        let d = Depth::of(2400, 100);
        let t = warning(&q, d, 2000, 8000, false, "L");
        for part in [
            "queue/alice/jobs",
            "v1",
            "2500 (2400 ready, 100 unacknowledged)",
            "2000",
            "8000",
            "deleted automatically",
            "L",
        ] {
            assert!(t.body.contains(part), "{part} missing from {}", t.body);
        }
        let u = warning(&q, d, 2000, 8000, true, "L");
        assert!(u.body.contains("will not be deleted automatically"));
        assert!(!u.body.contains("when it holds more than"));
    }

    #[test]
    fn the_deletion_email_says_what_was_archived_and_the_archiving_one_who_consumed() {
        let q = QueueRef::new("/", "queue/alice/jobs");
        let d = Depth::of(9000, 0);
        assert!(deleted(&q, d, 8000, 1234, "L").body.contains("1234 oldest messages"));
        assert!(!deleted(&q, d, 8000, 0, "L").body.contains("archived"));
        let beside = archiving(&q, d, (5000, 100_000), (Some(2), false), "L").body;
        assert!(beside.contains("2 consumer(s)") && beside.contains("would have received next"));
        let idle = archiving(&q, d, (5000, 100_000), (Some(0), true), "L").body;
        assert!(idle.contains("only while nothing else consumes it"));
    }
}
