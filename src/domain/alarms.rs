//! Alarms besides the depth, as pure decisions: the growth forecast, queues without
//! consumers, unused queues, queues at their length limit, reminders and the debounce of
//! the warning. The planner (`super::plan`) turns them into events and emails.
//!
//! - **Forecast.** The growth rate is the least-squares slope of the depth samples of the
//!   last 15 minutes (with the depth seen now). There is none from fewer than three
//!   samples, over less than five minutes, across a gap of more than five minutes, when
//!   the depth went down at the end, or when it is not growing: no forecast rather than
//!   a wrong one. The deletion is forecast when the queue will pass its deletion size at
//!   that rate; never for an unbounded queue.
//! - **Episodes.** Unconsumed, unused and overflowing are episodes: each starts once (one
//!   email) and ends once. An overflow ends only when the queue is back under 90% of its
//!   limit, so a queue held at its limit by a consumer does not flap; a new overflow
//!   within the cool-down is recorded, not emailed.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How far back the forecast looks.
pub const FORECAST_WINDOW_SECS: i64 = 15 * 60;
/// The shortest span of samples a forecast is made from.
const FORECAST_MIN_SPAN_SECS: i64 = 5 * 60;
/// A longer gap between two samples of a growing queue means the guardian did not see it.
const FORECAST_MAX_GAP_SECS: i64 = 5 * 60;
/// The share of its limit a queue must fall under to end an overflow.
pub const OVERFLOW_END_PERCENT: u64 = 90;

/// A growth rate and when it takes the queue past its deletion size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Messages per minute (positive: only growth is forecast).
    pub per_minute: f64,
    /// When the queue passes its deletion size at that rate; `None` for an unbounded
    /// queue, or one already past it.
    pub delete_at: Option<DateTime<Utc>>,
}

/// The growth per minute of a queue from its samples `(unix seconds, messages)`, oldest
/// first, the last one being the depth seen `now`.
pub fn growth(points: &[(i64, u64)], now: i64) -> Option<f64> {
    let window: Vec<(i64, u64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= now - FORECAST_WINDOW_SECS && *t <= now)
        .collect();
    if window.len() < 3 {
        return None;
    }
    let (first, last) = (window[0], window[window.len() - 1]);
    if last.0 - first.0 < FORECAST_MIN_SPAN_SECS {
        return None;
    }
    if window
        .windows(2)
        .any(|w| w[1].0 - w[0].0 > FORECAST_MAX_GAP_SECS || w[1].0 <= w[0].0)
    {
        return None;
    }
    let before_last = window[window.len() - 2];
    if last.1 < before_last.1 || last.1 <= first.1 {
        return None;
    }
    let n = window.len() as f64;
    let mean_t = window.iter().map(|(t, _)| (*t - first.0) as f64).sum::<f64>() / n;
    let mean_m = window.iter().map(|(_, m)| *m as f64).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (t, m) in &window {
        let dt = (*t - first.0) as f64 - mean_t;
        cov += dt * (*m as f64 - mean_m);
        var += dt * dt;
    }
    let per_second = cov / var;
    (per_second.is_finite() && per_second > 0.0).then_some(per_second * 60.0)
}

/// The forecast of a queue holding `messages` that grows `per_minute`.
pub fn forecast(
    per_minute: Option<f64>,
    messages: u64,
    del_size: u64,
    unbounded: bool,
    now: DateTime<Utc>,
) -> Option<Forecast> {
    let per_minute = per_minute.filter(|g| *g > 0.0)?;
    let delete_at = (!unbounded && messages <= del_size).then(|| {
        // Passing the size means holding one more than it.
        let to_go = (del_size - messages + 1) as f64;
        let secs = (to_go / per_minute * 60.0).ceil().min(100.0 * 365.0 * 86_400.0);
        now + Duration::seconds(secs as i64)
    });
    Some(Forecast { per_minute, delete_at })
}

