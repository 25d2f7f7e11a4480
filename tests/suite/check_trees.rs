//! `check` on installed trees whose libraries only load in their program's
//! scope: a JDK-like tree built with gcc (the launcher loads
//! `lib/server/libjvm.so` before the `lib/*.so` that need it), the real JDK
//! and systemd of this machine. Images are built with `cp`, `ln` and the
//! libraries the real loader (`ldd`) lists, never with copy_bom.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::check_support::{Image, cc, ldd, shared};
use copy_bom::check::{CheckReport, KnownHeaders, Role, check_image};
use copy_bom::deps::LoaderConfig;

fn check(root: &Path) -> CheckReport {
    check_image(root, &LoaderConfig::default(), &KnownHeaders::new()).unwrap()
}

/// A JDK-like tree at /opt/jdk: `bin/java` (RUNPATH `$ORIGIN/../lib`)
/// needs `lib/libjli.so`, then dlopens `lib/server/libjvm.so` and
/// `lib/libjava.so` (RPATH `$ORIGIN`, needs `libjvm.so`), as the real
/// launcher does. `with_jvm: false` leaves libjvm.so out.
fn jdk_like(t: &Path, with_jvm: bool) -> Image {
    let fx = t.join("fx");
    let l = format!("-L{}", fx.display());
    shared(
        "gcc",
        "int jvm(void){return 40;}",
        &fx.join("libjvm.so"),
        &[],
    );
    shared(
        "gcc",
        "int jli(void){return 1;}",
        &fx.join("libjli.so"),
        &[],
    );
    shared(
        "gcc",
        "int jvm(void); int java_init(void){return jvm()+2;}",
        &fx.join("libjava.so"),
        &[
            "-Wl,--no-as-needed",
            &l,
            "-ljvm",
            "-Wl,-rpath,$ORIGIN",
            "-Wl,--disable-new-dtags",
        ],
    );
    cc(
        "gcc",
        r#"#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>
int jli(void);
int main(void){
  char exe[PATH_MAX], path[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) return 4;
  exe[n] = 0;
  char *bin = dirname(exe);
  snprintf(path, sizeof path, "%s/../lib/server/libjvm.so", bin);
  if (!dlopen(path, RTLD_NOW | RTLD_GLOBAL)) { fprintf(stderr, "%s\n", dlerror()); return 3; }
  snprintf(path, sizeof path, "%s/../lib/libjava.so", bin);
  void *java = dlopen(path, RTLD_NOW);
  if (!java) { fprintf(stderr, "%s\n", dlerror()); return 3; }
  int (*init)(void) = (int (*)(void))dlsym(java, "java_init");
  return init && init() == 42 && jli() == 1 ? 0 : 1;
}"#,
        &fx.join("java"),
        &[
            "-Wl,--no-as-needed",
            &l,
            "-ljli",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--enable-new-dtags",
        ],
    );
    let img = Image::new(t.join("image"));
    img.add_glibc();
    img.copy(&fx.join("java"), "/opt/jdk/bin/java");
    img.copy(&fx.join("libjli.so"), "/opt/jdk/lib/libjli.so");
    img.copy(&fx.join("libjava.so"), "/opt/jdk/lib/libjava.so");
    if with_jvm {
        img.copy(&fx.join("libjvm.so"), "/opt/jdk/lib/server/libjvm.so");
    }
    img
}

#[test]
fn jdk_like_tree_is_complete_with_one_info_and_no_warning() {
    let t = tempfile::tempdir().unwrap();
    let img = jdk_like(t.path(), true);
    let r = check(&img.root);
    assert!(r.is_complete(), "{}", copy_bom::report::check_lines(&r));
    assert!(r.missing.is_empty() && r.warnings.is_empty(), "{r:#?}");
    assert_eq!(r.loaded_first.len(), 1, "{r:#?}");
    let info = &r.loaded_first[0];
    assert_eq!(info.name, "libjvm.so");
    assert_eq!(info.provider, Path::new("/opt/jdk/lib/server/libjvm.so"));
    assert_eq!(info.tree, Path::new("/opt/jdk"));
    assert_eq!(
        info.needed_by,
        vec![PathBuf::from("/opt/jdk/lib/libjava.so")]
    );
    let java = r.object(Path::new("/opt/jdk/bin/java")).unwrap();
    assert_eq!((java.role, java.complete), (Role::Program, true));
    let libjava = r.object(Path::new("/opt/jdk/lib/libjava.so")).unwrap();
    assert_eq!((libjava.role, libjava.complete), (Role::Alone, true));
}

