//! LOADER.md's cases E1–E8 and the candidate rules, each checked against
//! the real loader on this machine (ldd) or, where the loader cannot be
//! run (a sysroot, musl), against the rule itself.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::ldso_support::*;
use copy_bom::ldso::{Flavor, LoaderSpec, Resolution, Resolver, ResolverOptions, Via};

fn host(library_path: &[&Path]) -> Resolver {
    Resolver::new(ResolverOptions {
        library_path: library_path
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        ..ResolverOptions::default()
    })
}

/// Resolves `file` on the host and requires ldd's exact NAME => PATH set.
fn same_as_ldd(file: &Path, library_path: &[&Path]) -> Resolution {
    let joined: Vec<String> = library_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let joined = joined.join(":");
    let env: Vec<(&str, &str)> = if library_path.is_empty() {
        vec![]
    } else {
        vec![("LD_LIBRARY_PATH", &joined)]
    };
    let truth = ldd(file, &env, None).expect("ldd accepts the fixture");
    let res = host(library_path).resolve(file, None).unwrap();
    assert_eq!(pairs_like(&res, &truth), truth, "resolution: {res:#?}");
    res
}

fn via_of<'a>(res: &'a Resolution, name: &str) -> &'a Via {
    &res.libs.iter().find(|d| d.name == name).unwrap().via
}

fn rpath(dirs: &str) -> String {
    format!("-Wl,--disable-new-dtags,-rpath,{dirs}")
}

fn runpath(dirs: &str) -> String {
    format!("-Wl,--enable-new-dtags,-rpath,{dirs}")
}

#[test]
fn e1_rpath_is_inherited_down_the_loading_chain() {
    let (_t, d) = tmp();
    let rp = d.join("rp");
    lib(&rp.join("libb.so"), &func("b", &[]), &[]);
    lib(
        &rp.join("liba.so"),
        &func("a", &["b"]),
        &[&format!("-L{}", rp.display()), "-lb"],
    );
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["a"]),
        &[
            &format!("-L{}", rp.display()),
            "-la",
            &rpath(&rp.display().to_string()),
        ],
    );
    let res = same_as_ldd(&prog, &[]);
    assert_eq!(via_of(&res, "libb.so"), &Via::Rpath(rp));
}

#[test]
fn e2_ld_library_path_comes_before_runpath() {
    let (_t, d) = tmp();
    let (rp, rp2) = (d.join("rp"), d.join("rp2"));
    lib(&rp.join("liba.so"), &func("a", &[]), &[]);
    lib(&rp2.join("liba.so"), &func("a", &[]), &[]);
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["a"]),
        &[
            &format!("-L{}", rp.display()),
            "-la",
            &runpath(&rp.display().to_string()),
        ],
    );
    let res = same_as_ldd(&prog, &[&rp2]);
    assert_eq!(via_of(&res, "liba.so"), &Via::LdLibraryPath(rp2));
}

#[test]
fn e3_glibc_hwcaps_subdirectories_are_tried_first() {
    let (_t, d) = tmp();
    let rp = d.join("rp");
    lib(&rp.join("liba.so"), &func("a", &[]), &[]);
    lib(
        &rp.join("glibc-hwcaps/x86-64-v2/liba.so"),
        &func("a", &[]),
        &[],
    );
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["a"]),
        &[
            &format!("-L{}", rp.display()),
            "-la",
            &runpath(&rp.display().to_string()),
        ],
    );
    let res = same_as_ldd(&prog, &[]);
    let a = res.libs.iter().find(|l| l.name == "liba.so").unwrap();
    if a.path
        .as_ref()
        .unwrap()
        .to_string_lossy()
        .contains("glibc-hwcaps")
    {
        assert_eq!(a.baseline.as_deref(), Some(rp.join("liba.so").as_path()));
    }
}

/// Copies the host's libc and loader into a sysroot.
fn sysroot_with_libc(root: &Path, libdir: &str) {
    let dir = root.join(libdir.trim_start_matches('/'));
    fs::create_dir_all(&dir).unwrap();
    fs::copy("/lib/x86_64-linux-gnu/libc.so.6", dir.join("libc.so.6")).unwrap();
    fs::create_dir_all(root.join("lib64")).unwrap();
    fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
}

