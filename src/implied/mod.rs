//! The files a program's C library (or OpenSSL) opens without any ELF header naming them, derived
//! from the image itself: *which* files from the paths compiled into the image's own libc and its
//! release ([`facts`]), *when* from the functions the image's objects import (a program that
//! never calls `getaddrinfo` needs no `/etc/hosts`) and from the libraries they link
//! (`libcrypto`, `libssl`).
//!
//! `check` names what is missing (warnings: the program may never make the call); the build with
//! `--implicit` adds it, generating the account files and the NSS configuration rather than
//! copying the host's.

pub mod facts;
pub mod nss;
pub mod planned;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::Symbols;
use crate::fs::ImagePath;
use crate::ldso::Flavor;
pub use facts::{LibcFacts, OpensslFacts, libc_flavor};

/// Why a file is implied: what the program does that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Name and address lookup: NSS configuration, `hosts`, the `hosts` database's modules.
    Hosts,
    /// Users and groups: NSS configuration, `passwd` and `group`, their modules.
    Accounts,
    /// Character set conversion: glibc's gconv configuration, cache and modules.
    Gconv,
    /// Thread cancellation and unwinding: glibc dlopens `libgcc_s.so.1`.
    Unwind,
    /// Local time: the zone file.
    TimeZone,
    /// OpenSSL's configuration, providers and engines.
    Openssl,
    /// The CA certificates OpenSSL verifies peers with.
    CaBundle,
    /// A library an object's `.note.dlopen` recommends.
    Dlopen,
}

impl Topic {
    pub fn describe(self) -> &'static str {
        match self {
            Topic::Hosts => "name and address lookup",
            Topic::Accounts => "user and group lookup",
            Topic::Gconv => "character set conversion",
            Topic::Unwind => "thread cancellation and unwinding",
            Topic::TimeZone => "local time",
            Topic::Openssl => "OpenSSL configuration and providers",
            Topic::CaBundle => "TLS certificate verification",
            Topic::Dlopen => "a feature its .note.dlopen recommends",
        }
    }
}

/// Why an item is implied, for messages and the manifest: `TOPIC: IMPORTER imports FUNCTION`
/// (or `links LIBRARY`, or `dlopens SONAME` for `.note.dlopen`).
pub fn reason(topic: Topic, importer: &Path, cause: &str) -> String {
    let verb = match topic {
        Topic::Dlopen => "dlopens for",
        Topic::Openssl | Topic::CaBundle => "links",
        _ => "imports",
    };
    format!(
        "{}: {} {verb} {cause}",
        topic.describe(),
        importer.display()
    )
}

/// The imported functions that make the C library open files, by topic.
const TRIGGERS: &[(Topic, &[&str])] = &[
    (
        Topic::Hosts,
        &[
            "getaddrinfo",
            "getnameinfo",
            "gethostbyname",
            "gethostbyname2",
            "gethostbyname_r",
            "gethostbyname2_r",
            "gethostbyaddr",
            "gethostbyaddr_r",
            "gethostent",
            "gethostent_r",
        ],
    ),
    (
        Topic::Accounts,
        &[
            "getpwnam",
            "getpwnam_r",
            "getpwuid",
            "getpwuid_r",
            "getpwent",
            "getpwent_r",
            "getgrnam",
            "getgrnam_r",
            "getgrgid",
            "getgrgid_r",
            "getgrent",
            "getgrent_r",
            "getgrouplist",
            "initgroups",
        ],
    ),
    (Topic::Gconv, &["iconv_open"]),
    (
        Topic::Unwind,
        &["pthread_cancel", "pthread_exit", "backtrace"],
    ),
    (
        Topic::TimeZone,
        &[
            "localtime",
            "localtime_r",
            "mktime",
            "timelocal",
            "tzset",
            "ctime",
            "ctime_r",
        ],
    ),
];

/// The topic an imported function belongs to, if any.
pub fn topic_of(function: &str) -> Option<Topic> {
    TRIGGERS
        .iter()
        .find(|(_, names)| names.contains(&function))
        .map(|(t, _)| *t)
}

/// A file glibc writes for itself that copy_bom generates instead of copying the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Generated {
    NsswitchConf,
    Hosts,
    Passwd,
    Group,
}

impl Generated {
    /// The content written: local files for accounts, local files then DNS for hosts; only
    /// root and nobody, never the host's users.
    pub fn text(self) -> &'static str {
        match self {
            Generated::NsswitchConf => {
                "# Written by copy_bom --implicit.\npasswd: files\ngroup: files\nhosts: files dns\n"
            }
            Generated::Hosts => "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            Generated::Passwd => {
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            }
            Generated::Group => "root:x:0:\nnogroup:x:65534:\n",
        }
    }
}

