//! Attribution, `--sbom` and `--dpkg-status`, judged from outside the code: the documents are
//! validated by the reference tools of each format (cyclonedx-python-lib's strict JSON
//! validator, `pyspdxtools`), packages are compared with what `dpkg -S` says about the image's
//! sources, and the md5sums with `md5sum -c`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

use crate::common::copy_bom;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// The python venv with the validators, made once (cached under the cargo target dir; the tests
/// of this binary wait for each other, and a venv is only moved into place when complete).
fn validators() -> PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sbom-validators");
    if venv.join("ready").exists() {
        return venv;
    }
    let staging = venv.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&staging)
        .status()
        .unwrap()
        .success();
    assert!(
        ok,
        "python3 -m venv failed: install python3-venv (.ci/run does)"
    );
    let out = Command::new(staging.join("bin/pip"))
        .args([
            "install",
            "-q",
            "cyclonedx-python-lib[json-validation]",
            "spdx-tools",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install of the validators failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(staging.join("ready"), "").unwrap();
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::rename(&staging, &venv).unwrap();
    // The venv's scripts name their interpreter by the staging path: use `python -m` only.
    venv
}

/// cyclonedx-python-lib's strict validator against the CycloneDX 1.6 schema.
fn assert_valid_cyclonedx(doc: &Path) {
    let script = "import sys\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        e = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
        print(e if e else 'valid')\n\
        sys.exit(1 if e else 0)\n";
    let out = Command::new(validators().join("bin/python"))
        .args(["-c", script])
        .arg(doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "CycloneDX validation of {}: {}{}",
        doc.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pyspdxtools -i FILE` (it parses and validates; an invalid document exits non-zero).
fn assert_valid_spdx(doc: &Path) {
    let out = Command::new(validators().join("bin/python"))
        .args(["-m", "spdx_tools.spdx.clitools.pyspdxtools", "-i"])
        .arg(doc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SPDX validation of {}: {}{}",
        doc.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn build(bom: &Path, root: &Path, extra: &[&str]) {
    let out = copy_bom()
        .arg("-f")
        .arg(bom)
        .arg("--root")
        .arg(root)
        .args(["--include-dir"])
        .arg(examples())
        .args(["--no-check"])
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `(image path, source)` of every regular file of a manifest.
fn manifest_sources(manifest: &Path) -> Vec<(String, String)> {
    read_json(manifest)["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "file")
        .filter_map(|r| {
            Some((
                r["path"].as_str()?.to_string(),
                r["source"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The other spelling of a path on a merged-/usr system (`/usr/lib/x` ↔ `/lib/x`).
fn merged_usr_alias(p: &str) -> Option<String> {
    for dir in ["lib", "lib64", "bin", "sbin"] {
        if let Some(rest) = p.strip_prefix(&format!("/usr/{dir}/")) {
            return Some(format!("/{dir}/{rest}"));
        }
        if let Some(rest) = p.strip_prefix(&format!("/{dir}/")) {
            return Some(format!("/usr/{dir}/{rest}"));
        }
    }
    None
}

/// What `dpkg -S` says owns each path (package names without `:arch`); absent when nothing.
fn dpkg_owners(paths: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    if paths.is_empty() {
        return found;
    }
    let out = Command::new("dpkg")
        .arg("-S")
        .args(paths)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "pkg[:arch][, pkg2...]: /path"
        if let Some((pkgs, path)) = line.split_once(": /") {
            let first = pkgs.split(", ").next().unwrap_or(pkgs);
            let name = first.split(':').next().unwrap_or(first);
            found.insert(format!("/{path}"), name.to_string());
        }
    }
    found
}

/// The package `dpkg -S` gives for the content of each source (the file its links lead to),
/// trying the merged-/usr spelling where the first finds nothing.
fn truth(sources: &BTreeSet<String>) -> BTreeMap<String, Option<String>> {
    let real: BTreeMap<&String, String> = sources
        .iter()
        .map(|s| {
            let r = std::fs::canonicalize(s).unwrap();
            (s, r.to_string_lossy().into_owned())
        })
        .collect();
    let first = dpkg_owners(&real.values().cloned().collect());
    let aliases: BTreeSet<String> = real
        .values()
        .filter(|r| !first.contains_key(*r))
        .filter_map(|r| merged_usr_alias(r))
        .collect();
    let second = dpkg_owners(&aliases);
    real.into_iter()
        .map(|(s, r)| {
            let owner = first
                .get(&r)
                .cloned()
                .or_else(|| merged_usr_alias(&r).and_then(|a| second.get(&a).cloned()));
            (s.clone(), owner)
        })
        .collect()
}

/// image path → package name (None for unpackaged files), from a CycloneDX document.
fn cyclonedx_files(doc: &Value) -> BTreeMap<String, Option<String>> {
    let mut files = BTreeMap::new();
    for c in doc["components"].as_array().unwrap() {
        if c["type"] == "file" {
            files.insert(c["name"].as_str().unwrap().to_string(), None);
            continue;
        }
        let name = c["name"].as_str().unwrap().to_string();
        for f in c["components"].as_array().unwrap() {
            files.insert(f["name"].as_str().unwrap().to_string(), Some(name.clone()));
        }
    }
    files
}

#[test]
#[ignore = "needs redis-server and python3, and PyPI for the validators"]
fn python_and_redis_image_sboms_validate_and_agree_with_dpkg() {
    assert!(
        Path::new("/usr/bin/redis-server").exists() && Path::new("/usr/bin/python3").exists(),
        "install redis-server and python3 (.ci/run does)"
    );
    let t = tempfile::tempdir().unwrap();
    let bom = t.path().join("app.yaml");
    std::fs::write(&bom, "includes: [python.yaml, redis.yaml]\n").unwrap();
    let root = t.path().join("image");
    let (cdx, spdx, manifest) = (
        t.path().join("sbom.cdx.json"),
        t.path().join("sbom.spdx.json"),
        t.path().join("manifest.json"),
    );
    build(
        &bom,
        &root,
        &[
            "--sbom",
            cdx.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    build(
        &bom,
        &root,
        &["--sbom", spdx.to_str().unwrap(), "--sbom-format", "spdx"],
    );
    assert_valid_cyclonedx(&cdx);
    assert_valid_spdx(&spdx);

    let doc = read_json(&cdx);
    let attributed = cyclonedx_files(&doc);
    let sources = manifest_sources(&manifest);
    assert_eq!(
        attributed.keys().collect::<BTreeSet<_>>(),
        sources.iter().map(|(p, _)| p).collect::<BTreeSet<_>>(),
        "every regular file of the image is in the SBOM"
    );
    let owners = truth(&sources.iter().map(|(_, s)| s.clone()).collect());
    let expected: BTreeSet<&String> = owners.values().flatten().collect();
    let listed: BTreeSet<&String> = attributed.values().flatten().collect();
    assert_eq!(listed, expected, "the packages are those dpkg -S names");
    assert!(listed.len() >= 20, "{listed:?}");
    // The link /usr/bin/redis-server -> redis-check-rdb: the package of its content.
    assert_eq!(
        attributed
            .get("/bin/redis-server")
            .cloned()
            .flatten()
            .as_deref(),
        Some("redis-tools")
    );
    // File by file, a sample of one in 20 (and every unpackaged one).
    let mut checked = 0;
    for (i, (path, src)) in sources.iter().enumerate() {
        let want = owners.get(src).cloned().flatten();
        if i % 20 == 0 || want.is_none() {
            assert_eq!(
                attributed.get(path).cloned().flatten(),
                want,
                "{path} from {src}"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked}");

    // SPDX: the same packages, each CONTAINS its files.
    let sp = read_json(&spdx);
    let names: BTreeSet<&str> = sp["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, listed.iter().map(|s| s.as_str()).collect());
    let contains = sp["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "CONTAINS")
        .count();
    let packaged = attributed.values().filter(|p| p.is_some()).count();
    assert_eq!(contains, packaged);
    assert_eq!(sp["creationInfo"]["created"], "2023-11-14T22:13:20Z");

    // Both documents name the image's digest, as `copy_bom digest` computes it.
    let out = copy_bom()
        .arg("digest")
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(read_json(&manifest)["digest"], digest.as_str());
    let properties = doc["metadata"]["properties"].to_string();
    assert!(properties.contains(&digest), "{properties}");
    assert!(
        sp["comment"].to_string().contains(&digest),
        "{}",
        sp["comment"]
    );
}

#[test]
fn sboms_are_deterministic() {
    let t = tempfile::tempdir().unwrap();
    let bom = t.path().join("ls.yaml");
    std::fs::write(
        &bom,
        "targets:\n  - target: /bin\n    copy:\n      - files: [/bin/ls]\n",
    )
    .unwrap();
    for format in ["cyclonedx", "spdx"] {
        let docs: Vec<String> = ["a", "b"]
            .iter()
            .map(|r| {
                let out = t.path().join(format!("{r}.{format}.json"));
                build(
                    &bom,
                    &t.path().join(r),
                    &["--sbom", out.to_str().unwrap(), "--sbom-format", format],
                );
                std::fs::read_to_string(out).unwrap()
            })
            .collect();
        assert_eq!(docs[0], docs[1], "{format}: two builds, one document");
        assert!(
            docs[0].contains("2023-11-14T22:13:20Z"),
            "SOURCE_DATE_EPOCH"
        );
        assert!(docs[0].contains("pkg:deb/debian/coreutils@"), "{format}");
    }
}

/// A package built here, installed only in a sysroot: its name, version and files.
const PKG: &str = "cbtest-data";
const VERSION: &str = "1:2.0+b1";

/// Builds the .deb with `dpkg-deb --build`, unpacks it with `dpkg-deb -x` into a merged-/usr
/// sysroot (`lib -> usr/lib`; the package ships `/lib/cbtest/data.txt`) and records it in the
/// sysroot's dpkg database as dpkg would.
fn sysroot_with_package(t: &Path) -> PathBuf {
    let pkg = t.join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        format!(
            "Package: {PKG}\nVersion: {VERSION}\nArchitecture: amd64\nMaintainer: T <t@example.org>\n\
             Description: test data\n a package for copy_bom's tests\n"
        ),
    )
    .unwrap();
    let files = [
        ("lib/cbtest/data.txt", "data\n".to_string()),
        (
            "usr/share/doc/cbtest-data/copyright",
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
             Upstream-Name: cbtest\n\nFiles: *\nCopyright: 2026 T\nLicense: Expat\n\n\
             License: Expat\n Permission is hereby granted.\n"
                .to_string(),
        ),
        ("usr/share/cbtest/other.txt", "other\n".to_string()),
    ];
    for (rel, text) in &files {
        let p = pkg.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let deb = t.join("cbtest.deb");
    let ok = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let unpacked = t.join("unpacked");
    let ok = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(ok.success());
    // The sysroot: merged /usr, the package's files where dpkg would have put them.
    let sysroot = t.join("sysroot");
    std::fs::create_dir_all(sysroot.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", sysroot.join("lib")).unwrap();
    let ok = Command::new("cp")
        .args(["-a", "--no-target-directory"])
        .arg(unpacked.join("lib"))
        .arg(sysroot.join("usr/lib"))
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("cp")
        .args(["-a"])
        .arg(unpacked.join("usr"))
        .arg(&sysroot)
        .status()
        .unwrap();
    assert!(ok.success());
    // A file the host's dpkg owns (base-files) but the sysroot's does not.
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    std::fs::write(sysroot.join("etc/debian_version"), "sysroot\n").unwrap();
    // Its dpkg database: the status entry from `dpkg-deb -f`, the list from the archive.
    let fields = Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(fields.status.success());
    let control = String::from_utf8(fields.stdout).unwrap();
    let status = control.replacen("Version:", "Status: install ok installed\nVersion:", 1);
    let admin = sysroot.join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("info")).unwrap();
    std::fs::write(admin.join("status"), status).unwrap();
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let list: String = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| {
            let p = p.trim_start_matches('.').trim_end_matches('/');
            if p.is_empty() {
                "/.\n".to_string()
            } else {
                format!("{p}\n")
            }
        })
        .collect();
    assert!(list.contains("/lib/cbtest/data.txt\n"), "{list}");
    std::fs::write(admin.join(format!("info/{PKG}.list")), list).unwrap();
    sysroot
}

#[test]
fn a_sysroot_is_attributed_from_its_own_database() {
    let t = tempfile::tempdir().unwrap();
    let sysroot = sysroot_with_package(t.path());
    let bom = t.path().join("data.yaml");
    std::fs::write(
        &bom,
        "targets:\n  - target: /data\n    copy:\n      - files:\n          - /usr/lib/cbtest/data.txt\n          - /etc/debian_version\n",
    )
    .unwrap();
    let root = t.path().join("image");
    let cdx = t.path().join("sbom.cdx.json");
    let spdx = t.path().join("sbom.spdx.json");
    let manifest = t.path().join("manifest.json");
    for (out, format) in [(&cdx, "cyclonedx"), (&spdx, "spdx")] {
        build(
            &bom,
            &root,
            &[
                "--sysroot",
                sysroot.to_str().unwrap(),
                "--sbom",
                out.to_str().unwrap(),
                "--sbom-format",
                format,
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        );
    }
    // With --sbom the manifest names each file's package (null: unpackaged).
    let records = read_json(&manifest);
    let package_of = |p: &str| {
        records["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == p)
            .map(|r| r["package"].clone())
            .unwrap()
    };
    assert_eq!(package_of("/data/data.txt")["name"], PKG);
    assert_eq!(package_of("/data/data.txt")["version"], VERSION);
    assert_eq!(package_of("/data/debian_version"), Value::Null);
    let doc = read_json(&cdx);
    let files = cyclonedx_files(&doc);
    assert_eq!(
        files,
        BTreeMap::from([
            ("/data/data.txt".to_string(), Some(PKG.to_string())),
            // The host's base-files owns /etc/debian_version; the sysroot's dpkg does not.
            ("/data/debian_version".to_string(), None),
        ])
    );
    let packages: Vec<&Value> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .collect();
    assert_eq!(packages.len(), 1);
    let p = packages[0];
    assert_eq!(
        p["purl"],
        "pkg:deb/debian/cbtest-data@1%3A2.0%2Bb1?arch=amd64"
    );
    assert_eq!(p["version"], VERSION);
    assert_eq!(p["licenses"][0]["license"]["name"], "Expat");
    let props: BTreeMap<&str, &str> = p["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["name"].as_str().unwrap(), x["value"].as_str().unwrap()))
        .collect();
    // One of its three files (data, copyright, other) is in the image.
    assert_eq!(props.get("copy_bom:partial"), Some(&"true"));
    assert_eq!(props.get("copy_bom:files-in-package"), Some(&"3"));
    let sp = read_json(&spdx);
    assert_eq!(sp["packages"][0]["licenseDeclared"], "MIT");
    assert_eq!(sp["packages"][0]["filesAnalyzed"], true);
}

#[test]
fn dpkg_status_records_parse_and_their_md5sums_match_the_image() {
    let t = tempfile::tempdir().unwrap();
    let bom = t.path().join("ls.yaml");
    std::fs::write(
        &bom,
        "targets:\n  - target: /bin\n    copy:\n      - files: [/bin/ls, /usr/bin/sort]\n",
    )
    .unwrap();
    let root = t.path().join("image");
    // An absolute link in the root: the records must land inside the image, not on the host.
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("var")).unwrap();

    let dry = copy_bom()
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(&root)
        .args(["--dpkg-status", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success());
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("write /var/lib/dpkg/status.d/coreutils (dpkg status of coreutils"),
        "{plan}"
    );
    assert!(
        plan.contains("write /var/lib/dpkg/status.d/libc6.md5sums"),
        "{plan}"
    );
    assert!(!root.join("bin").exists(), "a dry run writes nothing");

    build(&bom, &root, &["--dpkg-status"]);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing outside the root"
    );
    let status_d = root
        .join(outside.strip_prefix("/").unwrap())
        .join("lib/dpkg/status.d");
    let mut names: Vec<String> = std::fs::read_dir(&status_d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.contains(&"coreutils".to_string()), "{names:?}");
    assert!(names.contains(&"libc6.md5sums".to_string()), "{names:?}");
    for name in names.iter().filter(|n| !n.ends_with(".md5sums")) {
        // Parsed by python's RFC 822 parser: the fields dpkg has for the package.
        let script = "import sys, email.parser\n\
            m = email.parser.Parser().parsestr(open(sys.argv[1]).read())\n\
            print(m['Package'], m['Version'], m['Architecture'])\n";
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(status_d.join(name))
            .output()
            .unwrap();
        assert!(out.status.success());
        let fields = String::from_utf8(out.stdout).unwrap();
        let version = Command::new("dpkg-query")
            .args(["-W", "-f", "${Package} ${Version} ${Architecture}\n", name])
            .output()
            .unwrap();
        assert_eq!(fields, String::from_utf8(version.stdout).unwrap(), "{name}");
        // md5sum -c, run in the image, checks every line against the image's file.
        let sums = status_d.join(format!("{name}.md5sums"));
        let text = std::fs::read_to_string(&sums).unwrap();
        assert!(!text.is_empty() && !text.contains("  /"), "{name}: {text}");
        let check = Command::new("md5sum")
            .arg("-c")
            .arg(&sums)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    let coreutils = std::fs::read_to_string(status_d.join("coreutils.md5sums")).unwrap();
    assert_eq!(
        coreutils.lines().count(),
        2,
        "only the copied files: {coreutils}"
    );
}

#[test]
fn a_sysroot_without_a_dpkg_database_is_refused_before_any_write() {
    let t = tempfile::tempdir().unwrap();
    let sysroot = t.path().join("sysroot");
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    std::fs::write(sysroot.join("etc/motd"), "hi\n").unwrap();
    let bom = t.path().join("motd.yaml");
    std::fs::write(
        &bom,
        "targets:\n  - target: /etc\n    copy:\n      - files: [/etc/motd]\n",
    )
    .unwrap();
    let root = t.path().join("image");
    for extra in [["--sbom", "sbom.json"], ["--dpkg-status", "--dry-run"]] {
        let out = copy_bom()
            .current_dir(t.path())
            .arg("-f")
            .arg(&bom)
            .arg("--root")
            .arg(&root)
            .arg("--sysroot")
            .arg(&sysroot)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(255), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("var/lib/dpkg/status"), "{err}");
        assert!(!root.exists(), "nothing written");
        assert!(!t.path().join("sbom.json").exists());
    }
}
