//! Reading many host files: each is opened relative to a descriptor of its directory, so a run of
//! files of one directory walks that directory's path once instead of once per file. On a tree of
//! 100,000 files, the path walks of whole-path opens were most of the cost of sniffing them.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rayon::prelude::*;

use super::sys;

/// Calls `read` with each path and the file opened for reading (or why it could not be), in
/// parallel, and returns the results in the order of `paths`. Paths of one directory should come
/// together: each run of them shares one directory descriptor. Opening a name relative to its
/// directory follows the same links as opening the whole path; where the directory cannot be
/// opened, each file is opened by its whole path, so the error is the one that path gives.
pub fn map_opened<P, T, F>(paths: &[P], read: F) -> Vec<T>
where
    P: AsRef<Path> + Sync,
    T: Send,
    F: Fn(&Path, io::Result<File>) -> T + Sync,
{
    let read = &read;
    paths
        .par_chunk_by(|a, b| a.as_ref().parent() == b.as_ref().parent())
        .flat_map_iter(|run| {
            let dir = run
                .first()
                .and_then(|p| p.as_ref().parent())
                .filter(|d| !d.as_os_str().is_empty())
                .and_then(|d| File::open(d).ok());
            run.iter().map(move |p| {
                let path = p.as_ref();
                let file = match (&dir, path.file_name()) {
                    (Some(dir), Some(name)) => open_in(dir, name),
                    _ => File::open(path),
                };
                read(path, file)
            })
        })
        .collect()
}

fn open_in(dir: &File, name: &OsStr) -> io::Result<File> {
    let fd = sys::openat(
        dir.as_fd(),
        &sys::cstr(name)?,
        libc::O_RDONLY | libc::O_NOCTTY,
        0,
    )?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::PathBuf;

    #[test]
    fn results_follow_the_order_of_the_paths_and_name_each_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let mut paths: Vec<PathBuf> = Vec::new();
        for d in ["a", "b"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap();
            for i in 0..50 {
                let p = tmp.path().join(d).join(format!("f{i}"));
                std::fs::write(&p, format!("{d}{i}")).unwrap();
                paths.push(p);
            }
        }
        paths.insert(10, tmp.path().join("a/missing"));
        paths.push(tmp.path().join("gone/f"));
        std::os::unix::fs::symlink("../b/f3", tmp.path().join("a/link")).unwrap();
        paths.push(tmp.path().join("a/link"));
        let got = map_opened(&paths, |path, file| {
            let mut s = String::new();
            file.and_then(|mut f| f.read_to_string(&mut s))
                .map(|_| s)
                .map_err(|e| (path.to_path_buf(), e.kind()))
        });
        assert_eq!(got.len(), paths.len());
        for (path, r) in paths.iter().zip(&got) {
            let name = path.file_name().unwrap().to_str().unwrap();
            let dir = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap();
            match (name, r) {
                ("missing", Err((p, kind))) | ("f", Err((p, kind))) => {
                    assert_eq!(p, path);
                    assert_eq!(*kind, io::ErrorKind::NotFound);
                }
                ("link", Ok(s)) => assert_eq!(s, "b3"),
                (_, Ok(s)) => assert_eq!(s, &format!("{dir}{}", &name[1..])),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
