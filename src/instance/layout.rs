//! What a new instance contains, as an ordered list of entries (SPEC A§6).
//!
//! Planning is separate from writing so that the whole layout reads in one
//! place and the writer stays generic. Destinations are relative to the
//! instance directory.

use std::path::{Path, PathBuf};

use super::sources::Sources;
use super::{InitRa, NewOptions};
use crate::error::Result;

/// The `Occlum.json` template of the original (`etc/template/Occlum.json`).
const OCCLUM_JSON: &str = include_str!("../../templates/Occlum.json");
/// A starter bom for the image.
const APP_YAML: &str = include_str!("../../templates/app.yaml");
/// The hosts file of `occlum new` (three spaces, as in the original).
const HOSTS: &str = "127.0.0.1   localhost\n";

const IMAGE_DIRS: [&str; 11] = [
    "bin", "lib", "lib64", "root", "host", "tmp", "dev", "proc", "etc", "sbin", "ext2",
];
const INITFS_DIRS: [&str; 5] = ["bin", "lib", "dev", "proc", "etc"];
const AECS_INITFS_DIRS: [&str; 7] = [
    "bin",
    "lib",
    "dev",
    "proc",
    "etc/kubetee",
    "lib64",
    "opt/occlum",
];
/// The musl runtime from Occlum's toolchain (the loader is listed apart).
const MUSL_LIBS: [&str; 4] = ["libc.so", "libstdc++.so.6", "libgcc_s.so.1", "libgomp.so.1"];
const GLIBC_LOADER: &str = "ld-linux-x86-64.so.2";
const GLIBC_LIBS: [&str; 3] = ["libc.so.6", "libpthread.so.0", "libm.so.6"];
const GLIBC_OS_LIBS: [&str; 2] = ["libstdc++.so.6", "libgcc_s.so.1"];

/// One step of building an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    /// A directory (with its parents).
    Dir(PathBuf),
    /// A file with fixed contents; `mode` when it must not depend on the umask.
    Write {
        dest: PathBuf,
        contents: &'static str,
        mode: Option<u32>,
    },
    /// A copy of `src` (symlinks followed); `what` names the file for the
    /// note written when `src` does not exist.
    Copy {
        src: PathBuf,
        dest: PathBuf,
        what: &'static str,
    },
    /// A symbolic link holding `target` verbatim.
    Symlink { dest: PathBuf, target: PathBuf },
    /// Something known at planning time to be missing.
    Missing(String),
}

/// The entries of a new instance, in the order they are created.
pub(super) fn plan(opts: &NewOptions) -> Result<Vec<Entry>> {
    let src = Sources::new(opts);
    let mut plan = Vec::new();
    image(&src, &mut plan);
    match opts.init_ra {
        None => default_initfs(&src, &mut plan),
        Some(InitRa::GrpcRatls) => grpc_ratls_initfs(&src, &mut plan),
        Some(InitRa::Aecs) => aecs_initfs(&src, &mut plan)?,
    }
    plan.push(write("Occlum.json", OCCLUM_JSON, Some(0o644)));
    plan.push(write("app.yaml", APP_YAML, None));
    Ok(plan)
}

fn image(src: &Sources, plan: &mut Vec<Entry>) {
    dirs(plan, "image", &IMAGE_DIRS);
    plan.push(write("image/etc/hosts", HOSTS, None));
    localtime(src, plan, "image/etc");
    musl(src, plan, "image/lib");
    if src.has_glibc() {
        glibc(src, plan, "image");
    } else {
        plan.push(Entry::Missing(glibc_missing(src, "image")));
    }
}

fn default_initfs(src: &Sources, plan: &mut Vec<Entry>) {
    dirs(plan, "initfs", &INITFS_DIRS);
    plan.push(write("initfs/etc/hosts", HOSTS, None));
    localtime(src, plan, "initfs/etc");
    musl(src, plan, "initfs/lib");
    init(src, plan, "init");
}

