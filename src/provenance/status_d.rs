//! `--dpkg-status`: the dpkg database of the image, written as distroless images carry it, so
//! that scanners (syft, trivy, grype) that read `var/lib/dpkg/status.d/` know the packages of
//! an image that has no dpkg. Per package with files in the image:
//! `var/lib/dpkg/status.d/NAME`, its paragraph of the status file as dpkg keeps it, and
//! `var/lib/dpkg/status.d/NAME.md5sums`, the MD5 of each of its files in the image, in dpkg's
//! `md5sums` format (`<md5>  <path without the leading />`). The paths are the image's, so
//! that a scanner finds each file where it is; only the copied files are listed.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use md5::{Digest, Md5};
use rayon::prelude::*;

use super::Attribution;
use crate::fs::ImagePath;

/// Where the files go in the image.
const STATUS_D: &str = "/var/lib/dpkg/status.d";

/// One file to write into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFile {
    pub dest: ImagePath,
    pub text: String,
    /// For the plan and the manifest.
    pub why: String,
}

/// The status.d files of an attributed (planned) image. The MD5 sums are of the sources that
/// will be copied, read now: the files are validated with the rest of the plan, before any
/// write.
pub fn status_files(attribution: &Attribution) -> io::Result<Vec<StatusFile>> {
    let sums: Vec<Option<String>> = attribution
        .files
        .par_iter()
        .map(|f| match (&f.source, f.package) {
            (Some(src), Some(_)) => md5_file(src).map(Some),
            _ => Ok(None),
        })
        .collect::<io::Result<_>>()?;
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &attribution.packages {
        *names.entry(p.package.name.as_str()).or_default() += 1;
    }
    let mut out = Vec::new();
    for (i, p) in attribution.packages.iter().enumerate() {
        let pkg = &p.package;
        // Two architectures of one package (Multi-Arch: same) get dpkg's qualified names.
        let name = if names.get(pkg.name.as_str()).copied().unwrap_or(0) > 1 {
            format!("{}:{}", pkg.name, pkg.architecture)
        } else {
            pkg.name.clone()
        };
        let mut md5sums = String::new();
        for (f, sum) in attribution.files.iter().zip(&sums) {
            if let (Some(sum), Some(j)) = (sum, f.package)
                && j == i
            {
                let rel = f
                    .path
                    .as_path()
                    .strip_prefix("/")
                    .unwrap_or(f.path.as_path());
                md5sums.push_str(&format!("{sum}  {}\n", rel.display()));
            }
        }
        let why = format!(
            "dpkg status of {} {} (--dpkg-status)",
            pkg.name, pkg.version
        );
        let at = |file: String| ImagePath::parse(format!("{STATUS_D}/{file}"));
        // A package name is a plain name (dpkg allows [a-z0-9+.-]); anything else is skipped.
        let (Ok(control), Ok(sums_at)) = (at(name.clone()), at(format!("{name}.md5sums"))) else {
            continue;
        };
        if control.parent().as_ref().map(|p| p.as_path()) != Some(Path::new(STATUS_D)) {
            continue;
        }
        out.push(StatusFile {
            dest: control,
            text: pkg.control.clone(),
            why: why.clone(),
        });
        out.push(StatusFile {
            dest: sums_at,
            text: md5sums,
            why,
        });
    }
    Ok(out)
}

fn md5_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
