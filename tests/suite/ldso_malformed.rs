//! Malformed ELF input: mutated and truncated copies of a real binary go
//! through the parser and the resolver without panicking, in bounded time.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use copy_bom::elf::ElfFile;
use copy_bom::ldso::{Resolver, ResolverOptions};
use proptest::prelude::*;

fn sample() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        fs::read("/bin/ls")
            .or_else(|_| fs::read("/bin/sh"))
            .unwrap()
    })
}

/// Applies byte edits, concentrated in the first 4 KiB where the headers
/// and usually the dynamic section's pointers live.
fn mutate(edits: &[(usize, u8, bool)], cut: usize) -> Vec<u8> {
    let mut bytes = sample().to_vec();
    for (at, value, in_head) in edits {
        let limit = if *in_head {
            4096.min(bytes.len())
        } else {
            bytes.len()
        };
        let i = at % limit;
        bytes[i] = *value;
    }
    bytes.truncate(bytes.len() - cut % bytes.len());
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 0..16),
                          cut in 0usize..100_000) {
        let bytes = mutate(&edits, cut);
        let _ = ElfFile::parse(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn resolver_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>(), Just(true)), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prog");
        fs::write(&file, mutate(&edits, 0)).unwrap();
        let resolver = Resolver::new(ResolverOptions::default());
        let start = std::time::Instant::now();
        let _ = resolver.resolve(Path::new(&file), None);
        prop_assert!(start.elapsed().as_secs() < 10);
    }
}