#[test]
fn e4_sysroot_uses_its_own_configuration_prefixed_once() {
    let (_t, root) = tmp();
    sysroot_with_libc(&root, "/opt/sys/lib");
    let prog = root.join("bin/prog");
    exe(&prog, &main_calling(&[]), &[]);
    let opts = ResolverOptions {
        sysroot: root.clone(),
        ..ResolverOptions::default()
    };

    let missing = Resolver::new(opts.clone())
        .resolve(Path::new("/bin/prog"), None)
        .unwrap();
    assert_eq!(
        missing
            .missing()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["libc.so.6"]
    );
    let searched = &missing.libs[0].searched;
    assert!(
        searched.contains(&PathBuf::from("/lib/x86_64-linux-gnu")),
        "{searched:?}"
    );

    fs::create_dir_all(root.join("etc/ld.so.conf.d")).unwrap();
    fs::write(
        root.join("etc/ld.so.conf"),
        "include /etc/ld.so.conf.d/*.conf\n",
    )
    .unwrap();
    fs::write(root.join("etc/ld.so.conf.d/sys.conf"), "/opt/sys/lib\n").unwrap();
    let res = Resolver::new(opts)
        .resolve(Path::new("/bin/prog"), None)
        .unwrap();
    let libc = &res.libs[0];
    assert_eq!(
        libc.path.as_deref(),
        Some(Path::new("/opt/sys/lib/libc.so.6"))
    );
    assert_eq!(libc.via, Via::DefaultDir("/opt/sys/lib".into()));
    assert_eq!(
        res.libs[1].path.as_deref(),
        Some(Path::new("/lib64/ld-linux-x86-64.so.2"))
    );
}

#[test]
fn e5_library_origin_is_the_directory_it_was_found_through() {
    let (_t, d) = tmp();
    let (x, y) = (d.join("x"), d.join("y"));
    lib(&x.join("sub/libb.so"), &func("b", &[]), &[]);
    lib(
        &y.join("liba.so"),
        &func("a", &["b"]),
        &[
            &format!("-L{}", x.join("sub").display()),
            "-lb",
            &runpath("$ORIGIN/sub"),
        ],
    );
    symlink(y.join("liba.so"), x.join("liba.so")).unwrap();
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["a"]),
        &[
            &format!("-L{}", x.display()),
            "-la",
            &runpath(&x.display().to_string()),
        ],
    );
    let res = same_as_ldd(&prog, &[]);
    assert_eq!(via_of(&res, "libb.so"), &Via::Runpath(x.join("sub")));
}

#[test]
fn e6_lib_token_is_expanded() {
    let (_t, d) = tmp();
    let libdir = d.join("lib/x86_64-linux-gnu");
    lib(&libdir.join("liba.so"), &func("a", &[]), &[]);
    let prog = d.join("prog");
    let dirs = format!("{}/$LIB", d.display());
    exe(
        &prog,
        &main_calling(&["a"]),
        &[&format!("-L{}", libdir.display()), "-la", &runpath(&dirs)],
    );
    same_as_ldd(&prog, &[]);
}

#[test]
fn e8_breadth_first_order_decides_which_copy_loads() {
    let (_t, d) = tmp();
    let (a, b, ca, cb) = (d.join("a"), d.join("b"), d.join("ca"), d.join("cb"));
    lib(&ca.join("libc1.so"), &func("c1", &[]), &[]);
    lib(&cb.join("libc1.so"), &func("c1", &[]), &[]);
    let l = |dir: &Path| format!("-L{}", dir.display());
    lib(
        &a.join("libfa.so"),
        &func("fa", &["c1"]),
        &[&l(&ca), "-lc1", &rpath(&ca.display().to_string())],
    );
    lib(
        &b.join("libfb.so"),
        &func("fb", &["c1"]),
        &[&l(&cb), "-lc1", &rpath(&cb.display().to_string())],
    );
    let prog = d.join("prog");
    let dirs = format!("{}:{}", a.display(), b.display());
    exe(
        &prog,
        &main_calling(&["fb", "fa"]),
        &[&l(&b), "-lfb", &l(&a), "-lfa", &rpath(&dirs)],
    );
    let res = same_as_ldd(&prog, &[]);
    // fb is requested first, so its RPATH chain decides which libc1 loads.
    assert_eq!(via_of(&res, "libc1.so"), &Via::Rpath(cb));
}

#[test]
fn nodeflib_skips_cache_and_system_dirs() {
    let (_t, d) = tmp();
    let prog = d.join("prog");
    exe(
        &prog,
        "int main(void){return 0;}\n",
        &["-Wl,--no-as-needed", "-lm", "-Wl,-z,nodefaultlib"],
    );
    let res = same_as_ldd(&prog, &[]);
    assert_eq!(res.missing().count(), 2);
}

#[test]
fn missing_library_is_reported_with_where_it_was_looked_for() {
    let (_t, d) = tmp();
    let gone = d.join("gone");
    lib(&gone.join("libgone.so"), &func("g", &[]), &[]);
    let prog = d.join("prog");
    exe(
        &prog,
        &main_calling(&["g"]),
        &[
            &format!("-L{}", gone.display()),
            "-lgone",
            &runpath("/nonexistent"),
        ],
    );
    fs::remove_file(gone.join("libgone.so")).unwrap();
    let res = same_as_ldd(&prog, &[]);
    let dep = res.missing().next().unwrap();
    assert_eq!(dep.needed_by, prog);
    assert_eq!(
        dep.searched.first().map(PathBuf::as_path),
        Some(Path::new("/nonexistent"))
    );
}