#[test]
fn jdk_like_tree_without_libjvm_is_incomplete() {
    let t = tempfile::tempdir().unwrap();
    let img = jdk_like(t.path(), false);
    let r = check(&img.root);
    assert!(!r.is_complete());
    assert!(r.loaded_first.is_empty(), "{r:#?}");
    assert_eq!(r.missing.len(), 1, "{r:#?}");
    assert_eq!(r.missing[0].name, "libjvm.so");
    assert!(r.missing[0].alone);
    assert_eq!(r.missing[0].needed_by, Path::new("/opt/jdk/lib/libjava.so"));
}

#[test]
#[ignore = "needs root"]
fn jdk_like_tree_runs_exactly_when_libjvm_is_there() {
    for with_jvm in [true, false] {
        let t = tempfile::tempdir().unwrap();
        let img = jdk_like(t.path(), with_jvm);
        let out = img.run("/opt/jdk/bin/java", &[], true);
        let expected = if with_jvm { 0 } else { 3 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(check(&img.root).is_complete(), with_jvm);
    }
}

/// Copies `tree` (a host dir) as is, with every library the real loader
/// lists for its ELF files that lies outside the tree, and glibc.
fn image_of_tree(t: &Path, tree: &Path, extra: &[&Path]) -> Image {
    let img = Image::new(t.join("image"));
    let dest = img.host(&tree.display().to_string());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(tree)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    img.add_glibc();
    let mut files: Vec<PathBuf> = walk(tree);
    files.extend(extra.iter().map(|p| p.to_path_buf()));
    for f in files {
        if !is_elf(&f) {
            continue;
        }
        for (_, lib) in ldd_quiet(&f) {
            let path = lib.display().to_string();
            if !lib.starts_with(tree) && !img.host(&path).exists() {
                img.copy(&lib, &path);
            }
        }
        let path = f.display().to_string();
        if !img.host(&path).exists() {
            img.copy(&f, &path);
        }
    }
    img
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(walk(&e.path()));
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    out
}

fn is_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// ldd of a file that may not be a dynamic object (ldd then fails).
fn ldd_quiet(p: &Path) -> Vec<(String, PathBuf)> {
    let ok = Command::new("ldd")
        .arg(p)
        .output()
        .is_ok_and(|o| o.status.success());
    if ok { ldd(p) } else { Vec::new() }
}

const JDK: &str = "/usr/lib/jvm/java-17-openjdk-amd64";

#[test]
#[ignore = "needs openjdk-17 in /usr/lib/jvm"]
fn real_jdk_copy_is_complete_with_libjvm_as_info() {
    let jdk = Path::new(JDK);
    assert!(jdk.is_dir(), "install openjdk-17-jdk-headless: no {JDK}");
    let t = tempfile::tempdir().unwrap();
    let img = image_of_tree(t.path(), jdk, &[]);
    let r = check(&img.root);
    assert!(r.is_complete(), "{}", copy_bom::report::check_lines(&r));
    assert!(r.missing.is_empty(), "{r:#?}");
    let jvm: Vec<_> = r
        .loaded_first
        .iter()
        .filter(|f| f.name == "libjvm.so")
        .collect();
    assert_eq!(jvm.len(), 1, "{:#?}", r.loaded_first);
    assert_eq!(jvm[0].provider, Path::new(JDK).join("lib/server/libjvm.so"));
    assert!(jvm[0].needed_by.len() > 10, "{:#?}", jvm[0]);
}

#[test]
#[ignore = "needs root and openjdk-17 in /usr/lib/jvm"]
fn real_jdk_copy_runs() {
    let jdk = Path::new(JDK);
    assert!(jdk.is_dir(), "install openjdk-17-jdk-headless: no {JDK}");
    let t = tempfile::tempdir().unwrap();
    let img = image_of_tree(t.path(), jdk, &[]);
    assert!(check(&img.root).is_complete());
    let out = img.run(&format!("{JDK}/bin/java"), &["-version"], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root and systemd installed"]
fn systemd_with_libsystemd_core_from_its_runpath_is_complete_and_runs() {
    let systemd = Path::new("/usr/lib/systemd/systemd");
    assert!(
        systemd.exists(),
        "install systemd: no {}",
        systemd.display()
    );
    let t = tempfile::tempdir().unwrap();
    let img = Image::new(t.path().join("image"));
    img.add_glibc();
    img.copy(systemd, "/usr/lib/systemd/systemd");
    let libs = ldd(systemd);
    let core = libs
        .iter()
        .find(|(n, _)| n.starts_with("libsystemd-core"))
        .expect("systemd needs libsystemd-core")
        .1
        .clone();
    for (_, l) in &libs {
        img.copy(l, &l.display().to_string());
    }
    let r = check(&img.root);
    assert!(r.is_complete(), "{}", copy_bom::report::check_lines(&r));
    let lib = r.object(&core).unwrap();
    assert_eq!((lib.role, lib.complete), (Role::Library, true));
    let out = img.run("/usr/lib/systemd/systemd", &["--version"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `copy_bom check` on an image: (status, stdout).
fn cli_check(root: &Path, json: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copy_bom"));
    cmd.args(["check", "--root"]).arg(root);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn cli_says_what_its_program_loads_first_and_what_is_missing() {
    let t = tempfile::tempdir().unwrap();
    let img = jdk_like(t.path(), true);
    let (status, text) = cli_check(&img.root, false);
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.contains(
            "info: libjvm.so, needed by /opt/jdk/lib/libjava.so, is not on the search path; \
             its tree /opt/jdk holds it at /opt/jdk/lib/server/libjvm.so"
        ),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("missing") || l.starts_with("warning")),
        "{text}"
    );
    let (status, json) = cli_check(&img.root, true);
    assert_eq!(status, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["loaded_first"][0]["provider"],
        "/opt/jdk/lib/server/libjvm.so"
    );
    assert_eq!(v["missing"].as_array().unwrap().len(), 0);

    std::fs::remove_file(img.host("/opt/jdk/lib/server/libjvm.so")).unwrap();
    std::fs::remove_file(img.host("/opt/jdk/lib/libjli.so")).unwrap();
    let (status, text) = cli_check(&img.root, false);
    assert_eq!(status, Some(248), "{text}");
    assert!(
        text.contains(
            "missing libjli.so (needed by /opt/jdk/bin/java; searched /opt/jdk/bin/../lib:"
        ),
        "{text}"
    );
    assert!(
        text.contains("missing libjvm.so (needed by /opt/jdk/lib/libjava.so, judged alone: no program loads it; searched /opt/jdk/lib:"),
        "{text}"
    );
    let (_, json) = cli_check(&img.root, true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let jli = v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "libjli.so")
        .unwrap();
    assert_eq!(jli["scopes"][0], "/opt/jdk/bin/java");
    assert_eq!(jli["alone"], false);
}

/// An extension module needing `libhelper.so`, which the image holds only
/// at `helper` (off every search path), with `/usr/bin` and `bin_dir`
/// present so the trees are what a distribution and a prefix look like.
fn module_image(t: &Path, module: &str, helper: &str, bin_dir: &str) -> Image {
    let fx = t.join("fx");
    shared(
        "gcc",
        "int helper(void){return 1;}",
        &fx.join("libhelper.so"),
        &[],
    );
    let l = format!("-L{}", fx.display());
    shared(
        "gcc",
        "int helper(void); int mod(void){return helper();}",
        &fx.join("_mod.so"),
        &["-Wl,--no-as-needed", &l, "-lhelper"],
    );
    let img = Image::new(t.join("image"));
    img.add_glibc();
    img.copy(Path::new("/bin/true"), "/usr/bin/true");
    img.copy(Path::new("/bin/true"), &format!("{bin_dir}/true"));
    img.copy(&fx.join("_mod.so"), module);
    img.copy(&fx.join("libhelper.so"), helper);
    img
}

#[test]
fn a_system_python_module_has_no_tree_to_excuse_a_missing_library() {
    let t = tempfile::tempdir().unwrap();
    let module = "/usr/lib/python3.11/lib-dynload/_mod.so";
    let img = module_image(t.path(), module, "/usr/lib/helper/libhelper.so", "/usr/bin");
    let r = check(&img.root);
    assert!(r.loaded_first.is_empty(), "{r:#?}");
    assert_eq!(r.missing.len(), 1, "{r:#?}");
    assert_eq!(r.missing[0].name, "libhelper.so");
    assert_eq!(r.missing[0].scopes, vec![PathBuf::from(module)]);
    assert!(!r.object(Path::new(module)).unwrap().complete);
}

#[test]
fn a_prefix_module_finds_what_its_prefix_program_loads_first() {
    let t = tempfile::tempdir().unwrap();
    let module = "/opt/conda/lib/python3.11/lib-dynload/_mod.so";
    let img = module_image(
        t.path(),
        module,
        "/opt/conda/lib/libhelper.so",
        "/opt/conda/bin",
    );
    let r = check(&img.root);
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(r.loaded_first.len(), 1, "{r:#?}");
    assert_eq!(r.loaded_first[0].tree, Path::new("/opt/conda"));
    assert_eq!(
        r.loaded_first[0].provider,
        Path::new("/opt/conda/lib/libhelper.so")
    );
}
