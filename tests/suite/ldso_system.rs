//! Every dynamic ELF in /usr/bin and /usr/sbin: the resolver must give the
//! same NAME => PATH set as ldd (the real loader) on this machine.

use std::fs;
use std::path::PathBuf;

use crate::ldso_support::{ldd, pairs_like};
use copy_bom::elf;
use copy_bom::ldso::{Resolver, ResolverOptions};

fn dynamic_executables() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["/usr/bin", "/usr/sbin"] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if !path.is_file() {
                continue;
            }
            if let Ok(Some(e)) = elf::read_file(&path)
                && e.dynamic
                && e.interp.is_some()
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn resolver_agrees_with_ldd_on_system_binaries() {
    let files = dynamic_executables();
    assert!(!files.is_empty(), "no dynamic executables found");
    let resolver = Resolver::new(ResolverOptions::default());
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for file in &files {
        // ldd runs the loader explicitly, which takes $ORIGIN from the path it is
        // given; an executed program gets its real directory. Ask ldd with the
        // real path so it answers for the program as executed.
        let real = fs::canonicalize(file).unwrap();
        let Some(truth) = ldd(&real, &[], None) else {
            continue;
        };
        let res = resolver.resolve(file, None).unwrap();
        let ours = pairs_like(&res, &truth);
        compared += 1;
        if ours != truth {
            let only_ours: Vec<_> = ours.difference(&truth).collect();
            let only_ldd: Vec<_> = truth.difference(&ours).collect();
            mismatches.push(format!(
                "{}: ours only {only_ours:?}, ldd only {only_ldd:?}",
                file.display()
            ));
        }
    }
    assert!(compared > 0);
    assert!(
        mismatches.is_empty(),
        "{} of {compared} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
