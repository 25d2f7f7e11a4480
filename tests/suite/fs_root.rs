//! ImageRoot and rooted::resolve_in_root: image paths resolve inside the root, following in-root
//! symlinks as the image would, with openat2 and with the component walk that replaces it on old
//! kernels. The walk is compared with the kernel's own RESOLVE_IN_ROOT on generated trees.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use copy_bom::fs::rooted::resolve_in_root;
use copy_bom::fs::{FileKind, ImageRoot};
use copy_bom::fs::{lookup_on_disk, resolve_in_root_with};
use proptest::prelude::*;
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

    /// The image opened twice: with openat2, and forced to the component walk.
    fn images(&self) -> [ImageRoot; 2] {
        [
            ImageRoot::open_existing(&self.root).unwrap(),
            ImageRoot::open_existing(&self.root)
                .unwrap()
                .force_component_walk(),
        ]
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

fn resolve(image: &ImageRoot, p: &str, follow: bool) -> PathBuf {
    image.resolve(Path::new(p), follow).unwrap()
}

#[test]
fn plain_paths_resolve_to_themselves() {
    let fx = Fixture::new();
    for image in fx.images() {
        assert_eq!(image.root(), fx.root);
        assert_eq!(
            resolve(&image, "/usr/lib/x", false),
            Path::new("/usr/lib/x")
        );
        assert_eq!(resolve(&image, "/", false), Path::new("/"));
        assert_eq!(resolve(&image, "lib", true), Path::new("/lib"));
    }
}

#[test]
fn absolute_link_is_taken_from_the_image_root() {
    let fx = Fixture::new();
    let victim = fx.outside.join("victim");
    fx.link("lib", &victim);
    for image in fx.images() {
        assert_eq!(
            resolve(&image, "/lib/libc.so", false),
            victim.join("libc.so")
        );
        image.create_dir_all(Path::new("/lib/sub")).unwrap();
        assert!(
            fx.root
                .join(victim.strip_prefix("/").unwrap())
                .join("sub")
                .is_dir()
        );
        assert!(!victim.join("sub").exists());
    }
}

#[test]
fn relative_link_climbing_above_the_root_is_clamped() {
    let fx = Fixture::new();
    fx.link("a", "../../..");
    fx.link("deep/b", "../../../../outside/victim");
    for image in fx.images() {
        assert_eq!(resolve(&image, "/a/x", false), Path::new("/x"));
        assert_eq!(
            resolve(&image, "/deep/b/keep", false),
            Path::new("/outside/victim/keep")
        );
        image.create_dir_all(Path::new("/deep/b/new")).unwrap();
        assert!(fx.in_root("outside/victim/new").is_dir());
    }
}

#[test]
fn link_chains_are_followed() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("usr/lib")).unwrap();
    fx.link("lib64", "/usr/lib64");
    fx.link("usr/lib64", "lib");
    fx.link("opt/app", "../lib64/./");
    for image in fx.images() {
        let want = Path::new("/usr/lib/libc.so");
        assert_eq!(resolve(&image, "/lib64/libc.so", false), want);
        assert_eq!(resolve(&image, "/opt/app/libc.so", false), want);
        assert_eq!(resolve(&image, "/opt/app", true), Path::new("/usr/lib"));
    }
}

#[test]
fn the_last_component_is_followed_only_when_asked() {
    let fx = Fixture::new();
    fx.link("etc", &fx.outside);
    fx.link("dangling", "/nowhere/x");
    for image in fx.images() {
        assert_eq!(resolve(&image, "/etc", false), Path::new("/etc"));
        assert_eq!(resolve(&image, "/etc", true), fx.outside);
        let st = image.lstat(Path::new("/etc")).unwrap().unwrap();
        assert_eq!(st.kind, FileKind::Symlink);
        // Followed in the image, where the host's outside dir does not exist.
        assert_eq!(image.stat_followed(Path::new("/etc")).unwrap(), None);
        assert_eq!(resolve(&image, "/dangling", true), Path::new("/nowhere/x"));
        assert_eq!(image.stat_followed(Path::new("/dangling")).unwrap(), None);
        assert_eq!(image.lstat(Path::new("/missing/x")).unwrap(), None);
    }
}

#[test]
fn dot_dot_after_a_link_leaves_the_link_target() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("x/y")).unwrap();
    fx.link("a", "x/y");
    fx.link("up", "a/../..");
    for image in fx.images() {
        assert_eq!(resolve(&image, "/up/b", false), Path::new("/b"));
        assert_eq!(resolve(&image, "/a/c", false), Path::new("/x/y/c"));
    }
}