/// One thing an image needs for a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    /// A file at a path compiled into the library: generated, or copied from the same path of
    /// the host (links followed).
    File {
        path: ImagePath,
        generated: Option<Generated>,
    },
    /// A directory of modules or data, all copied (gconv); `marker` is the file whose presence
    /// says the directory is usable.
    Tree {
        path: ImagePath,
        marker: Option<&'static str>,
    },
    /// A shared object the C library dlopens by name (NSS modules, `libgcc_s.so.1`): found
    /// beside the libc or where the loader searches.
    Module { name: String },
}

impl Item {
    /// What is missing, as messages name it.
    pub fn shown(&self) -> String {
        match self {
            Item::File { path, .. } | Item::Tree { path, .. } => path.to_string(),
            Item::Module { name } => name.clone(),
        }
    }
}

/// An item and the first reason found for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub item: Item,
    pub topic: Topic,
    /// The object that imports the function or links the library (image path).
    pub importer: PathBuf,
    /// The function imported, or the library linked (`libssl.so.3`).
    pub cause: String,
}

/// One object that may make the libraries open files.
pub struct Importer<'a> {
    pub path: &'a Path,
    /// Its imports that imply files ([`Imports::of`]).
    pub imports: &'a Imports,
    pub needed: &'a [String],
}

/// The first imported function of each topic, in the object's reference order: all an object's
/// imports say about implied files, computed once per object (a library is in many scopes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imports(Vec<(Topic, String)>);

