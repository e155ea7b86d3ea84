//! Static assets (vendored htmx, the stylesheet), embedded in the binary.

use poem::endpoint::EmbeddedFilesEndpoint;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
#[exclude = "*.md"]
pub struct Assets;

pub fn endpoint() -> EmbeddedFilesEndpoint<Assets> {
    EmbeddedFilesEndpoint::<Assets>::new()
}
