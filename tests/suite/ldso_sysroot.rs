//! The resolver in a sysroot: a relative `--sysroot` (defect 4), absolute
//! links resolved inside the sysroot and the host path to read of each
//! library (defect 5), and the ld.so.conf stand-in switch. The truth for
//! what a sysroot's loader finds is the real loader run in it with chroot
//! (root only); without root, the relative and absolute forms must agree
//! and every file read must be the sysroot's.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ldso_support::*;
use copy_bom::ldso::{Resolver, ResolverOptions, Via};

const LD: &str = "/lib64/ld-linux-x86-64.so.2";
const MULTIARCH: &str = "lib/x86_64-linux-gnu";

/// A runnable sysroot `d/sys`: the host's loader and libc copied into
/// `/lib/x86_64-linux-gnu`, `/lib64/ld-linux-x86-64.so.2` an absolute link
/// to it (as on Debian), `/bin/prog` needing `libsy.so` from `/opt/sy`
/// (RPATH) and `libonly.so`, found in `/usr/lib` through an absolute link
/// whose target, `/opt/only/libonly.so`, exists only in the sysroot.
fn sysroot(d: &Path) -> PathBuf {
    let s = d.join("sys");
    let multiarch = s.join(MULTIARCH);
    fs::create_dir_all(&multiarch).unwrap();
    for f in ["ld-linux-x86-64.so.2", "libc.so.6"] {
        fs::copy(
            Path::new("/lib/x86_64-linux-gnu").join(f),
            multiarch.join(f),
        )
        .unwrap();
    }
    fs::create_dir_all(s.join("lib64")).unwrap();
    symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        s.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    lib(&s.join("opt/sy/libsy.so"), &func("sy", &[]), &[]);
    lib(
        &s.join("opt/only/libonly.so"),
        &func("only", &[]),
        &["-Wl,-soname,libonly.so"],
    );
    fs::create_dir_all(s.join("usr/lib")).unwrap();
    symlink("/opt/only/libonly.so", s.join("usr/lib/libonly.so")).unwrap();
    exe(
        &s.join("bin/prog"),
        &main_calling(&["sy", "only"]),
        &[
            &format!("-L{}", s.join("opt/sy").display()),
            &format!("-L{}", s.join("opt/only").display()),
            "-lsy",
            "-lonly",
            "-Wl,--disable-new-dtags,-rpath,/opt/sy",
        ],
    );
    s
}

fn json_deps(args: &[&str], file: &str, cwd: &Path) -> serde_json::Value {
    let (code, text) = deps_cli(&[&["--json"], args].concat(), Path::new(file), Some(cwd));
    assert_eq!(code, Some(0), "{text}");
    serde_json::from_str(&text).unwrap()
}

fn lib_of<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v[0]["resolution"]["libs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {v}"))
}

#[test]
fn a_relative_sysroot_works_like_the_absolute_one() {
    let (_t, d) = tmp();
    let s = sysroot(&d);
    let (code, relative) = deps_cli(&["--sysroot", "sys"], Path::new("/bin/prog"), Some(&d));
    assert_eq!(code, Some(0), "{relative}");
    let (_, absolute) = deps_cli(
        &["--sysroot", s.to_str().unwrap()],
        Path::new("/bin/prog"),
        Some(&d),
    );
    assert_eq!(relative, absolute);
    assert!(
        relative.contains("libsy.so => /opt/sy/libsy.so"),
        "{relative}"
    );
    assert!(
        relative.contains("libonly.so => /usr/lib/libonly.so"),
        "{relative}"
    );
    // The host path of each library is absolute, inside the sysroot.
    let v = json_deps(&["--sysroot", "sys"], "/bin/prog", &d);
    let host = lib_of(&v, "libsy.so")["host"].as_str().unwrap().to_string();
    assert_eq!(PathBuf::from(host), s.join("opt/sy/libsy.so"));
}

