//! Email texts. Subjects are exact (CONTRACT.md); queue emails state the queue, its
//! vhost, the message counts, the thresholds and a link to the queue's page.

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
        } => warning(
            queue,
            *depth,
            *warn_size,
            *del_size,
            *unbounded,
            &link(public_url, &queue.path()),
        ),
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
        } => deleted(queue, *depth, *del_size, *archived, &link(public_url, &queue.path())),
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
