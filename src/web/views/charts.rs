//! Server-rendered SVG: queue gauges, sparklines, the 24-hour depth chart and the audit
//! log's events-per-hour bars. Sizes go in SVG attributes (the CSP forbids inline
//! styles); colours come from classes in app.css and never carry meaning alone: every
//! chart has text beside it or labels in it.

use maud::{Markup, html};

/// Thousands separated by a thin space: 12 345.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// The thresholds drawn on a gauge or chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bands {
    pub warn: u64,
    pub archive: Option<u64>,
    pub delete: u64,
    pub unbounded: bool,
}

impl Bands {
    /// The top of the scale: a quarter above the deletion size, or the depth if higher.
    fn top(&self, depth: u64) -> u64 {
        (self.delete + self.delete / 4).max(depth).max(1)
    }
}

const GAUGE_W: f64 = 240.0;
const GAUGE_H: f64 = 16.0;

/// A horizontal gauge of the depth against the warning, archive and deletion sizes.
pub fn gauge(depth: Option<u64>, b: Bands, label: &str) -> Markup {
    let top = b.top(depth.unwrap_or(0)) as f64;
    let x = |v: u64| (v as f64 / top * GAUGE_W).min(GAUGE_W);
    let warn_end = b.archive.unwrap_or(b.delete);
    let fill = depth.map(&x).unwrap_or(0.0);
    let level = match depth {
        None => "unknown",
        Some(d) if d > b.delete => "over-delete",
        Some(d) if b.archive.is_some_and(|a| d > a) => "over-archive",
        Some(d) if d > b.warn => "over-warn",
        Some(_) => "ok",
    };
    html! {
        svg.gauge width=(GAUGE_W) height=(GAUGE_H) viewBox=(format!("0 0 {GAUGE_W} {GAUGE_H}")) role="img" aria-label=(label) {
            rect.band-normal x="0" y="0" width=(x(b.warn)) height=(GAUGE_H) {}
            rect.band-warn x=(x(b.warn)) y="0" width=(x(warn_end) - x(b.warn)) height=(GAUGE_H) {}
            @if let Some(a) = b.archive {
                rect.band-archive x=(x(a)) y="0" width=(x(b.delete) - x(a)) height=(GAUGE_H) {}
            }
            rect.band-delete x=(x(b.delete)) y="0" width=(GAUGE_W - x(b.delete)) height=(GAUGE_H) {}
            rect class=(format!("fill {level}")) x="0" y="4" width=(format!("{fill:.1}")) height=(GAUGE_H - 8.0) {}
            line.tick x1=(x(b.warn)) x2=(x(b.warn)) y1="0" y2=(GAUGE_H) {}
            @if !b.unbounded { line.tick.tick-delete x1=(x(b.delete)) x2=(x(b.delete)) y1="0" y2=(GAUGE_H) {} }
        }
    }
}

/// A small line of the depth over time (`points` are (unix seconds, messages), oldest
/// first), from `since` to `until`, with the warning size as a dashed line.
pub fn sparkline(points: &[(i64, u64)], since: i64, until: i64, warn: u64, label: &str) -> Markup {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(warn).max(1) as f64;
    let span = (until - since).max(1) as f64;
    let px = |t: i64| ((t.max(since) - since) as f64 / span * W).min(W);
    let py = |v: u64| H - 1.0 - v as f64 / max * (H - 2.0);
    let line = step_points(points, until, px, py);
    html! {
        svg.sparkline width=(W) height=(H) viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) {
            line.threshold-warn x1="0" x2=(W) y1=(format!("{:.1}", py(warn))) y2=(format!("{:.1}", py(warn))) {}
            @if !line.is_empty() { polyline.series points=(line) {} }
        }
    }
}

/// A stepped line: each sample holds until the next (samples are written on change).
fn step_points(points: &[(i64, u64)], until: i64, px: impl Fn(i64) -> f64, py: impl Fn(u64) -> f64) -> String {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    for (i, (t, v)) in points.iter().enumerate() {
        if i > 0 {
            out.push(format!("{:.1},{:.1}", px(*t), py(points[i - 1].1)));
        }
        out.push(format!("{:.1},{:.1}", px(*t), py(*v)));
    }
    if let Some((_, v)) = points.last() {
        out.push(format!("{:.1},{:.1}", px(until), py(*v)));
    }
    out.join(" ")
}

