//! The base layout: head with the vendored assets, navigation, main content.

use maud::{DOCTYPE, Markup, html};

/// A full page. htmx's inline indicator style is switched off (our CSP forbids inline
/// style); `app.css` carries those rules instead.
pub fn page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;
                link rel="icon" href="data:,";
                title {
                    @if title == "PulseGuardian" { "PulseGuardian" } @else { (title) " · PulseGuardian" }
                }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/htmx.min.js" defer {}
            }
            body {
                a.skip-link href="#main" { "Skip to content" }
                header.topbar {
                    nav aria-label="Main" {
                        a.brand href="/" { "PulseGuardian" }
                    }
                }
                main #main { (content) }
            }
        }
    }
}
