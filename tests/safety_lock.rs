//! The root lock (src/fs/lock.rs), compiled here as well so its unit tests run even before the
//! module is wired into the crate, plus two concurrent runs of the binary into one root.

#[path = "../src/fs/lock.rs"]
mod lock;
