//! CycloneDX 1.6 JSON. The image is the metadata's component; each Debian package is a
//! component (type `library`) with its purl and license, and holds its files as nested
//! components of type `file`; unpackaged files are top-level file components. The dependency
//! graph says the image depends on every package.

use serde_json::{Value, json};

use super::{Document, FileHashes, content_uuid, purl, shown};
use crate::provenance::{Attribution, ImageFile};

/// The property names copy_bom adds, in its own namespace as CycloneDX asks.
const PARTIAL: &str = "copy_bom:partial";
const FILES_IN_IMAGE: &str = "copy_bom:files-in-image";
const FILES_IN_PACKAGE: &str = "copy_bom:files-in-package";
const SOURCE: &str = "copy_bom:source";
const WHY: &str = "copy_bom:why";
const IMAGE_DIGEST: &str = "copy_bom:image-digest";
const IMAGE_REF: &str = "image";

pub(super) fn document(attribution: &Attribution, hashes: &[FileHashes], doc: &Document) -> String {
    let mut components: Vec<Value> = attribution
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let files: Vec<Value> = attribution
                .files
                .iter()
                .zip(hashes)
                .filter(|(f, _)| f.package == Some(i))
                .map(|(f, h)| file(f, h))
                .collect();
            let mut c = json!({
                "type": "library",
                "bom-ref": purl(&p.package),
                "name": p.package.name,
                "version": p.package.version,
                "purl": purl(&p.package),
                "properties": [
                    property(PARTIAL, p.partial().to_string()),
                    property(FILES_IN_IMAGE, p.files_in_image.to_string()),
                    property(FILES_IN_PACKAGE, p.files_in_package.to_string()),
                ],
                "components": files,
            });
            if let Some(l) = &p.license {
                c["licenses"] = json!([{ "license": { "name": l } }]);
            }
            c
        })
        .collect();
    components.extend(
        attribution
            .files
            .iter()
            .zip(hashes)
            .filter(|(f, _)| f.package.is_none())
            .map(|(f, h)| file(f, h)),
    );
    let refs: Vec<String> = attribution
        .packages
        .iter()
        .map(|p| purl(&p.package))
        .collect();
    let mut dependencies = vec![json!({ "ref": IMAGE_REF, "dependsOn": refs })];
    dependencies.extend(refs.iter().map(|r| json!({ "ref": r, "dependsOn": [] })));
    let mut metadata = json!({
        "timestamp": doc.created,
        "tools": {
            "components": [{
                "type": "application",
                "name": "copy_bom",
                "version": env!("CARGO_PKG_VERSION"),
            }],
        },
        "component": { "type": "container", "bom-ref": IMAGE_REF, "name": doc.name },
    });
    if let Some(d) = doc.image_digest {
        metadata["properties"] = json!([property(IMAGE_DIGEST, d.to_string())]);
    }
    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": dependencies,
    });
    // The serial number is made from everything else in the document.
    let serial = format!("urn:uuid:{}", content_uuid(&bom.to_string()));
    bom["serialNumber"] = Value::String(serial);
    pretty(&bom)
}

fn file(f: &ImageFile, h: &FileHashes) -> Value {
    let mut properties = vec![property(WHY, f.why.clone())];
    if let Some(src) = &f.source {
        properties.insert(0, property(SOURCE, shown(src)));
    }
    json!({
        "type": "file",
        "bom-ref": format!("file:{}", shown(&f.path)),
        "name": shown(&f.path),
        "hashes": [
            { "alg": "SHA-1", "content": h.sha1 },
            { "alg": "SHA-256", "content": h.sha256 },
        ],
        "properties": properties,
    })
}

fn property(name: &str, value: String) -> Value {
    json!({ "name": name, "value": value })
}

/// JSON text with a final newline (serde_json's maps are sorted: the text is deterministic).
pub(super) fn pretty(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.push('\n');
    text
}
