use super::*;
use std::process::Command;

/// Builds a shared object and an executable with gcc in `dir`.
fn build(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = dir.join("a.c");
    fs::write(&src, "int a(void){return 1;}\n").unwrap();
    let lib = dir.join("liba.so");
    let ok = Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-Wl,-soname,liba.so.1",
            "-Wl,-z,nodefaultlib",
            "-o",
        ])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap();
    assert!(ok.success());
    let main = dir.join("m.c");
    fs::write(&main, "int a(void); int main(void){return a();}\n").unwrap();
    let exe = dir.join("m");
    let ok = Command::new("gcc")
        .arg("-o")
        .arg(&exe)
        .arg(&main)
        .arg(format!("-L{}", dir.display()))
        .args(["-la", "-Wl,--disable-new-dtags,-rpath,/r1:$ORIGIN/r2"])
        .status()
        .unwrap();
    assert!(ok.success());
    (lib, exe)
}

#[test]
fn reads_library_and_executable_facts() {
    let dir = tempfile::tempdir().unwrap();
    let (lib, exe) = build(dir.path());
    let lib = read_file(&lib).unwrap().unwrap();
    assert_eq!(lib.kind, ET_DYN);
    assert_eq!(lib.class, Class::Elf64);
    assert_eq!(lib.data, Endian::Little);
    assert_eq!(lib.soname.as_deref(), Some("liba.so.1"));
    assert!(lib.nodeflib);
    assert!(lib.interp.is_none());

    let exe = read_file(&exe).unwrap().unwrap();
    assert_eq!(exe.interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
    assert_eq!(exe.needed, vec!["liba.so.1", "libc.so.6"]);
    assert_eq!(exe.rpath.as_deref(), Some("/r1:$ORIGIN/r2"));
    assert!(exe.runpath.is_none());
    assert!(!exe.nodeflib);
    assert!(exe.dynamic);
}

#[test]
fn non_elf_is_none_and_truncated_elf_is_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("t.txt");
    fs::write(&text, "hello world").unwrap();
    assert_eq!(read_file(&text).unwrap(), None);
    let short = dir.path().join("short");
    fs::write(&short, "\x7fE").unwrap();
    assert_eq!(read_file(&short).unwrap(), None);

    let (lib, _) = build(dir.path());
    let bytes = fs::read(lib).unwrap();
    assert!(matches!(
        ElfFile::parse(&bytes[..40]),
        Err(ElfError::Truncated(_))
    ));
    let mut bad = bytes.clone();
    bad[4] = 9;
    assert_eq!(
        ElfFile::parse(&bad),
        Err(ElfError::Invalid {
            field: "EI_CLASS",
            value: 9
        })
    );
}

#[test]
fn huge_program_header_count_is_rejected_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (lib, _) = build(dir.path());
    let mut bytes = fs::read(lib).unwrap();
    bytes[56] = 0xfe; // e_phnum = 0xfffe
    bytes[57] = 0xff;
    assert!(matches!(
        ElfFile::parse(&bytes),
        Err(ElfError::Truncated(_))
    ));
}

#[test]
fn interpreter_ends_at_its_first_nul() {
    let mut bytes = fs::read("/bin/ls").unwrap();
    let name = b"/lib64/ld-linux-x86-64.so.2";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    bytes[at + 9] = 0;
    let elf = ElfFile::parse(&bytes).unwrap();
    assert_eq!(elf.interp.as_deref(), Some("/lib64/ld"));
}
