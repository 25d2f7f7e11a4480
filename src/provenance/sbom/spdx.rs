//! SPDX 2.3 JSON. The document describes each Debian package and each unpackaged file; a
//! package CONTAINS its files in the image, so it is `filesAnalyzed` with the verification code
//! of those files. Every file has its SHA-1 (SPDX requires it) and SHA-256.
//!
//! Debian's license names (DEP-5: `GPL-2+`, `BSD-3-clause`, `Expat`) are not SPDX identifiers:
//! the common ones are translated, the others become `LicenseRef-` entries with the name as
//! Debian states it.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::cyclonedx::pretty;
use super::{Document, FileHashes, content_uuid, hex, purl, shown};
use crate::provenance::{Attribution, ImageFile};

/// DEP-5 short names and the SPDX identifiers they stand for.
const SPDX_IDS: &[(&str, &str)] = &[
    ("Apache-2.0", "Apache-2.0"),
    ("Artistic-2.0", "Artistic-2.0"),
    ("BSD-2-clause", "BSD-2-Clause"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("Expat", "MIT"),
    ("GPL-2", "GPL-2.0-only"),
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-3", "GPL-3.0-only"),
    ("GPL-3+", "GPL-3.0-or-later"),
    ("ISC", "ISC"),
    ("LGPL-2", "LGPL-2.0-only"),
    ("LGPL-2+", "LGPL-2.0-or-later"),
    ("LGPL-2.1", "LGPL-2.1-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3", "LGPL-3.0-only"),
    ("LGPL-3+", "LGPL-3.0-or-later"),
    ("MIT", "MIT"),
    ("MPL-2.0", "MPL-2.0"),
    ("PSF-2", "PSF-2.0"),
    ("Zlib", "Zlib"),
];

pub(super) fn document(attribution: &Attribution, hashes: &[FileHashes], doc: &Document) -> String {
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    let mut relationships = Vec::new();
    let packages: Vec<Value> = attribution
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let id = package_id(&p.package.name, &p.package.architecture);
            relationships.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", &id));
            let mut sha1s: Vec<&str> = Vec::new();
            for (f, h) in attribution.files.iter().zip(hashes) {
                if f.package == Some(i) {
                    relationships.push(relationship(&id, "CONTAINS", &file_id(f)));
                    sha1s.push(&h.sha1);
                }
            }
            sha1s.sort_unstable();
            let declared = match &p.license {
                Some(name) => license_id(name, &mut extracted),
                None => "NOASSERTION".to_string(),
            };
            json!({
                "SPDXID": id,
                "name": p.package.name,
                "versionInfo": p.package.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": true,
                "packageVerificationCode": {
                    "packageVerificationCodeValue": hex(&Sha1::digest(sha1s.concat().as_bytes())),
                },
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": declared,
                "copyrightText": "NOASSERTION",
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl(&p.package),
                }],
                "comment": format!(
                    "architecture {}; {} of its {} files in the image{}",
                    p.package.architecture,
                    p.files_in_image,
                    p.files_in_package,
                    if p.partial() { " (partial)" } else { "" }
                ),
            })
        })
        .collect();
    let files: Vec<Value> = attribution
        .files
        .iter()
        .zip(hashes)
        .map(|(f, h)| {
            if f.package.is_none() {
                relationships.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", &file_id(f)));
            }
            let comment = match &f.source {
                Some(src) => format!("from {}; {}", shown(src), f.why),
                None => format!("written by copy_bom; {}", f.why),
            };
            json!({
                "SPDXID": file_id(f),
                "fileName": format!(".{}", shown(&f.path)),
                "checksums": [
                    { "algorithm": "SHA1", "checksumValue": h.sha1 },
                    { "algorithm": "SHA256", "checksumValue": h.sha256 },
                ],
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "comment": comment,
            })
        })
        .collect();
    let extracted: Vec<Value> = extracted
        .into_iter()
        .map(|(id, name)| {
            json!({
                "licenseId": id,
                "name": name,
                "extractedText": format!("The license Debian's copyright file names \"{name}\"."),
            })
        })
        .collect();
    let mut spdx = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc.name,
        "creationInfo": {
            "created": doc.created,
            "creators": [format!("Tool: copy_bom-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "files": files,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        spdx["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    if let Some(d) = doc.image_digest {
        spdx["comment"] = Value::String(format!("image digest: {d}"));
    }
    // The namespace is made from everything else in the document.
    let uuid = content_uuid(&spdx.to_string());
    spdx["documentNamespace"] = Value::String(format!(
        "https://copy-bom.invalid/spdx/{}-{uuid}",
        id_chars(doc.name)
    ));
    pretty(&spdx)
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

fn package_id(name: &str, arch: &str) -> String {
    format!("SPDXRef-Package-deb-{}-{}", id_chars(name), id_chars(arch))
}

/// A file's identifier, from its path (paths are unique in an image; the hash keeps the
/// identifier within SPDX's character set whatever the name holds).
fn file_id(f: &ImageFile) -> String {
    let h = sha2::Sha256::digest(f.path.as_os_str().as_encoded_bytes());
    format!("SPDXRef-File-{}", hex(&h[..12]))
}

/// The SPDX expression for a DEP-5 license name: its SPDX identifier, or a `LicenseRef-`
/// recorded in `extracted`.
fn license_id(name: &str, extracted: &mut BTreeMap<String, String>) -> String {
    if let Some((_, id)) = SPDX_IDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return (*id).to_string();
    }
    let id = format!("LicenseRef-deb-{}", id_chars(&name.replace('+', "-plus")));
    extracted
        .entry(id.clone())
        .or_insert_with(|| name.to_string());
    id
}

/// `s` in the characters SPDX identifiers allow (letters, digits, `.` and `-`).
fn id_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_license_names_become_spdx_expressions() {
        let mut extracted = BTreeMap::new();
        assert_eq!(license_id("GPL-2+", &mut extracted), "GPL-2.0-or-later");
        assert_eq!(license_id("expat", &mut extracted), "MIT");
        assert_eq!(
            license_id("GPL-2+ or Artistic", &mut extracted),
            "LicenseRef-deb-GPL-2-plus-or-Artistic"
        );
        assert_eq!(
            extracted
                .get("LicenseRef-deb-GPL-2-plus-or-Artistic")
                .map(String::as_str),
            Some("GPL-2+ or Artistic")
        );
        assert_eq!(extracted.len(), 1);
    }
}