/// The depth over a period with axes, units and the threshold lines.
/// Where the depth is heading: the depth now and its growth per minute, drawn dashed
/// into a quarter of the chart's span ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub messages: u64,
    pub per_minute: f64,
}

pub fn depth_chart(points: &[(i64, u64)], since: i64, now: i64, b: Bands, projection: Option<Projection>) -> Markup {
    // With a projection the axis runs on past now.
    let ahead = projection.map(|_| (now - since) / 4).unwrap_or(0);
    let until = now + ahead;
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 32.0;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let peak = points.iter().map(|p| p.1).max().unwrap_or(0);
    let max = nice_ceiling(peak.max(if b.unbounded { b.warn } else { b.delete }) + 1);
    let span = (until - since).max(1) as f64;
    let px = |t: i64| LEFT + ((t.max(since) - since) as f64 / span * pw).min(pw);
    let py = |v: u64| TOP + ph - (v as f64 / max as f64 * ph);
    let line = step_points(points, now, px, py);
    let y_ticks: Vec<u64> = (0..=4).map(|i| max / 4 * i).collect();
    let hours = ((now - since) / 3600).max(1);
    let x_step = if hours > 12 { 4 } else { 1 };
    let projected = projection.map(|p| {
        // Up to the chart's top or its right edge, whichever comes first.
        let headroom = max.saturating_sub(p.messages) as f64;
        let minutes = (ahead as f64 / 60.0).min(headroom / p.per_minute.max(1e-9));
        let end_t = now + (minutes * 60.0) as i64;
        let end_v = p.messages.saturating_add((p.per_minute * minutes) as u64).min(max);
        format!("{:.1},{:.1} {:.1},{:.1}", px(now), py(p.messages), px(end_t), py(end_v))
    });
    html! {
        svg.chart width=(W) height=(H) viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label=(format!("Messages in the queue over the last {hours} hours; peak {peak}")) {
            @for v in &y_ticks {
                line.grid x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", py(*v))) y2=(format!("{:.1}", py(*v))) {}
                text.axis x=(LEFT - 6.0) y=(format!("{:.1}", py(*v) + 4.0)) text-anchor="end" { (count(*v)) }
            }
            @for h in (0..=hours).step_by(x_step as usize) {
                @let t = since + h * 3600;
                text.axis x=(format!("{:.1}", px(t))) y=(H - 12.0) text-anchor="middle" {
                    @if h == hours { "now" } @else { (format!("−{}h", hours - h)) }
                }
            }
            @if ahead > 0 {
                text.axis x=(format!("{:.1}", px(until))) y=(H - 12.0) text-anchor="end" { (format!("+{}h", ahead / 3600)) }
            }
            text.axis x="4" y=(TOP + 4.0) { "msgs" }
            text.axis x=(W - RIGHT) y=(H - 1.0) text-anchor="end" { "hours ago" }
            line.threshold-warn x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", py(b.warn))) y2=(format!("{:.1}", py(b.warn))) {}
            text.threshold-label x=(W - RIGHT - 4.0) y=(format!("{:.1}", py(b.warn) - 4.0)) text-anchor="end" { "warning " (count(b.warn)) }
            @if let Some(a) = b.archive {
                line.threshold-archive x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", py(a))) y2=(format!("{:.1}", py(a))) {}
                text.threshold-label x=(W - RIGHT - 4.0) y=(format!("{:.1}", py(a) - 4.0)) text-anchor="end" { "archive " (count(a)) }
            }
            @if !b.unbounded {
                line.threshold-delete x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", py(b.delete))) y2=(format!("{:.1}", py(b.delete))) {}
                text.threshold-label x=(W - RIGHT - 4.0) y=(format!("{:.1}", py(b.delete) - 4.0)) text-anchor="end" { "deletion " (count(b.delete)) }
            }
            line.axis-line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + ph) {}
            line.axis-line x1=(LEFT) x2=(W - RIGHT) y1=(TOP + ph) y2=(TOP + ph) {}
            @if line.is_empty() {
                text.axis x=(LEFT + pw / 2.0) y=(TOP + ph / 2.0) text-anchor="middle" { "no samples in this period" }
            } @else {
                polyline.series points=(line) {}
            }
            @if let (Some(pts), Some(p)) = (projected, projection) {
                polyline.projection points=(pts) stroke-dasharray="6 4" {
                    title { (format!("projected at +{:.1} messages per minute", p.per_minute)) }
                }
            }
        }
    }
}