/// No hosts file here: the original leaves it out for this variant.
fn grpc_ratls_initfs(src: &Sources, plan: &mut Vec<Entry>) {
    const WHAT: &str = "the gRPC RA-TLS client";
    dirs(plan, "initfs", &INITFS_DIRS);
    localtime(src, plan, "initfs/etc");
    let certs = "etc/ssl/certs/ca-certificates.crt";
    plan.push(copy(
        src.host(certs),
        Path::new("initfs").join(certs),
        "the CA certificates",
    ));
    musl(src, plan, "initfs/lib");
    let toolchain = [
        src.occlum("toolchains/grpc_ratls/musl/libgrpc_ratls_client.so"),
        src.occlum("toolchains/grpc_ratls/musl/libhw_grpc_proto.so"),
        src.occlum("toolchains/dcap_lib/musl/libocclum_dcap.so.0.1.0"),
        src.musl_lib("libcjson.so.1"),
    ];
    for lib in toolchain {
        plan.push(copy_into(lib, "initfs/lib", WHAT));
    }
    init(src, plan, "init_grpc_ratls");
    init_ra_conf(src, plan, "init_grpc_ratls.json");
}

/// The AECS init is a glibc program: its initfs carries the glibc runtime of
/// the image plus the AECS client and the libraries it loads.
fn aecs_initfs(src: &Sources, plan: &mut Vec<Entry>) -> Result<()> {
    const WHAT: &str = "the AECS client";
    const LIB: &str = "initfs/opt/occlum/glibc/lib";
    dirs(plan, "initfs", &AECS_INITFS_DIRS);
    localtime(src, plan, "initfs/etc");
    if src.has_glibc() {
        glibc(src, plan, "initfs");
    } else {
        dirs(plan, "initfs/opt/occlum/glibc", &["lib", "etc"]);
        plan.push(Entry::Missing(glibc_missing(src, "initfs")));
    }
    let toolchain = src.aecs_client_files()?;
    match &toolchain {
        Some(files) => files
            .iter()
            .for_each(|f| plan.push(copy_into(f.clone(), LIB, WHAT))),
        None => plan.push(Entry::Missing(format!(
            "{LIB} lacks {WHAT} libraries: {} does not exist",
            src.occlum("toolchains/aecs_client").display()
        ))),
    }
    for name in ["libz.so.1", "libdl.so.2"] {
        plan.push(copy_into(src.os_lib(name), LIB, WHAT));
    }
    for name in ["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"] {
        plan.push(copy_into(src.glibc_lib(name), LIB, WHAT));
    }
    if src.os_lib("libprotobuf.so.32").exists() {
        plan.push(copy_into(src.os_lib("libprotobuf.so.32"), LIB, WHAT));
    }
    for name in ["libssl.so.1.1", "libcrypto.so.1.1"] {
        let shipped = toolchain
            .iter()
            .flatten()
            .any(|f| f.file_name() == Some(name.as_ref()));
        if !shipped {
            plan.push(copy_into(src.os_lib(name), LIB, WHAT));
        }
    }
    init(src, plan, "init_aecs");
    init_ra_conf(src, plan, "init_aecs.json");
    Ok(())
}

fn musl(src: &Sources, plan: &mut Vec<Entry>, lib: &str) {
    const WHAT: &str = "the musl runtime";
    plan.push(copy_into(src.host("/lib/ld-musl-x86_64.so.1"), lib, WHAT));
    for name in MUSL_LIBS {
        plan.push(copy_into(src.musl_lib(name), lib, WHAT));
    }
}

/// Occlum's glibc under `root` (`image` or `initfs`). Programs name
/// `/lib64/ld-linux-x86-64.so.2` as their interpreter, so the loader lives
/// there and the glibc lib dir links to it.
fn glibc(src: &Sources, plan: &mut Vec<Entry>, root: &str) {
    const WHAT: &str = "the glibc runtime";
    let glibc = Path::new(root).join("opt/occlum/glibc");
    dirs(plan, &glibc.to_string_lossy(), &["lib", "etc"]);
    let lib64 = Path::new(root).join("lib64");
    plan.push(copy(
        src.glibc_lib(GLIBC_LOADER),
        lib64.join(GLIBC_LOADER),
        WHAT,
    ));
    plan.push(Entry::Symlink {
        dest: glibc.join("lib").join(GLIBC_LOADER),
        target: Path::new("/lib64").join(GLIBC_LOADER),
    });
    for name in GLIBC_LIBS {
        plan.push(copy(
            src.glibc_lib(name),
            glibc.join("lib").join(name),
            WHAT,
        ));
    }
    for name in GLIBC_OS_LIBS {
        plan.push(copy(src.os_lib(name), glibc.join("lib").join(name), WHAT));
    }
    localtime(src, plan, &glibc.join("etc").to_string_lossy());
}

