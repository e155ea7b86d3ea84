//! How pages answer: redirects (only ever to this site), ETags and 304 for the live
//! parts, the rule that an htmx partial asked for outside htmx goes to its page.

use maud::Markup;
use poem::http::StatusCode;
use poem::{IntoResponse, Request, Response};

use crate::auth::Principal;

/// `303 See Other` to `to`: where a form's answer or a page moved to is.
pub fn see_other(to: impl AsRef<str>) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", to.as_ref())
        .finish()
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A path to go back to after signing in: only a path of this site, never another host.
///
/// Refused rather than cleaned: anything but printable ASCII (a browser drops tabs and
/// new lines and reads `\` as `/`, so `/<tab>/evil.example` would lead off the site), a
/// start that is not one `/`, the same with the percent-encoding undone once
/// (`/%2F%2Fevil.example`), and anything a URL parser resolves to another origin.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    const SITE: &str = "https://pulseguardian.invalid/";
    let next = next?;
    if next.len() > 500 || !next.bytes().all(|b| (0x21..=0x7e).contains(&b)) || next.contains('\\') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8().ok()?;
    for form in [next, decoded.as_ref()] {
        let rest = form.strip_prefix('/')?;
        if rest.starts_with(['/', '\\']) || form.chars().any(char::is_control) {
            return None;
        }
    }
    let site = url::Url::parse(SITE).ok()?;
    let stays = |path: &str| site.join(path).is_ok_and(|u| u.origin() == site.origin());
    (stays(next) && stays(&decoded)).then(|| next.to_owned())
}

/// Whether htmx asked (a live part, a button).
pub fn is_htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

/// The ETag of a live part for `who`: what it shows changes with the data's `version`,
/// the person's rights, and the part's own parameters (`extra`).
pub fn etag(version: &str, who: &Principal, extra: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(format!(
        "{version}|{}|{}|{}|{extra}",
        who.email, who.admin, who.auditor
    )));
    format!("\"{}\"", &h[..24])
}

/// `304 Not Modified` when the browser already has `tag`.
pub fn not_modified(req: &Request, tag: &str) -> Option<Response> {
    let has = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    has.then(|| {
        Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", tag)
            .finish()
    })
}

/// A live part with its ETag.
pub fn with_etag(body: Markup, tag: &str) -> Response {
    body.with_header("etag", tag)
        .with_header("cache-control", "private, no-cache")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/queues?x=1")).as_deref(), Some("/queues?x=1"));
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "queues",
            "/a\r\nLocation: x",
            "/\tevil.example",
            "/\t/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5c%5cevil.example",
            "/%09/evil.example",
            "/\u{0}/x",
            "/queues/\u{7f}",
            "/ü",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        // A queue's page (its vhost `/` percent-encoded) is a fine place to come back to.
        assert_eq!(
            safe_next(Some("/queues/%2F/queue%2Falice%2Fjobs")).as_deref(),
            Some("/queues/%2F/queue%2Falice%2Fjobs")
        );
    }

    proptest::proptest! {
        /// Whatever comes in, what comes out is unchanged, and resolves to this site both as
        /// written and decoded once.
        #[test]
        fn next_never_leaves_the_site(raw in "\\PC{0,40}|[/\\\\%2FfC5c\t\n .:@a-z]{0,12}") {
            if let Some(n) = safe_next(Some(&raw)) {
                proptest::prop_assert_eq!(&n, &raw);
                let site = url::Url::parse("https://pulseguardian.invalid/").unwrap();
                let decoded = percent_encoding::percent_decode_str(&n).decode_utf8_lossy().into_owned();
                for form in [n.as_str(), decoded.as_str()] {
                    let u = site.join(form).unwrap();
                    proptest::prop_assert_eq!(u.host_str(), Some("pulseguardian.invalid"), "{:?}", form);
                }
            }
        }
    }
}
