//! `--sbom FILE`: the attributed image as a software bill of materials, in CycloneDX 1.6 JSON
//! ([`cyclonedx`]) or SPDX 2.3 JSON ([`spdx`]). Packages carry their purl
//! (`pkg:deb/debian/NAME@VERSION?arch=ARCH`) and license; every regular file of the image its
//! hashes and its package, unpackaged files their reason.
//!
//! The documents are deterministic: everything is sorted, the creation time is
//! `SOURCE_DATE_EPOCH` when it is set, and the serial number (CycloneDX) and the document
//! namespace (SPDX) are a UUID made from a SHA-256 of the document's own content, never random.

mod cyclonedx;
mod spdx;

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{Attribution, Package};
use crate::fs::ImageRoot;

/// The document format of `--sbom-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SbomFormat {
    /// CycloneDX 1.6, JSON.
    #[default]
    Cyclonedx,
    /// SPDX 2.3, JSON.
    Spdx,
}

/// Why an SBOM could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("cannot hash {path} in the image for the SBOM: {source}")]
    Hash {
        path: String,
        source: std::io::Error,
    },
}

/// The hashes of one image file, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHashes {
    pub sha1: String,
    pub sha256: String,
}

/// What describes the document itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    /// The image's name (the bom's file name).
    pub name: &'a str,
    /// RFC 3339, UTC ([`creation_time`]).
    pub created: &'a str,
    /// The image's canonical digest (`sha256:<hex>`), when known: recorded in the document.
    pub image_digest: Option<&'a str>,
}

/// The SBOM of an attributed image; `hashes` is indexed like `attribution.files`.
pub fn document(
    format: SbomFormat,
    attribution: &Attribution,
    hashes: &[FileHashes],
    doc: &Document,
) -> String {
    match format {
        SbomFormat::Cyclonedx => cyclonedx::document(attribution, hashes, doc),
        SbomFormat::Spdx => spdx::document(attribution, hashes, doc),
    }
}

/// SHA-1 and SHA-256 of every attributed file, read from the written image, in parallel.
pub fn hash_files(
    root: &ImageRoot,
    attribution: &Attribution,
) -> Result<Vec<FileHashes>, SbomError> {
    attribution
        .files
        .par_iter()
        .map(|f| {
            let fail = |source| SbomError::Hash {
                path: f.path.to_string(),
                source,
            };
            let mut file = root.open_file(&f.path).map_err(fail)?;
            let (mut sha1, mut sha256) = (Sha1::new(), Sha256::new());
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(fail)?;
                if n == 0 {
                    break;
                }
                sha1.update(&buf[..n]);
                sha256.update(&buf[..n]);
            }
            Ok(FileHashes {
                sha1: hex(&sha1.finalize()),
                sha256: hex(&sha256.finalize()),
            })
        })
        .collect()
}

/// The document's creation time: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
pub fn creation_time(source_date_epoch: Option<i64>) -> String {
    let secs = source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    rfc3339(secs)
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ` (the civil calendar of Howard Hinnant's
/// `civil_from_days`), without a date crate for one format.
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let time = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// The package URL of a Debian package. Every byte of the version outside purl's unreserved
/// set is percent-encoded (`+` → `%2B`, the epoch's `:` → `%3A`).
pub fn purl(p: &Package) -> String {
    format!(
        "pkg:deb/debian/{}@{}?arch={}",
        percent_encode(&p.name),
        percent_encode(&p.version),
        percent_encode(&p.architecture)
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A name-based UUID (version 5 layout, variant 1) made from the SHA-256 of `content`: the same
/// document always gets the same identifier, two different ones (almost surely) different ones.
fn content_uuid(content: &str) -> String {
    let h = Sha256::digest(content.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A path as the documents show it (they are JSON strings: a name that is not UTF-8 is shown
/// with replacement characters).
fn shown(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_encodes_the_version() {
        let p = Package {
            name: "libssl3".into(),
            version: "1:3.0.11-1~deb12u2+b1".into(),
            architecture: "amd64".into(),
            control: String::new(),
            paths: Vec::new(),
        };
        assert_eq!(
            purl(&p),
            "pkg:deb/debian/libssl3@1%3A3.0.11-1~deb12u2%2Bb1?arch=amd64"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(creation_time(Some(86_400)), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn uuids_are_of_the_content() {
        let a = content_uuid("a");
        assert_eq!(a, content_uuid("a"));
        assert_ne!(a, content_uuid("b"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