#[test]
fn absolute_links_in_a_sysroot_are_read_inside_it() {
    let (_t, d) = tmp();
    let s = sysroot(&d);
    // The sysroot's loader differs from the host's.
    fs::remove_file(s.join(MULTIARCH).join("ld-linux-x86-64.so.2")).unwrap();
    lib(
        &s.join(MULTIARCH).join("ld-linux-x86-64.so.2"),
        "int not_the_hosts_loader(void) { return 1; }\n",
        &["-Wl,-soname,ld-linux-x86-64.so.2"],
    );
    let v = json_deps(&["--sysroot", s.to_str().unwrap()], "/bin/prog", &d);
    let ld = lib_of(&v, LD);
    assert_eq!(ld["path"], LD);
    let host = PathBuf::from(ld["host"].as_str().unwrap());
    assert_eq!(host, s.join(MULTIARCH).join("ld-linux-x86-64.so.2"));
    assert_eq!(
        fs::read(&host).unwrap(),
        fs::read(s.join(MULTIARCH).join("ld-linux-x86-64.so.2")).unwrap()
    );
    assert_ne!(fs::read(&host).unwrap(), fs::read(LD).unwrap());
    // A library reached through an absolute link whose target exists only
    // in the sysroot.
    let only = lib_of(&v, "libonly.so");
    assert_eq!(only["path"], "/usr/lib/libonly.so");
    assert_eq!(
        PathBuf::from(only["host"].as_str().unwrap()),
        s.join("opt/only/libonly.so")
    );
}

/// The sysroot's loader run on FILE in the sysroot (chroot), tracing as
/// ldd makes it (`LD_TRACE_LOADED_OBJECTS`, which, unlike `--list`, goes on
/// past a missing library): NAME => PATH pairs. The chroot is done in the
/// child itself: a `chroot` program would trace its own libraries.
fn chroot_list(s: &Path, file: &str) -> std::collections::BTreeSet<(String, String)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let root = std::ffi::CString::new(s.as_os_str().as_bytes()).unwrap();
    let mut cmd = Command::new(LD);
    cmd.arg(file)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .env_remove("LD_LIBRARY_PATH");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (n, p) = l.trim().split_once(" => ")?;
            Some((n.to_string(), p.split(" (").next()?.to_string()))
        })
        .filter(|(n, _)| !n.starts_with("linux-vdso"))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn a_relative_sysroot_agrees_with_its_loader_run_in_chroot() {
    let (_t, d) = tmp();
    let s = sysroot(&d);
    let truth = chroot_list(&s, "/bin/prog");
    assert!(!truth.is_empty());
    let (code, text) = deps_cli(&["--sysroot", "sys"], Path::new("/bin/prog"), Some(&d));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cli_pairs_like(&text, &truth), truth, "{text}");
}

/// `d/sys` with `libconf.so` only in `/opt/conf`, which only the sysroot's
/// ld.so.conf names; no ld.so.cache.
fn conf_only_sysroot(d: &Path) -> PathBuf {
    let s = sysroot(d);
    lib(&s.join("opt/conf/libconf.so"), &func("cf", &[]), &[]);
    exe(
        &s.join("bin/cprog"),
        &main_calling(&["cf"]),
        &[&format!("-L{}", s.join("opt/conf").display()), "-lconf"],
    );
    fs::create_dir_all(s.join("etc")).unwrap();
    fs::write(s.join("etc/ld.so.conf"), "/opt/conf\n").unwrap();
    assert!(!s.join("etc/ld.so.cache").exists());
    s
}

#[test]
fn the_ld_so_conf_stand_in_can_be_turned_off() {
    let (_t, d) = tmp();
    let s = conf_only_sysroot(&d);
    let resolve = |conf_without_cache| {
        Resolver::new(ResolverOptions {
            sysroot: s.clone(),
            conf_without_cache,
            ..ResolverOptions::default()
        })
        .resolve(Path::new("/bin/cprog"), None)
        .unwrap()
    };
    let with = resolve(true);
    let dep = with.libs.iter().find(|l| l.name == "libconf.so").unwrap();
    assert_eq!(dep.via, Via::DefaultDir("/opt/conf".into()));
    let without = resolve(false);
    let dep = without
        .libs
        .iter()
        .find(|l| l.name == "libconf.so")
        .unwrap();
    assert_eq!(dep.via, Via::NotFound);
    assert!(dep.path.is_none() && dep.host.is_none());
}

