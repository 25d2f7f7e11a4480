//! copy_bom: builds the root file system of an Occlum instance (or any minimal
//! Linux root) from a YAML bill of materials, and finds every shared library the
//! copied files need by reading their ELF headers as the dynamic loader would.
//!
//! Data flows one way (see DESIGN.md): `bom` (load) → `plan` (ordered,
//! deduplicated operations) → `deps` (libraries) → validate → `fs` (apply) →
//! `check` (closure inside the image). The library never prints and never exits;
//! the binary (`main.rs`) maps [`error::Error`] to the documented exit statuses.

pub mod apply;
pub mod bom;
pub mod build;
pub mod check;
pub mod deps;
pub mod digest;
pub mod elf;
pub mod error;
pub mod fs;
pub mod implied;
pub mod instance;
pub mod ldso;
pub mod manifest;
pub mod plan;
pub mod provenance;
pub mod report;
pub mod run;
pub mod trace;