/// What a queue does when it is at its length limit (`x-overflow`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// The oldest messages are dropped (or dead-lettered).
    #[default]
    DropHead,
    /// New messages are refused.
    RejectPublish,
    /// New messages are refused and dead-lettered.
    RejectPublishDlx,
}

impl Overflow {
    pub fn parse(s: &str) -> Option<Overflow> {
        match s {
            "drop-head" => Some(Overflow::DropHead),
            "reject-publish" => Some(Overflow::RejectPublish),
            "reject-publish-dlx" => Some(Overflow::RejectPublishDlx),
            _ => None,
        }
    }

    /// What the owners are told it does.
    pub fn describe(self) -> &'static str {
        match self {
            Overflow::DropHead => "drops (or dead-letters) its oldest messages",
            Overflow::RejectPublish => "rejects new messages",
            Overflow::RejectPublishDlx => "rejects new messages and dead-letters them",
        }
    }
}

/// A queue's length limits, from its arguments and its policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `x-max-length` / `max-length`: ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes` / `max-length-bytes`: bytes of ready messages.
    pub max_bytes: Option<u64>,
    pub overflow: Option<Overflow>,
    /// `x-max-age` / `max-age`, in seconds: a stream's retention by age.
    #[serde(default)]
    pub max_age: Option<u64>,
}

/// A stream's `x-max-age` (`7D`, `12h`, `30m`, `1Y`: a whole number and one unit of `Y`,
/// `M`, `D`, `h`, `m`, `s`) in seconds; `None` when RabbitMQ would not read it either.
pub fn parse_max_age(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        'Y' => 365 * 86_400,
        'M' => 30 * 86_400,
        'D' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    n.checked_mul(secs)
}

impl Limits {
    pub fn is_set(&self) -> bool {
        self.max_length.is_some() || self.max_bytes.is_some()
    }

    /// Whether a stream with these limits is trimmed at all (by size or by age).
    pub fn retains(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }

    /// The limits in force when several sources set them: RabbitMQ applies the smaller
    /// of two limits; the first source that names an overflow behaviour wins (queue
    /// arguments, then the operator policy, then the policy).
    pub fn merge(sources: &[Limits]) -> Limits {
        let min = |f: fn(&Limits) -> Option<u64>| sources.iter().filter_map(f).min();
        Limits {
            max_length: min(|l| l.max_length),
            max_bytes: min(|l| l.max_bytes),
            overflow: sources.iter().find_map(|l| l.overflow),
            max_age: min(|l| l.max_age),
        }
    }

    /// Whether `ready` messages of `bytes` (when known) fill the limit.
    pub fn full(&self, ready: u64, bytes: Option<u64>) -> bool {
        self.max_length.is_some_and(|l| ready >= l) || self.max_bytes.zip(bytes).is_some_and(|(l, b)| b >= l)
    }

    /// Whether the queue is back clearly under its limit (an overflow ends).
    pub fn relieved(&self, ready: u64, bytes: Option<u64>) -> bool {
        let under = |limit: u64, v: u64| v.saturating_mul(100) < limit.saturating_mul(OVERFLOW_END_PERCENT);
        self.max_length.is_none_or(|l| under(l, ready))
            && self.max_bytes.is_none_or(|l| bytes.is_some_and(|b| under(l, b)))
    }
}

/// An episode's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// It begins; email the owners if `notify`.
    Starts { notify: bool },
    /// It ends.
    Ends,
}

/// A queue without consumers: it begins once the queue has held messages with no
/// consumer for `minutes` (0: off), and ends when a consumer is back. An unknown consumer
/// count decides nothing.
pub fn unconsumed(
    in_episode: bool,
    consumers: Option<u64>,
    messages: u64,
    idle_since: Option<DateTime<Utc>>,
    minutes: u32,
    now: DateTime<Utc>,
) -> Option<Turn> {
    let consumers = consumers?;
    match in_episode {
        true if consumers > 0 => Some(Turn::Ends),
        false if minutes > 0 && consumers == 0 && messages > 0 => {
            let since = idle_since?;
            (now - since >= Duration::minutes(minutes.into())).then_some(Turn::Starts { notify: true })
        }
        _ => None,
    }
}