/// Events per hour as bars, oldest first (`bars` are (hour label, count)).
pub fn hourly_bars(bars: &[(String, u64)]) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 120.0;
    const BOTTOM: f64 = 20.0;
    const LEFT: f64 = 40.0;
    let max = nice_ceiling(bars.iter().map(|b| b.1).max().unwrap_or(0).max(1));
    let bw = (W - LEFT) / bars.len().max(1) as f64;
    let total: u64 = bars.iter().map(|b| b.1).sum();
    html! {
        svg.chart.bars width=(W) height=(H) viewBox=(format!("0 0 {W} {H}")) role="img"
            aria-label=(format!("Events per hour over the last {} hours: {total} in all", bars.len())) {
            text.axis x=(LEFT - 4.0) y="10" text-anchor="end" { (count(max)) }
            text.axis x=(LEFT - 4.0) y=(H - BOTTOM) text-anchor="end" { "0" }
            @for (i, (label, n)) in bars.iter().enumerate() {
                @let h = *n as f64 / max as f64 * (H - BOTTOM - 4.0);
                rect.bar x=(format!("{:.1}", LEFT + i as f64 * bw + 1.0)) y=(format!("{:.1}", H - BOTTOM - h))
                    width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{h:.1}")) {
                    title { (label) ": " (n) " events" }
                }
                @if i % 6 == 0 {
                    text.axis x=(format!("{:.1}", LEFT + i as f64 * bw)) y=(H - 4.0) { (label.get(11..13).unwrap_or(label)) ":00" }
                }
            }
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `n`.
fn nice_ceiling(n: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if p.saturating_mul(m) >= n {
                return p * m;
            }
        }
        p = p.saturating_mul(10);
        if p == u64::MAX {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(12345), "12\u{2009}345");
        assert_eq!(count(1234567), "1\u{2009}234\u{2009}567");
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(8001), 10000);
        assert_eq!(nice_ceiling(12000), 20000);
    }

    #[test]
    fn gauge_marks_the_level_in_a_class_and_the_label() {
        let b = Bands {
            warn: 2000,
            archive: None,
            delete: 8000,
            unbounded: false,
        };
        let g = gauge(Some(2500), b, "2500 messages").into_string();
        assert!(
            g.contains("over-warn") && g.contains(r#"aria-label="2500 messages""#),
            "{g}"
        );
        assert!(gauge(None, b, "unknown").into_string().contains("unknown"));
        assert!(gauge(Some(9000), b, "x").into_string().contains("over-delete"));
        assert!(!g.contains("style="), "no inline style");
    }

    #[test]
    fn sparkline_steps_and_reaches_now() {
        let s = step_points(&[(0, 0), (30, 10)], 60, |t| t as f64, |v| v as f64);
        assert_eq!(s, "0.0,0.0 30.0,0.0 30.0,10.0 60.0,10.0");
    }

    #[test]
    fn chart_has_axes_units_and_thresholds() {
        let b = Bands {
            warn: 2000,
            archive: Some(5000),
            delete: 8000,
            unbounded: false,
        };
        let c = depth_chart(&[(0, 100), (3600, 3000)], 0, 86400, b, None).into_string();
        for part in [
            "warning 2",
            "archive 5",
            "deletion 8",
            "msgs",
            "hours ago",
            "−24h",
            "polyline",
        ] {
            assert!(c.contains(part), "{part} missing");
        }
        let unbounded = depth_chart(&[], 0, 3600, Bands { unbounded: true, ..b }, None).into_string();
        assert!(!unbounded.contains("deletion") && unbounded.contains("no samples"));
    }

    #[test]
    fn a_growing_queue_gets_a_dashed_projection_ahead_of_now() {
        let b = Bands {
            warn: 2000,
            archive: None,
            delete: 8000,
            unbounded: false,
        };
        let p = Projection {
            messages: 3000,
            per_minute: 40.0,
        };
        let c = depth_chart(&[(0, 100), (80_000, 3000)], 0, 86_400, b, Some(p)).into_string();
        assert!(
            c.contains("class=\"projection\"") && c.contains("stroke-dasharray"),
            "{c}"
        );
        assert!(c.contains("+6h"));
        let flat = depth_chart(&[(0, 100)], 0, 86_400, b, None).into_string();
        assert!(!flat.contains("projection") && !flat.contains("+6h"));
    }
}