#[test]
fn link_loops_are_errors_that_name_the_path() {
    let fx = Fixture::new();
    fx.link("l1", "l2");
    fx.link("l2", "/l1");
    fx.link("self", "self");
    for image in fx.images() {
        let err = image.resolve(Path::new("/l1/x"), false).unwrap_err();
        assert_eq!(err.raw_os_error(), None, "wrapped with its path");
        assert!(err.to_string().starts_with("/l1/x:"), "{err}");
        assert!(err.to_string().contains("symbolic links"), "{err}");
        assert!(image.stat_followed(Path::new("/self")).is_err());
        let err = image.create_dir_all(Path::new("/self")).unwrap_err();
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }
}

#[test]
fn create_dir_all_follows_links_in_every_component() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("usr/lib")).unwrap();
    fx.link("lib", "usr/lib");
    fx.link("dangling", "/made/by/mkdir");
    for image in fx.images() {
        image.create_dir_all(Path::new("/lib")).unwrap();
        image.create_dir_all(Path::new("lib/a/b")).unwrap();
        assert!(fx.in_root("usr/lib/a/b").is_dir());
        assert!(fx.in_root("lib").symlink_metadata().unwrap().is_symlink());
        image.create_dir_all(Path::new("/dangling/x")).unwrap();
        assert!(fx.in_root("made/by/mkdir/x").is_dir());
    }
}

#[test]
fn create_dir_all_through_a_file_names_the_path() {
    let fx = Fixture::new();
    fs::write(fx.in_root("file"), "x").unwrap();
    for image in fx.images() {
        let err = image.create_dir_all(Path::new("/file/sub")).unwrap_err();
        assert!(err.to_string().starts_with("/file/sub:"), "{err}");
        assert!(image.resolve(Path::new("/file/x"), false).is_err());
    }
}

/// Nothing is remembered: a link that appears after a resolution is seen by the next one.
#[test]
fn a_new_link_is_seen_at_once() {
    let fx = Fixture::new();
    for (i, image) in fx.images().into_iter().enumerate() {
        let d = format!("d{i}");
        image.create_dir_all(Path::new(&format!("/{d}/x"))).unwrap();
        fs::remove_dir_all(fx.in_root(&d)).unwrap();
        fs::create_dir_all(fx.in_root("e")).unwrap();
        fx.link(&d, "e");
        assert_eq!(
            resolve(&image, &format!("/{d}/x"), false),
            Path::new("/e/x")
        );
        image.create_dir_all(Path::new(&format!("/{d}/y"))).unwrap();
        assert!(fx.in_root("e/y").is_dir());
        // Swapped for a link to the host: still inside.
        fs::remove_file(fx.in_root(&d)).unwrap();
        fx.link(&d, &fx.outside);
        image.create_dir_all(Path::new(&format!("/{d}/z"))).unwrap();
        assert!(!fx.outside.join("z").exists());
    }
}

#[test]
fn image_root_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ImageRoot>();
    let fx = Fixture::new();
    fx.link("lib", "usr/lib");
    for image in fx.images() {
        std::thread::scope(|s| {
            for i in 0..4 {
                let image = &image;
                s.spawn(move || {
                    image
                        .create_dir_all(Path::new(&format!("/lib/f{i}")))
                        .unwrap();
                    assert_eq!(
                        resolve(image, &format!("/lib/f{i}"), true),
                        PathBuf::from(format!("/usr/lib/f{i}"))
                    );
                });
            }
        });
    }
}

#[test]
fn resolve_in_root_reads_a_plain_directory() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.in_root("usr/lib/x86_64-linux-gnu")).unwrap();
    fx.link("lib64", "/usr/lib/x86_64-linux-gnu");
    fx.link("usr/lib/x86_64-linux-gnu/ld.so", "/lib64/real");
    let got = resolve_in_root(&fx.root, Path::new("/lib64/ld.so"), true).unwrap();
    assert_eq!(got, Path::new("/usr/lib/x86_64-linux-gnu/real"));
    let got = resolve_in_root(&fx.root, Path::new("/lib64/ld.so"), false).unwrap();
    assert_eq!(got, Path::new("/usr/lib/x86_64-linux-gnu/ld.so"));
    let err = resolve_in_root(&fx.root.join("nope"), Path::new("/x"), true).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

// ---- The walk against the kernel ---------------------------------------------------------------

