//! What `check` says about a library that will not load: who needs it, in
//! which program's scope, where it was searched, and a dangling link of
//! that name when there is one. The verdicts themselves are compared with
//! chroot runs in check_differential.rs; here the words are checked.

use std::path::{Path, PathBuf};

use crate::check_support::{Image, cc, shared};
use copy_bom::check::{KnownHeaders, check_image};
use copy_bom::deps::LoaderConfig;

/// /bin/p needs libb.so; glibc from the host.
fn image(t: &Path) -> (Image, PathBuf) {
    let fx = t.join("fx");
    shared("gcc", "int b(void){return 1;}", &fx.join("libb.so"), &[]);
    cc(
        "gcc",
        "int b(void); int main(void){return b()==1?0:1;}",
        &fx.join("p"),
        &["-Wl,--no-as-needed", &format!("-L{}", fx.display()), "-lb"],
    );
    let img = Image::new(t.join("image"));
    img.add_glibc();
    img.copy(&fx.join("p"), "/bin/p");
    (img, fx.join("libb.so"))
}

#[test]
fn a_dangling_link_of_the_needed_name_is_named_as_the_cause() {
    let t = tempfile::tempdir().unwrap();
    let (img, _) = image(t.path());
    img.symlink("libb.so.1", "/usr/lib/libb.so");
    let r = check_image(&img.root, &LoaderConfig::default(), &KnownHeaders::new()).unwrap();
    assert_eq!(r.missing.len(), 1, "{r:#?}");
    let m = &r.missing[0];
    assert_eq!(
        (m.name.as_str(), m.needed_by.as_path(), m.alone),
        ("libb.so", Path::new("/bin/p"), false)
    );
    assert_eq!(m.scopes, vec![PathBuf::from("/bin/p")]);
    assert_eq!(
        m.dangling_link.as_deref(),
        Some(Path::new("/usr/lib/libb.so"))
    );
    let text = copy_bom::report::check_lines(&r);
    assert!(
        text.contains("missing libb.so (needed by /bin/p; searched ")
            && text.contains("; /usr/lib/libb.so dangles)"),
        "{text}"
    );
    assert!(
        text.contains("dangling link /usr/lib/libb.so -> /usr/lib/libb.so.1"),
        "{text}"
    );
}

#[test]
fn an_ld_so_conf_dir_without_a_cache_is_not_searched() {
    let t = tempfile::tempdir().unwrap();
    let (img, lib) = image(t.path());
    img.copy(&lib, "/opt/conf/libb.so");
    img.write("/etc/ld.so.conf", "/opt/conf\n");
    let r = check_image(&img.root, &LoaderConfig::default(), &KnownHeaders::new()).unwrap();
    assert!(!r.is_complete());
    let m = &r.missing[0];
    assert_eq!(m.name, "libb.so");
    assert!(
        !m.searched.iter().any(|d| d == Path::new("/opt/conf")),
        "{:?}",
        m.searched
    );
    // The libraries of that dir are judged alone: libb.so needs nothing.
    let lone = r.object(Path::new("/opt/conf/libb.so")).unwrap();
    assert!(lone.complete);
}
