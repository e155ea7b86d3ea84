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
        About::QueueDeleted { queue, depth, del_size } => {
            deleted(queue, *depth, *del_size, &link(public_url, &queue.path()))
        }
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

fn deleted(q: &QueueRef, depth: Depth, del_size: u64, link: &str) -> Text {
    Text {
        subject: format!("Pulse warning: queue \"{}\" has been deleted", q.name),
        body: format!(
            "Your queue has been deleted because it held more than {del_size} messages, the deletion size \
             on this broker. Its messages are gone; clients that declare it again get a new, empty queue.\n\n\
             {}Deletion size: {del_size}\n\n{ADVICE}\n\nThe queue's history: {link}\n",
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
            deleted(&q, d, 8000, &link).subject,
            "Pulse warning: queue \"queue/alice/jobs\" has been deleted"
        );
        assert_eq!(sign_in("x", 30).subject, "PulseGuardian sign-in link");
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
}