#[test]
#[ignore = "needs root"]
fn glibc_does_not_read_ld_so_conf_without_a_cache() {
    let (_t, d) = tmp();
    let s = conf_only_sysroot(&d);
    let truth = chroot_list(&s, "/bin/cprog");
    assert!(
        truth.contains(&("libconf.so".into(), "not found".into())),
        "{truth:?}"
    );
}

/// A sysroot whose interpreter is a stand-in carrying glibc's banner for
/// `version`, and `/bin/lprog` (RPATH `/opt/rp`) needing `libq.so`, which
/// is in `/opt/rp`, `/opt/rp/tls` and `/opt/rp/haswell`.
fn versioned_sysroot(d: &Path, version: &str) -> PathBuf {
    let s = d.join(format!("sys-{version}"));
    lib(
        &s.join("lib64/ld-linux-x86-64.so.2"),
        &format!(
            "const char banner[] = \"ld.so (GNU libc) stable release version {version}.\\n\";\nconst char *b(void) {{ return banner; }}\n"
        ),
        &["-Wl,-soname,ld-linux-x86-64.so.2"],
    );
    for sub in ["opt/rp", "opt/rp/tls", "opt/rp/haswell"] {
        lib(&s.join(sub).join("libq.so"), &func("q", &[]), &[]);
    }
    exe(
        &s.join("bin/lprog"),
        &main_calling(&["q"]),
        &[
            &format!("-L{}", s.join("opt/rp").display()),
            "-lq",
            "-Wl,--disable-new-dtags,-rpath,/opt/rp",
        ],
    );
    s
}

fn libq(s: &Path, cpu: Option<copy_bom::ldso::Cpu>) -> Option<PathBuf> {
    let res = Resolver::new(ResolverOptions {
        sysroot: s.to_path_buf(),
        cpu,
        ..ResolverOptions::default()
    })
    .resolve(Path::new("/bin/lprog"), None)
    .unwrap();
    res.libs.into_iter().find(|l| l.name == "libq.so")?.path
}

/// ld.so(8): the legacy `tls` and platform subdirectories are searched up to
/// glibc 2.36 only (the rule, since no 2.37 loader runs here); the version
/// is read from the sysroot's own interpreter.
#[test]
fn legacy_subdirectories_follow_the_sysroot_loaders_version() {
    let (_t, d) = tmp();
    let old = versioned_sysroot(&d, "2.36");
    assert_eq!(libq(&old, None), Some(PathBuf::from("/opt/rp/tls/libq.so")));
    let new = versioned_sysroot(&d, "2.37");
    assert_eq!(libq(&new, None), Some(PathBuf::from("/opt/rp/libq.so")));
}

/// The target CPU can be given for a sysroot: a baseline x86-64 CPU has
/// no `haswell` platform, an AVX2 Intel one has.
#[test]
fn the_target_cpu_can_be_given() {
    let (_t, d) = tmp();
    let s = versioned_sysroot(&d, "2.36");
    fs::remove_dir_all(s.join("opt/rp/tls")).unwrap();
    let haswell = copy_bom::ldso::Cpu {
        level: 3,
        platform: Some("haswell".into()),
        avx512_1: false,
    };
    assert_eq!(
        libq(&s, Some(haswell)),
        Some(PathBuf::from("/opt/rp/haswell/libq.so"))
    );
    assert_eq!(
        libq(&s, Some(copy_bom::ldso::Cpu::baseline())),
        Some(PathBuf::from("/opt/rp/libq.so"))
    );
}
