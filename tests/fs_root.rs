//! ImageRoot: image paths resolve inside the root, following in-root symlinks as the image would.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use copy_bom::fs::ImageRoot;
use tempfile::TempDir;
use walkdir::WalkDir;

/// A root and, beside it, an "outside" directory that nothing may ever touch.
struct Fixture {
    _dir: TempDir,
    root: PathBuf,
    outside: PathBuf,
    before: BTreeSet<String>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("image");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(outside.join("victim")).unwrap();
        fs::write(outside.join("victim/keep"), "host file").unwrap();
        let before = listing(&outside);
        Fixture {
            _dir: dir,
            root,
            outside,
            before,
        }
    }

    fn image(&self) -> ImageRoot {
        ImageRoot::new(&self.root)
    }

    fn link(&self, link: &str, target: impl AsRef<Path>) {
        let path = self.root.join(link);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    fn in_root(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                listing(&self.outside),
                self.before,
                "the outside dir changed"
            );
        }
    }
}

/// Every path under `dir` with its file type, length and mtime.
fn listing(dir: &Path) -> BTreeSet<String> {
    WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            format!(
                "{} {:?} {} {:?}",
                e.path().display(),
                m.file_type(),
                m.len(),
                m.modified().unwrap()
            )
        })
        .collect()
}

#[test]
fn plain_paths_map_under_the_root() {
    let fx = Fixture::new();
    let image = fx.image();
    assert_eq!(image.root(), fx.root);
    assert_eq!(
        image.host_path(Path::new("/usr/lib/x")).unwrap(),
        fx.in_root("usr/lib/x")
    );
    assert_eq!(image.host_path(Path::new("/")).unwrap(), fx.root);
}

#[test]
fn absolute_link_is_taken_from_the_image_root() {
    let fx = Fixture::new();
    let victim = fx.outside.join("victim");
    fx.link("lib", &victim);
    let image = fx.image();
    let expected = fx
        .root
        .join(victim.strip_prefix("/").unwrap())
        .join("libc.so");
    assert_eq!(
        image.host_path(Path::new("/lib/libc.so")).unwrap(),
        expected
    );
    let made = image.create_dir_all(Path::new("/lib/sub")).unwrap();
    assert!(made.starts_with(&fx.root) && made.is_dir());
    assert!(!victim.join("sub").exists());
}

#[test]
fn relative_link_climbing_above_the_root_is_clamped() {
    let fx = Fixture::new();
    fx.link("a", "../../..");
    fx.link("deep/b", "../../../../outside/victim");
    let image = fx.image();
    assert_eq!(image.host_path(Path::new("/a/x")).unwrap(), fx.in_root("x"));
    assert_eq!(
        image.host_path(Path::new("/deep/b/keep")).unwrap(),
        fx.in_root("outside/victim/keep")
    );
    image.create_dir_all(Path::new("/deep/b/new")).unwrap();
    assert!(fx.in_root("outside/victim/new").is_dir());
}

#[test]
fn link_chains_are_followed() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("usr/lib")).unwrap();
    fx.link("lib64", "/usr/lib64");
    fx.link("usr/lib64", "lib");
    fx.link("opt/app", "../lib64/./");
    let image = fx.image();
    let want = fx.in_root("usr/lib/libc.so");
    assert_eq!(image.host_path(Path::new("/lib64/libc.so")).unwrap(), want);
    assert_eq!(
        image.host_path(Path::new("/opt/app/libc.so")).unwrap(),
        want
    );
}

#[test]
fn the_last_component_is_not_followed() {
    let fx = Fixture::new();
    fx.link("etc", &fx.outside);
    let image = fx.image();
    assert_eq!(
        image.host_path(Path::new("/etc")).unwrap(),
        fx.in_root("etc")
    );
}

#[test]
fn dot_dot_after_a_link_leaves_the_link_target() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("x/y")).unwrap();
    fx.link("a", "x/y");
    let image = fx.image();
    assert_eq!(
        image.host_path(Path::new("/a/../b")).unwrap(),
        fx.in_root("x/b")
    );
}

#[test]
fn link_loops_are_errors_that_name_the_path() {
    let fx = Fixture::new();
    fx.link("l1", "l2");
    fx.link("l2", "/l1");
    fx.link("self", "self");
    let image = fx.image();
    let err = image.host_path(Path::new("/l1/x")).unwrap_err();
    assert_eq!(err.raw_os_error(), None, "wrapped with its path");
    assert!(
        err.to_string().contains(&fx.root.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("symbolic links"), "{err}");
    assert!(image.host_path(Path::new("/self/x")).is_err());
    assert!(image.create_dir_all(Path::new("/self")).is_err());
}

#[test]
fn create_dir_all_follows_links_in_every_component() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("usr/lib")).unwrap();
    fx.link("lib", "usr/lib");
    fx.link("dangling", "/made/by/mkdir");
    let image = fx.image();
    assert_eq!(
        image.create_dir_all(Path::new("/lib")).unwrap(),
        fx.in_root("usr/lib")
    );
    assert_eq!(
        image.create_dir_all(Path::new("lib/a/b")).unwrap(),
        fx.in_root("usr/lib/a/b")
    );
    assert!(fx.in_root("usr/lib/a/b").is_dir());
    image.create_dir_all(Path::new("/dangling/x")).unwrap();
    assert!(fx.in_root("made/by/mkdir/x").is_dir());
}

#[test]
fn create_dir_all_through_a_file_names_the_path() {
    let fx = Fixture::new();
    fs::write(fx.in_root("file"), "x").unwrap();
    let err = fx
        .image()
        .create_dir_all(Path::new("/file/sub"))
        .unwrap_err();
    assert!(err.to_string().contains("file"), "{err}");
}

#[test]
fn forget_links_sees_a_new_link() {
    let fx = Fixture::new();
    let image = fx.image();
    assert_eq!(
        image.host_path(Path::new("/d/x")).unwrap(),
        fx.in_root("d/x")
    );
    fs::create_dir_all(fx.in_root("e")).unwrap();
    fx.link("d", "e");
    image.forget_links();
    assert_eq!(
        image.host_path(Path::new("/d/x")).unwrap(),
        fx.in_root("e/x")
    );
}

#[test]
fn image_root_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ImageRoot>();
    let fx = Fixture::new();
    fx.link("lib", "usr/lib");
    let image = fx.image();
    std::thread::scope(|s| {
        for i in 0..4 {
            let image = &image;
            let want = fx.in_root(&format!("usr/lib/f{i}"));
            s.spawn(move || {
                assert_eq!(
                    image.host_path(Path::new(&format!("/lib/f{i}"))).unwrap(),
                    want
                )
            });
        }
    });
}
