//! The image root: turns image paths into host paths, following the symlinks already inside the root
//! the way the image would follow them (DESIGN invariant 1: nothing is ever written outside the root).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::path_error;

/// Linux's own limit on symlinks followed while resolving one path (MAXSYMLINKS).
const MAX_LINK_HOPS: usize = 40;

/// A directory on the host that holds an image. Cheap to share between copying threads.
#[derive(Debug)]
pub struct ImageRoot {
    root: PathBuf,
    /// Image directory → its resolved image directory (every component a real directory or missing).
    /// Creating a directory does not change a resolution (a missing name resolves to itself); only
    /// a new symlink does, hence `forget_links`.
    resolved_dirs: Mutex<HashMap<PathBuf, Vec<OsString>>>,
    /// Image directories this run created or found, so each is made once.
    made_dirs: Mutex<HashSet<PathBuf>>,
}

impl ImageRoot {
    /// An image rooted at `root`, which need not exist yet.
    pub fn new(root: &Path) -> ImageRoot {
        ImageRoot {
            root: root.to_path_buf(),
            resolved_dirs: Mutex::new(HashMap::new()),
            made_dirs: Mutex::new(HashSet::new()),
        }
    }

    /// The host directory that holds the image.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path that the image path `p` names. Every existing symlink in the parent components
    /// is followed as inside the image: an absolute target starts at the root, a relative one at the
    /// link's directory, and ".." stops at the root. The last component is not followed, so callers
    /// decide whether to replace or follow a link there. The result is always inside the root.
    pub fn host_path(&self, p: &Path) -> io::Result<PathBuf> {
        let mut components = image_components(p);
        match components.pop() {
            Some(Component::Normal(name)) => {
                let parent: PathBuf = components.iter().collect();
                let mut host = self.host_of(&self.resolved_dir(&parent)?);
                host.push(name);
                Ok(host)
            }
            // "/" itself, or a path ending in "." or "..": there is no last name to leave alone.
            _ => Ok(self.host_of(&self.resolve(p)?)),
        }
    }

    /// The host path of `p` with every component followed inside the image,
    /// the last one included (what opening `p` in the image would reach).
    pub fn host_path_followed(&self, p: &Path) -> io::Result<PathBuf> {
        Ok(self.host_of(&self.resolved_dir(p)?))
    }

    /// `mkdir -p` inside the image, following existing in-root links in every component, the last
    /// one included. A dangling link creates its target inside the root. Returns the host path.
    pub fn create_dir_all(&self, p: &Path) -> io::Result<PathBuf> {
        let host = self.host_of(&self.resolved_dir(p)?);
        if lock(&self.made_dirs).contains(p) {
            return Ok(host);
        }
        fs::create_dir_all(&host).map_err(|err| path_error(&host, err))?;
        lock(&self.made_dirs).insert(p.to_path_buf());
        Ok(host)
    }

    /// Forget the memoised directory resolutions: call after creating or replacing a symlink in the
    /// image, since any directory path through it may now resolve elsewhere.
    pub fn forget_links(&self) {
        self.memo().clear();
        lock(&self.made_dirs).clear();
    }

    fn memo(&self) -> MutexGuard<'_, HashMap<PathBuf, Vec<OsString>>> {
        lock(&self.resolved_dirs)
    }

    fn resolved_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        if let Some(found) = self.memo().get(dir) {
            return Ok(found.clone());
        }
        let resolved = self.resolve(dir)?;
        self.memo().insert(dir.to_path_buf(), resolved.clone());
        Ok(resolved)
    }

    fn host_of(&self, resolved: &[OsString]) -> PathBuf {
        let mut host = self.root.clone();
        host.extend(resolved);
        host
    }

    /// Resolve every component of `p` (the last included) to real or missing directories, as the
    /// kernel would inside a chroot at the root. Only names are ever pushed, never "..", so the
    /// result cannot leave the root.
    fn resolve(&self, p: &Path) -> io::Result<Vec<OsString>> {
        let mut resolved: Vec<OsString> = Vec::new();
        // Components still to walk, in reverse so the next one is at the end.
        let mut pending: Vec<OsString> = components_reversed(p);
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.to_str() {
                Some("" | ".") => continue,
                Some("..") => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let host = self.host_of(&resolved).join(&part);
            match fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        let loop_err = io::Error::from_raw_os_error(libc::ELOOP);
                        return Err(path_error(&host, loop_err));
                    }
                    let target = fs::read_link(&host).map_err(|err| path_error(&host, err))?;
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    pending.extend(components_reversed(&target));
                }
                Ok(_) => resolved.push(part),
                Err(err) if err.kind() == io::ErrorKind::NotFound => resolved.push(part),
                Err(err) => return Err(path_error(&host, err)),
            }
        }
        Ok(resolved)
    }
}

/// The components of an image path below its "/" (a relative path is taken from the root).
/// A panic elsewhere while holding a lock leaves these maps still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn image_components(p: &Path) -> Vec<Component<'_>> {
    p.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect()
}

fn components_reversed(p: &Path) -> Vec<OsString> {
    let mut parts: Vec<OsString> = image_components(p)
        .into_iter()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    parts.reverse();
    parts
}