/// A queue at its length limit: the episode begins when it is full, and ends when it is
/// under 90% of the limit again. A new episode within `cooldown` of the last email is not
/// emailed.
pub fn overflow(
    in_episode: bool,
    limits: &Limits,
    ready: u64,
    bytes: Option<u64>,
    last_email: Option<DateTime<Utc>>,
    cooldown: Duration,
    now: DateTime<Utc>,
) -> Option<Turn> {
    match in_episode {
        true if !limits.is_set() || limits.relieved(ready, bytes) => Some(Turn::Ends),
        false if limits.full(ready, bytes) => Some(Turn::Starts {
            notify: last_email.is_none_or(|t| now - t >= cooldown),
        }),
        _ => None,
    }
}

/// Whether a queue still above its warning size is reminded about now: `hours` after the
/// last email about it (0: never), unless its owners opted out.
pub fn remind(last_email: Option<DateTime<Utc>>, hours: u32, opted_out: bool, now: DateTime<Utc>) -> bool {
    hours > 0 && !opted_out && last_email.is_some_and(|t| now - t >= Duration::hours(hours.into()))
}

/// Whether an excursion above the warning size has lasted long enough to warn about
/// (`WARN_AFTER_SECONDS`); `over_since` is when it began, as far as the guardian knows.
pub fn held_long_enough(over_since: Option<DateTime<Utc>>, after: Duration, now: DateTime<Utc>) -> bool {
    after <= Duration::zero() || over_since.is_some_and(|t| now - t >= after)
}

/// What the unused-queue rule says of a queue now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unused {
    /// Unused for the period: announce that it will be deleted on this date.
    Announce { delete_on: DateTime<Utc> },
    /// It was used after the announcement: the deletion is off.
    UsedAgain,
    /// The grace period is over and it is still unused: delete it.
    Delete,
}

