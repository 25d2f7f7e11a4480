//! Helpers for the `check` tests: compiling fixtures, placing files in an
//! image with plain copies and links (never with copy_bom, so `check` is
//! judged alone), and running a program in a chroot of the image.

#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Compiles C source `src` with `compiler` into `out`.
pub fn cc(compiler: &str, src: &str, out: &Path, args: &[&str]) {
    let dir = out.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let c = dir.join(format!("{}.c", out.file_name().unwrap().to_string_lossy()));
    std::fs::write(&c, src).unwrap();
    let st = Command::new(compiler)
        .arg("-o")
        .arg(out)
        .arg(&c)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "{compiler} {args:?} failed");
}

/// `gcc -shared -fPIC` with soname = the file name, linked against `-L dir`.
pub fn shared(compiler: &str, src: &str, out: &Path, args: &[&str]) {
    let soname = format!("-Wl,-soname,{}", out.file_name().unwrap().to_string_lossy());
    let mut all = vec!["-shared", "-fPIC", soname.as_str()];
    all.extend_from_slice(args);
    cc(compiler, src, out, &all);
}

/// An image being assembled under a host directory.
pub struct Image {
    pub root: PathBuf,
}

impl Image {
    pub fn new(root: PathBuf) -> Image {
        std::fs::create_dir_all(&root).unwrap();
        Image { root }
    }

    pub fn host(&self, image_path: &str) -> PathBuf {
        self.root.join(image_path.trim_start_matches('/'))
    }

    /// Whether an image path exists, links followed inside the image.
    pub fn exists(&self, image_path: &str) -> bool {
        let mut path = PathBuf::from(image_path);
        for _ in 0..40 {
            let host = self.host(&path.display().to_string());
            match std::fs::read_link(&host) {
                Ok(t) if t.is_absolute() => path = t,
                Ok(t) => path = path.parent().unwrap().join(t),
                Err(_) => return host.exists(),
            }
        }
        false
    }

    /// `cp -L` of a host file to an image path (mode kept).
    pub fn copy(&self, from: &Path, to: &str) {
        let dest = self.host(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let st = Command::new("cp")
            .arg("-L")
            .arg("--preserve=mode")
            .arg(from)
            .arg(&dest)
            .status()
            .unwrap();
        assert!(st.success(), "cp {} {}", from.display(), dest.display());
    }

    pub fn symlink(&self, target: &str, link: &str) {
        let l = self.host(link);
        std::fs::create_dir_all(l.parent().unwrap()).unwrap();
        symlink(target, l).unwrap();
    }

    pub fn hard_link(&self, existing: &str, link: &str) {
        let l = self.host(link);
        std::fs::create_dir_all(l.parent().unwrap()).unwrap();
        std::fs::hard_link(self.host(existing), l).unwrap();
    }

    pub fn write(&self, path: &str, text: &str) {
        let p = self.host(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// The host's glibc loader and libc, at Debian's paths.
    pub fn add_glibc(&self) {
        let dir = "/lib/x86_64-linux-gnu";
        self.copy(
            Path::new("/lib64/ld-linux-x86-64.so.2"),
            &format!("{dir}/ld-linux-x86-64.so.2"),
        );
        self.copy(
            Path::new(&format!("{dir}/libc.so.6")),
            &format!("{dir}/libc.so.6"),
        );
        self.symlink(
            &format!("{dir}/ld-linux-x86-64.so.2"),
            "/lib64/ld-linux-x86-64.so.2",
        );
    }

    /// `ldconfig -r IMAGE`: the cache glibc reads at run time, built from
    /// the image's ld.so.conf (`-X`: no links made, the image stays as built).
    pub fn ldconfig(&self) {
        let st = Command::new("ldconfig")
            .arg("-X")
            .arg("-r")
            .arg(&self.root)
            .status()
            .unwrap();
        assert!(st.success(), "ldconfig -r {}", self.root.display());
    }

    /// Runs `program` in a chroot of the image with an empty environment (but `LD_BIND_NOW`);
    /// with `proc`, in a private mount namespace with /proc mounted in the
    /// image (glibc reads /proc/self/exe for a program's `$ORIGIN`).
    pub fn run(&self, program: &str, args: &[&str], proc: bool) -> Output {
        let mut cmd;
        if proc {
            std::fs::create_dir_all(self.host("/proc")).unwrap();
            cmd = Command::new("unshare");
            cmd.args([
                "-m",
                "sh",
                "-c",
                "mount -t proc proc \"$0/proc\" && exec chroot \"$0\" \"$@\"",
            ]);
            cmd.arg(&self.root).arg(program).args(args);
        } else {
            cmd = Command::new("chroot");
            cmd.arg(&self.root).arg(program).args(args);
        }
        // Every symbol bound at load time, as `check` judges them (musl always does).
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LD_BIND_NOW", "1")
            .output()
            .unwrap()
    }
}

/// The libraries `ldd` (the real loader) lists for a host file: (name, path).
pub fn ldd(file: &Path) -> Vec<(String, PathBuf)> {
    let out = Command::new("ldd").arg(file).output().unwrap();
    assert!(out.status.success(), "ldd {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            let path = rest.split(" (").next()?;
            path.starts_with('/')
                .then(|| (name.to_string(), PathBuf::from(path)))
        })
        .collect()
}

/// Whether the failure of a run is the loader's (or the kernel's, for a
/// missing interpreter): the only failures the differential test expects.
pub fn loader_failure(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    out.status.code() == Some(127)
        && (err.contains("error while loading shared libraries")
            || err.contains("Error loading shared library")
            || err.contains("Error relocating")
            || err.contains("symbol lookup error")
            || err.contains("failed to run command"))
}
