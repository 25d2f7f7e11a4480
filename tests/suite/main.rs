//! The integration tests, one binary (one build, one link) with a module per area. The
//! support modules hold the helpers the areas share. `ldso_relative_needed` is the one test
//! kept in a binary of its own: it changes the process's current directory.

mod check_support;
mod common;
mod ldso_support;
mod safety_support;

mod bom_fuzz;
mod bom_load;
mod check_differential;
mod check_instance;
mod check_messages;
mod check_symbols;
mod check_trees;
mod cli_autodep;
mod cli_build;
mod cli_deps;
mod cli_manifest;
mod cli_sysroot;
mod digest;
mod dlopen_notes;
mod e2e_images;
mod elf_symbols;
mod fs_copy;
mod fs_root;
mod fs_rsync;
mod fs_tree;
mod image_model;
mod implied_files;
mod instance_new;
mod ldso_loader_cases;
mod ldso_malformed;
mod ldso_patchelf;
mod ldso_rules;
mod ldso_sysroot;
mod ldso_system;
mod malformed_elf;
mod provenance_sbom;
mod reproducible;
mod run_command;
mod safety_bad_input;
mod safety_confinement;
mod safety_interrupt;
mod safety_lock;
mod safety_permissions;
mod trace_command;