/// The unused-queue rule (`days`: `UNUSED_QUEUE_DAYS`, none: off). `last_used` is the
/// last time the queue had a consumer or was read from (or when it was first seen);
/// `announced` is the announcement on record and the deletion date it gave. An unknown
/// consumer count or an unknown last use decides nothing.
pub fn unused(
    days: Option<u32>,
    grace_days: u32,
    consumers: Option<u64>,
    last_used: Option<DateTime<Utc>>,
    announced: Option<(DateTime<Utc>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Option<Unused> {
    let (consumers, last_used) = (consumers?, last_used?);
    if let Some((at, delete_on)) = announced {
        return if consumers > 0 || last_used > at || days.is_none() {
            Some(Unused::UsedAgain)
        } else if now >= delete_on {
            Some(Unused::Delete)
        } else {
            None
        };
    }
    let days = days.filter(|d| *d > 0)?;
    (consumers == 0 && now - last_used >= Duration::days(days.into())).then(|| Unused::Announce {
        delete_on: now + Duration::days(grace_days.into()),
    })
}

/// "about 2 h", "about 40 min", "under a minute": how far off a moment is.
pub fn describe_in(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds();
    match secs {
        s if s < 60 => "under a minute".to_owned(),
        s if s < 3600 => format!("about {} min", (s + 30) / 60),
        s if s < 2 * 86_400 => format!("about {} h", (s + 1800) / 3600),
        s => format!("about {} days", (s + 43_200) / 86_400),
    }
}

/// "+40/min", "+1.5/min", "+0.2/min".
pub fn describe_rate(per_minute: f64) -> String {
    if per_minute >= 10.0 {
        format!("+{:.0}/min", per_minute)
    } else {
        format!("+{:.1}/min", per_minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn noon() -> DateTime<Utc> {
        at("2026-12-01T12:00:00Z")
    }

    const NOW: i64 = 1_800_000_000;

    /// Samples one minute apart ending now.
    fn minutes(values: &[u64]) -> Vec<(i64, u64)> {
        let n = values.len() as i64;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (NOW - (n - 1 - i as i64) * 60, *v))
            .collect()
    }

    #[test]
    fn given_steady_growth_when_forecast_then_the_rate_and_the_time_of_deletion() {
        let points = minutes(&[1000, 1040, 1080, 1120, 1160, 1200]);
        let g = growth(&points, NOW).unwrap();
        assert!((g - 40.0).abs() < 1e-9, "{g}");
        let now = noon();
        let f = forecast(Some(g), 1200, 8000, false, now).unwrap();
        // 6801 more messages at 40 a minute: 170.025 minutes.
        assert_eq!(f.delete_at, Some(now + Duration::seconds(10_202)));
        assert_eq!(describe_in(now, f.delete_at.unwrap()), "about 3 h");
        assert_eq!(describe_rate(g), "+40/min");
    }

    #[test]
    fn given_one_sample_or_a_short_span_then_no_forecast() {
        assert_eq!(growth(&minutes(&[10]), NOW), None);
        assert_eq!(growth(&minutes(&[10, 20]), NOW), None);
        // Three samples over two minutes: too short to tell.
        assert_eq!(growth(&minutes(&[10, 20, 30]), NOW), None);
    }

    #[test]
    fn given_a_depth_that_went_down_or_stayed_then_no_forecast() {
        assert_eq!(growth(&minutes(&[100, 200, 300, 400, 500, 450]), NOW), None);
        assert_eq!(growth(&minutes(&[500, 400, 300, 200, 100, 100]), NOW), None);
        assert_eq!(growth(&minutes(&[100, 100, 100, 100, 100, 100]), NOW), None);
        // Up and down, ending where it began.
        assert_eq!(growth(&minutes(&[100, 300, 100, 300, 100, 100]), NOW), None);
    }

    #[test]
    fn given_samples_with_a_gap_then_no_forecast() {
        let points = vec![
            (NOW - 840, 100),
            (NOW - 780, 200),
            (NOW - 120, 900),
            (NOW - 60, 1000),
            (NOW, 1100),
        ];
        assert_eq!(growth(&points, NOW), None);
    }

    #[test]
    fn samples_older_than_the_window_are_not_used() {
        let mut points = vec![(NOW - 3600, 0)];
        points.extend(minutes(&[1000, 1010, 1020, 1030, 1040, 1050]));
        assert!((growth(&points, NOW).unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn given_an_unbounded_or_already_oversized_queue_then_a_rate_without_a_deletion() {
        let f = forecast(Some(5.0), 100, 8000, true, noon()).unwrap();
        assert_eq!(f.delete_at, None);
        let f = forecast(Some(5.0), 9000, 8000, false, noon()).unwrap();
        assert_eq!(f.delete_at, None);
        assert_eq!(forecast(None, 100, 8000, false, noon()), None);
        assert_eq!(forecast(Some(0.0), 100, 8000, false, noon()), None);
    }

    proptest! {
        #[test]
        fn a_forecast_is_never_made_of_a_queue_that_ends_lower_than_it_began(
            values in proptest::collection::vec(0u64..100_000, 0..16),
        ) {
            if let Some(g) = growth(&minutes(&values), NOW) {
                prop_assert!(g > 0.0);
                prop_assert!(values.last() > values.first());
                prop_assert!(values[values.len() - 1] >= values[values.len() - 2]);
            }
        }

        #[test]
        fn a_forecast_deletion_is_never_in_the_past(
            per_minute in 0.001f64..1e9,
            messages in 0u64..1_000_000,
            del_size in 1u64..1_000_000,
        ) {
            if let Some(Forecast { delete_at: Some(t), .. }) = forecast(Some(per_minute), messages, del_size, false, noon()) {
                prop_assert!(t > noon());
            }
        }
    }

    #[test]
    fn given_no_consumer_for_the_period_then_one_episode_until_a_consumer_returns() {
        let since = noon() - Duration::minutes(60);
        assert_eq!(
            unconsumed(false, Some(0), 5, Some(since), 60, noon()),
            Some(Turn::Starts { notify: true })
        );
        // Not yet the period, no messages, off, or an unknown count: nothing.
        assert_eq!(
            unconsumed(false, Some(0), 5, Some(noon() - Duration::minutes(59)), 60, noon()),
            None
        );
        assert_eq!(unconsumed(false, Some(0), 0, Some(since), 60, noon()), None);
        assert_eq!(unconsumed(false, Some(0), 5, Some(since), 0, noon()), None);
        assert_eq!(unconsumed(false, None, 5, Some(since), 60, noon()), None);
        // In the episode: it continues without consumers, and ends with one.
        assert_eq!(unconsumed(true, Some(0), 5, Some(since), 60, noon()), None);
        assert_eq!(unconsumed(true, Some(0), 0, Some(since), 60, noon()), None);
        assert_eq!(unconsumed(true, Some(1), 5, None, 60, noon()), Some(Turn::Ends));
        // An unknown count does not end it either.
        assert_eq!(unconsumed(true, None, 5, None, 60, noon()), None);
    }

    fn max(n: u64) -> Limits {
        Limits {
            max_length: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn given_a_queue_at_its_limit_then_an_overflow_until_it_is_under_ninety_percent() {
        let hour = Duration::hours(1);
        assert_eq!(
            overflow(false, &max(100), 100, None, None, hour, noon()),
            Some(Turn::Starts { notify: true })
        );
        assert_eq!(overflow(false, &max(100), 99, None, None, hour, noon()), None);
        // Flapping at the limit does not end it.
        assert_eq!(overflow(true, &max(100), 95, None, None, hour, noon()), None);
        assert_eq!(overflow(true, &max(100), 90, None, None, hour, noon()), None);
        assert_eq!(
            overflow(true, &max(100), 89, None, None, hour, noon()),
            Some(Turn::Ends)
        );
        // The limit was removed.
        assert_eq!(
            overflow(true, &Limits::default(), 100, None, None, hour, noon()),
            Some(Turn::Ends)
        );
        // A new episode within the cool-down is not emailed.
        assert_eq!(
            overflow(
                false,
                &max(100),
                100,
                None,
                Some(noon() - Duration::minutes(10)),
                hour,
                noon()
            ),
            Some(Turn::Starts { notify: false })
        );
    }

    #[test]
    fn a_byte_limit_counts_only_when_the_bytes_are_known() {
        let bytes = Limits {
            max_bytes: Some(1000),
            ..Default::default()
        };
        assert!(bytes.full(1, Some(1000)));
        assert!(!bytes.full(1_000_000, None));
        assert!(!bytes.relieved(1, None), "unknown bytes do not end an overflow");
        assert!(bytes.relieved(1, Some(899)));
    }

    #[test]
    fn limits_from_several_sources_take_the_smaller_and_the_first_behaviour() {
        let arg = Limits {
            max_length: Some(500),
            max_bytes: None,
            overflow: Some(Overflow::RejectPublish),
            max_age: None,
        };
        let policy = Limits {
            max_length: Some(100),
            max_bytes: Some(10_000),
            overflow: Some(Overflow::DropHead),
            max_age: Some(3600),
        };
        assert_eq!(
            Limits::merge(&[arg, policy]),
            Limits {
                max_length: Some(100),
                max_bytes: Some(10_000),
                overflow: Some(Overflow::RejectPublish),
                max_age: Some(3600),
            }
        );
        assert!(!Limits::merge(&[]).is_set());
    }

    #[test]
    fn a_max_age_is_read_as_rabbitmq_reads_it() {
        assert_eq!(parse_max_age("7D"), Some(7 * 86_400));
        assert_eq!(parse_max_age("12h"), Some(12 * 3_600));
        assert_eq!(parse_max_age("30m"), Some(1_800));
        assert_eq!(parse_max_age("1Y"), Some(365 * 86_400));
        assert_eq!(parse_max_age("2M"), Some(60 * 86_400));
        assert_eq!(parse_max_age("10s"), Some(10));
        for bad in ["", "D", "7", "7d", "-1D", "1.5h", "7 D", "ü"] {
            assert_eq!(parse_max_age(bad), None, "{bad:?}");
        }
        assert_eq!(parse_max_age("99999999999999999999Y"), None);
    }

    proptest::proptest! {
        #[test]
        fn a_max_age_never_panics(s in "\\PC{0,12}") {
            let _ = parse_max_age(&s);
        }
    }

    #[test]
    fn reminders_come_every_period_after_the_last_email_unless_opted_out_or_off() {
        let last = Some(noon() - Duration::hours(24));
        assert!(remind(last, 24, false, noon()));
        assert!(!remind(Some(noon() - Duration::hours(23)), 24, false, noon()));
        assert!(!remind(last, 0, false, noon()));
        assert!(!remind(last, 24, true, noon()));
        assert!(!remind(None, 24, false, noon()));
    }

    #[test]
    fn a_warning_waits_until_the_excursion_has_lasted() {
        let after = Duration::seconds(120);
        assert!(held_long_enough(None, Duration::zero(), noon()));
        assert!(!held_long_enough(None, after, noon()));
        assert!(!held_long_enough(Some(noon() - Duration::seconds(119)), after, noon()));
        assert!(held_long_enough(Some(noon() - Duration::seconds(120)), after, noon()));
    }

    #[test]
    fn given_an_unused_queue_then_announced_then_deleted_after_the_grace_unless_used() {
        let month_ago = noon() - Duration::days(30);
        let announce = unused(Some(30), 7, Some(0), Some(month_ago), None, noon());
        assert_eq!(
            announce,
            Some(Unused::Announce {
                delete_on: noon() + Duration::days(7)
            })
        );
        // Not yet, off, a consumer, or unknown: nothing.
        assert_eq!(unused(Some(31), 7, Some(0), Some(month_ago), None, noon()), None);
        assert_eq!(unused(None, 7, Some(0), Some(month_ago), None, noon()), None);
        assert_eq!(unused(Some(30), 7, Some(1), Some(month_ago), None, noon()), None);
        assert_eq!(unused(Some(30), 7, None, Some(month_ago), None, noon()), None);
        assert_eq!(unused(Some(30), 7, Some(0), None, None, noon()), None);

        let announced = Some((noon() - Duration::days(7), noon()));
        assert_eq!(
            unused(Some(30), 7, Some(0), Some(month_ago), announced, noon()),
            Some(Unused::Delete)
        );
        let early = Some((noon() - Duration::days(6), noon() + Duration::days(1)));
        assert_eq!(unused(Some(30), 7, Some(0), Some(month_ago), early, noon()), None);
        // Used after the announcement, a consumer now, or the rule switched off.
        let used = Some(noon() - Duration::days(1));
        assert_eq!(
            unused(Some(30), 7, Some(0), used, announced, noon()),
            Some(Unused::UsedAgain)
        );
        assert_eq!(
            unused(Some(30), 7, Some(2), Some(month_ago), announced, noon()),
            Some(Unused::UsedAgain)
        );
        assert_eq!(
            unused(None, 7, Some(0), Some(month_ago), announced, noon()),
            Some(Unused::UsedAgain)
        );
    }

    #[test]
    fn moments_read_as_people_say_them() {
        let now = noon();
        assert_eq!(describe_in(now, now + Duration::seconds(20)), "under a minute");
        assert_eq!(describe_in(now, now + Duration::minutes(40)), "about 40 min");
        assert_eq!(describe_in(now, now + Duration::minutes(119)), "about 2 h");
        assert_eq!(describe_in(now, now + Duration::days(3)), "about 3 days");
        assert_eq!(describe_rate(1.25), "+1.2/min");
    }
}