/// What the kernel's RESOLVE_IN_ROOT makes of `p` under `root`: the image path of what it opens
/// (read back from /proc/self/fd), or the errno.
fn kernel_resolve(root: &Path, p: &str, follow: bool) -> Result<PathBuf, i32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let dir = fs::File::open(root).unwrap();
    let c = std::ffi::CString::new(p.trim_start_matches('/').as_bytes()).unwrap();
    let c = if c.as_bytes().is_empty() {
        std::ffi::CString::new(".").unwrap()
    } else {
        c
    };
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC | if follow { 0 } else { libc::O_NOFOLLOW }) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let real = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    let canon_root = fs::canonicalize(root).unwrap();
    let rel = real.strip_prefix(&canon_root).unwrap();
    let _ = std::ffi::OsStr::as_bytes(rel.as_os_str());
    Ok(Path::new("/").join(rel))
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// A tree of dirs and links (targets absolute, relative, climbing, chained, looping).
fn tree() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    let name = prop::sample::select(NAMES.to_vec());
    let path = prop::collection::vec(name.clone(), 1..4).prop_map(|v| v.join("/"));
    let target = (
        any::<bool>(),
        prop::collection::vec(
            prop_oneof![3 => name.prop_map(str::to_string), 1 => Just("..".to_string()), 1 => Just(".".to_string())],
            1..4,
        ),
    )
        .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")));
    prop::collection::vec((path, prop::option::of(target)), 1..12)
}

fn build_tree(root: &Path, items: &[(String, Option<String>)]) {
    for (at, link) in items {
        let p = root.join(at);
        // Only where the host path does not go through a link already made (the host would
        // follow it).
        let through_link = p
            .ancestors()
            .skip(1)
            .take_while(|a| *a != root)
            .any(|a| a.symlink_metadata().is_ok_and(|m| !m.is_dir()));
        if through_link || p.symlink_metadata().is_ok() {
            continue;
        }
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        match link {
            Some(t) => symlink(t, &p).unwrap(),
            None => fs::create_dir(&p).unwrap(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_walk_agrees_with_the_kernel(
        items in tree(),
        probes in prop::collection::vec((prop::collection::vec(prop::sample::select(NAMES.to_vec()), 1..5), any::<bool>()), 1..10),
    ) {
        let fx = Fixture::new();
        build_tree(&fx.root, &items);
        let [kernel, walk] = fx.images();
        for (parts, follow) in probes {
            let p = format!("/{}", parts.join("/"));
            let truth = kernel_resolve(&fx.root, &p, follow);
            let ours = walk.resolve(Path::new(&p), follow);
            // The walk over a planned image (the same rules, asked through a lookup function)
            // agrees with the kernel too wherever the path exists.
            let planned = resolve_in_root_with(Path::new(&p), follow, |q| lookup_on_disk(&fx.root, q));
            match &truth {
                Ok(want) => {
                    let planned = planned.unwrap().as_path().to_path_buf();
                    prop_assert_eq!(&planned, want, "planned {} {:?}", p, items);
                    prop_assert_eq!(ours.unwrap(), want.clone(), "{} {:?}", p, items)
                }
                Err(libc::ENOENT) => {
                    // Missing: our resolution keeps the missing names; it is not an error,
                    // except that a ".." in a link target cancels a missing name (as mkdir -p
                    // would create and leave it), after which the walk looks names up again and
                    // can meet a loop the kernel never reaches ("a -> b/../a", b missing).
                    let loop_after_cancel = ours.as_ref().is_err_and(|e| {
                        e.to_string().ends_with(&std::io::Error::from_raw_os_error(libc::ELOOP).to_string())
                            && items.iter().any(|(_, t)| t.as_ref().is_some_and(|t| t.contains("..")))
                    });
                    prop_assert!(ours.is_ok() || loop_after_cancel, "{}: {:?}", p, ours);
                }
                Err(errno) => {
                    let err = ours.unwrap_err();
                    let text = err.to_string();
                    let want = std::io::Error::from_raw_os_error(*errno).to_string();
                    prop_assert!(text.ends_with(&want), "{}: {} vs {} {:?}", p, text, want, items);
                }
            }
            // The two ways of opening agree on whether (and what) something is there.
            let a = kernel.stat_followed(Path::new(&p)).map_err(|e| e.kind());
            let b = walk.stat_followed(Path::new(&p)).map_err(|e| e.kind());
            prop_assert_eq!(a, b, "{}", p);
            let a = kernel.lstat(Path::new(&p)).map_err(|e| e.kind());
            let b = walk.lstat(Path::new(&p)).map_err(|e| e.kind());
            prop_assert_eq!(a, b, "{}", p);
        }
    }
}