impl Imports {
    pub fn of(symbols: Option<&Symbols>) -> Imports {
        let mut found: Vec<(Topic, String)> = Vec::new();
        for r in symbols.into_iter().flat_map(|s| &s.references) {
            if let Some(t) = topic_of(&r.name)
                && !found.iter().any(|(f, _)| *f == t)
            {
                found.push((t, r.name.clone()));
            }
        }
        Imports(found)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the objects of one process (a program's load scope, or an object judged alone) use.
pub struct Process<'a> {
    pub libc: Option<&'a LibcFacts>,
    pub openssl: Option<&'a OpensslFacts>,
    /// The text of the image's `nsswitch.conf` (the one libc names), when it has one.
    pub nsswitch: Option<&'a str>,
    /// The `TZ` the process runs with (an Occlum instance's `env.default`): its zone file is
    /// read instead of `localtime`.
    pub tz: Option<&'a str>,
    pub importers: Vec<Importer<'a>>,
}

/// Everything the processes need, each item once with its first reason (processes and importers
/// in the order given).
pub fn needs(processes: &[Process]) -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    let mut push = |item: Item, topic: Topic, importer: &Path, cause: &str| {
        if !out.iter().any(|n| n.item == item) {
            out.push(Need {
                item,
                topic,
                importer: importer.to_path_buf(),
                cause: cause.to_string(),
            });
        }
    };
    for p in processes {
        for imp in &p.importers {
            for (topic, function) in &imp.imports.0 {
                if let Some(libc) = p.libc {
                    for item in libc_items(libc, *topic, p.nsswitch, p.tz) {
                        push(item, *topic, imp.path, function);
                    }
                }
            }
            let Some(ssl) = p.openssl else {
                continue;
            };
            for lib in imp.needed {
                let topic = if lib.starts_with("libcrypto.so") {
                    Topic::Openssl
                } else if lib.starts_with("libssl.so") {
                    Topic::CaBundle
                } else {
                    continue;
                };
                for item in openssl_items(ssl, topic) {
                    push(item, topic, imp.path, lib);
                }
            }
        }
    }
    out
}

/// What the C library opens for a topic.
fn libc_items(
    libc: &LibcFacts,
    topic: Topic,
    nsswitch: Option<&str>,
    tz: Option<&str>,
) -> Vec<Item> {
    let file = |path: &Option<ImagePath>, generated| {
        path.clone().map(|path| Item::File { path, generated })
    };
    let paths = &libc.paths;
    let glibc = libc.flavor == Flavor::Glibc;
    let mut items: Vec<Item> = Vec::new();
    let databases: &[&str] = match topic {
        Topic::Hosts => {
            items.extend(file(&paths.hosts, Some(Generated::Hosts)));
            &["hosts"]
        }
        Topic::Accounts => {
            items.extend(file(&paths.passwd, Some(Generated::Passwd)));
            items.extend(file(&paths.group, Some(Generated::Group)));
            &["passwd", "group"]
        }
        Topic::Gconv => {
            items.extend(paths.gconv.clone().map(|path| Item::Tree {
                path,
                marker: Some("gconv-modules"),
            }));
            &[]
        }
        Topic::Unwind if glibc => {
            items.push(Item::Module {
                name: "libgcc_s.so.1".to_string(),
            });
            &[]
        }
        Topic::TimeZone => {
            // An absolute TZ names its file; a relative one a file of the zone directory.
            let zone = match tz {
                Some(t) if t.starts_with('/') => ImagePath::parse(t).ok(),
                Some(t) => paths.zoneinfo.as_ref().and_then(|z| z.join(t).ok()),
                None => None,
            };
            match zone {
                Some(path) => items.push(Item::File {
                    path,
                    generated: None,
                }),
                None => items.extend(file(&paths.localtime, None)),
            }
            &[]
        }
        _ => &[],
    };
    if glibc && !databases.is_empty() {
        items.extend(file(&paths.nsswitch, Some(Generated::NsswitchConf)));
        let conf = nsswitch.unwrap_or(Generated::NsswitchConf.text());
        for db in databases {
            let services = nss::services(conf, db).unwrap_or_else(|| nss::default_services(db));
            for s in services.into_iter().filter(|s| !libc.builtin_nss(s)) {
                items.push(Item::Module {
                    name: nss::module_name(s),
                });
            }
            // glibc before 2.34: the dns module needs libresolv, which its DT_NEEDED names.
        }
    }
    items
}

/// What libcrypto opens (its configuration, providers and engines) and what a TLS peer check
/// reads (the CA bundle at `OPENSSLDIR/cert.pem`).
fn openssl_items(ssl: &OpensslFacts, topic: Topic) -> Vec<Item> {
    let mut items = Vec::new();
    match topic {
        Topic::Openssl => {
            if let Some(dir) = &ssl.openssldir
                && let Ok(path) = dir.join("openssl.cnf")
            {
                items.push(Item::File {
                    path,
                    generated: None,
                });
            }
            for dir in [&ssl.modulesdir, &ssl.enginesdir].into_iter().flatten() {
                items.push(Item::Tree {
                    path: dir.clone(),
                    marker: None,
                });
            }
        }
        Topic::CaBundle => {
            if let Some(dir) = &ssl.openssldir
                && let Ok(path) = dir.join("cert.pem")
            {
                items.push(Item::File {
                    path,
                    generated: None,
                });
            }
        }
        _ => {}
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::Reference;

    fn libc(version: (u32, u32)) -> LibcFacts {
        let p = |s: &str| ImagePath::parse(s).ok();
        LibcFacts {
            flavor: Flavor::Glibc,
            version: Some(version),
            paths: facts::LibcPaths {
                nsswitch: p("/etc/nsswitch.conf"),
                hosts: p("/etc/hosts"),
                passwd: p("/etc/passwd"),
                group: p("/etc/group"),
                localtime: p("/etc/localtime"),
                zoneinfo: p("/usr/share/zoneinfo"),
                gconv: p("/usr/lib/gconv"),
            },
        }
    }

    fn importing(names: &[&str]) -> Symbols {
        Symbols {
            references: names
                .iter()
                .map(|n| Reference {
                    name: n.to_string(),
                    need: None,
                })
                .collect(),
            ..Symbols::default()
        }
    }

    fn shown(needs: &[Need]) -> Vec<String> {
        needs.iter().map(|n| n.item.shown()).collect()
    }

    #[test]
    fn older_glibc_needs_its_nss_modules_and_newer_does_not() {
        let syms = importing(&["puts", "getaddrinfo"]);
        for (version, modules) in [((2, 31), true), ((2, 36), false)] {
            let libc = libc(version);
            let needs = needs(&[Process {
                libc: Some(&libc),
                openssl: None,
                nsswitch: None,
                tz: None,
                importers: vec![Importer {
                    path: Path::new("/bin/p"),
                    imports: &Imports::of(Some(&syms)),
                    needed: &[],
                }],
            }]);
            let mut want = vec!["/etc/hosts", "/etc/nsswitch.conf"];
            if modules {
                want.extend(["libnss_files.so.2", "libnss_dns.so.2"]);
            }
            assert_eq!(shown(&needs), want);
            assert!(needs.iter().all(|n| n.cause == "getaddrinfo"));
        }
    }

    #[test]
    fn the_image_nsswitch_names_the_modules() {
        let libc = libc((2, 36));
        let syms = importing(&["getpwuid"]);
        let needs = needs(&[Process {
            libc: Some(&libc),
            openssl: None,
            nsswitch: Some("passwd: files systemd\n"),
            tz: None,
            importers: vec![Importer {
                path: Path::new("/bin/p"),
                imports: &Imports::of(Some(&syms)),
                needed: &[],
            }],
        }]);
        assert_eq!(
            shown(&needs),
            vec![
                "/etc/passwd",
                "/etc/group",
                "/etc/nsswitch.conf",
                "libnss_systemd.so.2"
            ]
        );
    }
}