#[test]
fn wrong_class_candidate_is_skipped() {
    let (_t, d) = tmp();
    let (bad, good) = (d.join("bad"), d.join("good"));
    lib(&good.join("liba.so"), &func("a", &[]), &[]);
    fs::create_dir_all(&bad).unwrap();
    let mut bytes = fs::read(good.join("liba.so")).unwrap();
    bytes[4] = 1; // EI_CLASS = ELFCLASS32
    fs::write(bad.join("liba.so"), bytes).unwrap();
    let prog = d.join("prog");
    let dirs = format!("{}:{}", bad.display(), good.display());
    exe(
        &prog,
        &main_calling(&["a"]),
        &[&format!("-L{}", good.display()), "-la", &runpath(&dirs)],
    );
    let res = same_as_ldd(&prog, &[]);
    assert_eq!(via_of(&res, "liba.so"), &Via::Runpath(good));
}

#[test]
fn musl_rules_without_running_musl() {
    let (_t, root) = tmp();
    let ldso = "/lib/ld-musl-x86_64.so.1";
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::copy("/lib/x86_64-linux-gnu/libc.so.6", root.join(&ldso[1..])).unwrap();
    let app = root.join("app");
    lib(&root.join("opt/m/libm2.so"), &func("m2", &[]), &[]);
    lib(&app.join("deep/libb.so"), &func("b", &[]), &[]);
    let l = |p: &str| format!("-L{}", root.join(p).display());
    lib(
        &app.join("lib/liba.so"),
        &func("a", &["b", "m2"]),
        &[&l("app/deep"), "-lb", &l("opt/m"), "-lm2"],
    );
    let link = format!(
        "-Wl,-rpath-link,{}:{}",
        root.join("app/deep").display(),
        root.join("opt/m").display()
    );
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/ld-musl-x86_64.path"), "/opt/m\n/usr/lib\n").unwrap();
    exe(
        &app.join("bin/prog"),
        &main_calling(&["a"]),
        &[
            &l("app/lib"),
            "-la",
            "-Wl,--no-as-needed",
            "-lm",
            &link,
            &runpath("$ORIGIN/../lib:/app/deep"),
            &format!("-Wl,--dynamic-linker={ldso}"),
        ],
    );
    let opts = ResolverOptions {
        sysroot: root.clone(),
        ..ResolverOptions::default()
    };
    let res = Resolver::new(opts)
        .resolve(Path::new("/app/bin/prog"), None)
        .unwrap();
    assert_eq!(res.interp.as_deref(), Some(ldso));
    let path = |n: &str| {
        res.libs
            .iter()
            .find(|d| d.name == n)
            .and_then(|d| d.path.clone())
    };
    assert_eq!(path("liba.so"), Some("/app/bin/../lib/liba.so".into()));
    assert_eq!(
        path("libb.so"),
        Some("/app/deep/libb.so".into()),
        "musl inherits RUNPATH from prog"
    );
    assert_eq!(
        path("libm2.so"),
        Some("/opt/m/libm2.so".into()),
        "ld-musl-x86_64.path"
    );
    assert_eq!(path("libc.so.6"), Some(ldso.into()));
    assert_eq!(via_of(&res, "libm.so.6"), &Via::MuslReserved);
    assert_eq!(res.libs.last().unwrap().via, Via::Loader);

    let glibc = LoaderSpec {
        interp: "/lib64/ld-linux-x86-64.so.2".into(),
        flavor: Flavor::Glibc,
        library_path: None,
    };
    let opts = ResolverOptions {
        sysroot: root.clone(),
        ..ResolverOptions::default()
    };
    let as_glibc = Resolver::new(opts)
        .resolve(Path::new("/app/bin/prog"), Some(&glibc))
        .unwrap();
    let missing: Vec<_> = as_glibc.missing().map(|d| d.name.as_str()).collect();
    assert!(
        missing.contains(&"libb.so"),
        "glibc never inherits RUNPATH: {missing:?}"
    );
}

#[test]
fn shared_library_without_interpreter_uses_the_default_loader() {
    let (_t, d) = tmp();
    let so = d.join("libq.so");
    lib(
        &so,
        "#include <stdio.h>\nint q(void){return puts(\"q\");}\n",
        &[],
    );
    let res = host(&[]).resolve(&so, None).unwrap();
    assert_eq!(res.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
    let libc = res.libs.iter().find(|l| l.name == "libc.so.6").unwrap();
    assert_eq!(
        libc.path.as_deref(),
        Some(Path::new("/lib/x86_64-linux-gnu/libc.so.6"))
    );
}

#[test]
fn resolver_is_shared_across_threads() {
    fn is_send_sync<T: Send + Sync>(_: &T) {}
    let resolver = host(&[]);
    is_send_sync(&resolver);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| resolver.resolve(Path::new("/bin/ls"), None).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.windows(2).all(|w| w[0] == w[1]));
    assert!(!results[0].libs.is_empty());
}

#[test]
fn non_elf_input_is_an_error_naming_the_file() {
    let (_t, d) = tmp();
    let text = d.join("notes.txt");
    fs::write(&text, "hello").unwrap();
    let err = host(&[]).resolve(&text, None).unwrap_err();
    assert!(
        err.message.contains("notes.txt") && err.message.contains("not an ELF"),
        "{err}"
    );
}