fn glibc_missing(src: &Sources, root: &str) -> String {
    format!(
        "{root}/lib64/{GLIBC_LOADER} and {root}/opt/occlum/glibc (the glibc runtime) were not \
         created: {} does not exist, so glibc programs will not run",
        src.occlum("glibc/lib").display()
    )
}

fn localtime(src: &Sources, plan: &mut Vec<Entry>, etc: &str) {
    plan.push(copy_into(
        src.host("/etc/localtime"),
        etc,
        "the host's time zone",
    ));
}

fn init(src: &Sources, plan: &mut Vec<Entry>, program: &str) {
    let from = src.occlum("build/bin").join(program);
    plan.push(copy(
        from,
        PathBuf::from("initfs/bin/init"),
        "the init program",
    ));
}

/// The configuration template `occlum build` copies into initfs/etc.
fn init_ra_conf(src: &Sources, plan: &mut Vec<Entry>, template: &str) {
    let from = src.occlum("etc/template").join(template);
    let what = "the init-ra configuration";
    plan.push(copy(from, PathBuf::from("init_ra_conf.json"), what));
}

fn dirs(plan: &mut Vec<Entry>, root: &str, names: &[&str]) {
    plan.extend(
        names
            .iter()
            .map(|name| Entry::Dir(Path::new(root).join(name))),
    );
}

fn write(dest: &str, contents: &'static str, mode: Option<u32>) -> Entry {
    Entry::Write {
        dest: PathBuf::from(dest),
        contents,
        mode,
    }
}

fn copy(src: PathBuf, dest: PathBuf, what: &'static str) -> Entry {
    Entry::Copy { src, dest, what }
}

/// A copy that keeps the source's file name.
fn copy_into(src: PathBuf, dir: &str, what: &'static str) -> Entry {
    let name = src.file_name().map(PathBuf::from).unwrap_or_default();
    let dest = Path::new(dir).join(name);
    copy(src, dest, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(occlum_dir: &Path) -> NewOptions {
        let mut opts = NewOptions::new("inst");
        opts.occlum_dir = occlum_dir.to_path_buf();
        opts.host_root = PathBuf::from("/nonexistent-host");
        opts
    }

    #[test]
    fn without_glibc_the_plan_notes_it_and_has_no_opt_dir() {
        let opts = options(Path::new("/nonexistent-occlum"));
        let plan = plan(&opts).unwrap();
        assert!(!plan.iter().any(|e| matches!(e, Entry::Symlink { .. })));
        assert!(
            !plan
                .iter()
                .any(|e| matches!(e, Entry::Dir(d) if d.starts_with("image/opt")))
        );
        let notes: Vec<_> = plan
            .iter()
            .filter(|e| matches!(e, Entry::Missing(_)))
            .collect();
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn with_glibc_the_loader_link_points_at_lib64() {
        let occlum = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(occlum.path().join("glibc/lib")).unwrap();
        let plan = plan(&options(occlum.path())).unwrap();
        let link = Entry::Symlink {
            dest: PathBuf::from("image/opt/occlum/glibc/lib/ld-linux-x86-64.so.2"),
            target: PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
        };
        assert!(plan.contains(&link));
        assert!(!plan.iter().any(|e| matches!(e, Entry::Missing(_))));
    }

    #[test]
    fn aecs_takes_ssl_from_the_os_only_when_the_toolchain_lacks_it() {
        let occlum = tempfile::tempdir().unwrap();
        let toolchain = occlum.path().join("toolchains/aecs_client");
        std::fs::create_dir_all(&toolchain).unwrap();
        std::fs::write(toolchain.join("libssl.so.1.1"), "").unwrap();
        let mut opts = options(occlum.path());
        opts.init_ra = Some(InitRa::Aecs);
        let srcs: Vec<PathBuf> = plan(&opts)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Copy { src, .. } => Some(src),
                _ => None,
            })
            .collect();
        assert!(srcs.contains(&toolchain.join("libssl.so.1.1")));
        assert!(srcs.contains(&PathBuf::from(
            "/nonexistent-host/usr/lib64/libcrypto.so.1.1"
        )));
        assert!(!srcs.contains(&PathBuf::from("/nonexistent-host/usr/lib64/libssl.so.1.1")));
    }
}
