//! The installable-app half of the dashboard: the web app manifest, its PNG icons, the
//! service worker (served from the root so its scope is the whole origin), the offline page
//! it falls back to, the notification toggle, and the React hook module for other clients.
//!
//! Kept apart from `mod.rs` so the page views and these files change independently; `mod.rs`
//! serves everything listed here exactly like its own assets (ETag, `no-cache`, nosniff, CSP
//! on HTML). `no-cache` matters most for `/sw.js`: a browser then checks for a new service
//! worker with every navigation, so a new binary replaces the old worker at once.

use super::{Asset, CSS, HTML, JS};

/// The service worker's script, served at `/sw.js`: a worker's scope is at most the folder of
/// its script, and it must control `/` (the dashboard) to show the offline page there.
pub(super) const SERVICE_WORKER: Asset = Asset {
    name: "sw.js",
    content_type: JS,
    body: include_str!("sw.js"),
};

/// Browsers read `application/manifest+json` (the registered type) for `rel="manifest"`.
const MANIFEST: &str = "application/manifest+json";
const PNG: &str = "image/png";

/// The text files under `/assets/` that the installable app and the React module add.
pub(super) const TEXT_ASSETS: &[Asset] = &[
    Asset {
        name: "manifest.webmanifest",
        content_type: MANIFEST,
        body: include_str!("manifest.webmanifest"),
    },
    Asset {
        name: "offline.html",
        content_type: HTML,
        body: include_str!("offline.html"),
    },
    Asset {
        name: "pwa.css",
        content_type: CSS,
        body: include_str!("pwa.css"),
    },
    Asset {
        name: "pwa.js",
        content_type: JS,
        body: include_str!("pwa.js"),
    },
    Asset {
        name: "views/push.js",
        content_type: JS,
        body: include_str!("views/push.js"),
    },
    Asset {
        name: "react/websocket.js",
        content_type: JS,
        body: include_str!("react/websocket.js"),
    },
];

/// A binary file under `/assets/` (the icons), as compiled into the binary.
pub(super) struct BinaryAsset {
    pub(super) name: &'static str,
    pub(super) content_type: &'static str,
    pub(super) body: &'static [u8],
}

/// The manifest's icons (rendered from `icon.svg` by `tests/browser/icons.mjs`). Android asks
/// for 192 and 512 px; the maskable one keeps its glyph in the central safe zone.
pub(super) const ICONS: &[BinaryAsset] = &[
    BinaryAsset {
        name: "icons/icon-192.png",
        content_type: PNG,
        body: include_bytes!("icons/icon-192.png"),
    },
    BinaryAsset {
        name: "icons/icon-512.png",
        content_type: PNG,
        body: include_bytes!("icons/icon-512.png"),
    },
    BinaryAsset {
        name: "icons/maskable-512.png",
        content_type: PNG,
        body: include_bytes!("icons/maskable-512.png"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The width and height in a PNG's IHDR chunk, or `None` when `bytes` is not a PNG.
    fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
        let signature = b"\x89PNG\r\n\x1a\n";
        if bytes.len() < 24 || &bytes[..8] != signature || &bytes[12..16] != b"IHDR" {
            return None;
        }
        let be = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Some((be(16), be(20)))
    }

    #[test]
    fn icons_are_pngs_of_the_sizes_their_names_say() {
        for icon in ICONS {
            let size = png_size(icon.body).unwrap_or_else(|| panic!("{} is not a PNG", icon.name));
            let side = if icon.name.contains("192") { 192 } else { 512 };
            assert_eq!(size, (side, side), "{}", icon.name);
        }
    }

    #[test]
    fn the_manifest_names_every_icon_we_serve() {
        let manifest: serde_json::Value =
            serde_json::from_str(TEXT_ASSETS[0].body).expect("the manifest is JSON");
        assert_eq!(manifest["display"], "standalone");
        assert_eq!(manifest["start_url"], "/");
        let icons = manifest["icons"].as_array().expect("icons");
        for icon in ICONS {
            let src = format!("/assets/{}", icon.name);
            assert!(
                icons.iter().any(|i| i["src"] == src.as_str()),
                "{src} is not in the manifest"
            );
        }
        assert!(icons.iter().any(|i| i["purpose"] == "maskable"));
    }
}
