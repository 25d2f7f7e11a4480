//! E7: a DT_NEEDED name containing `/` is opened relative to the current
//! directory, never searched. Alone in its test binary because it changes
//! the process's current directory.

#[path = "suite/ldso_support.rs"]
mod ldso_support;

use copy_bom::ldso::{Resolver, ResolverOptions, Via};
use ldso_support::*;

#[test]
fn e7_needed_with_slash_is_opened_as_a_path() {
    let (_t, d) = tmp();
    lib(&d.join("sub/libx.so"), "int x(void){return 0;}\n", &[]);
    let prog = d.join("prog");
    std::fs::write(d.join("prog.c"), main_calling(&["x"])).unwrap();
    // Linked from inside `d`, the library is recorded as DT_NEEDED "sub/libx.so".
    let out = std::process::Command::new("gcc")
        .current_dir(&d)
        .args(["-o", "prog", "prog.c", "sub/libx.so"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let truth = ldd(&prog, &[], Some(&d)).unwrap();
    assert!(
        truth.contains(&("sub/libx.so".to_string(), "sub/libx.so".to_string())),
        "{truth:?}"
    );

    std::env::set_current_dir(&d).unwrap();
    let res = Resolver::new(ResolverOptions::default())
        .resolve(&prog, None)
        .unwrap();
    let x = res.libs.iter().find(|l| l.name == "sub/libx.so").unwrap();
    assert_eq!(x.via, Via::Direct);
    assert_eq!(x.path.as_deref(), Some(d.join("sub/libx.so").as_path()));
}
