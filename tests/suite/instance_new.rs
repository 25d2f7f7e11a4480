//! `copy_bom new` through the library API, against fake host trees and fake
//! Occlum installations built in temporary directories.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use copy_bom::error::Status;
use copy_bom::instance::{InitRa, NewOptions, NewReport, create_instance};
use tempfile::TempDir;

/// A scratch area with a fake host root and a fake Occlum installation.
struct Fixture {
    tmp: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fixture = Fixture {
            tmp: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(fixture.host()).unwrap();
        fixture
    }

    fn host(&self) -> PathBuf {
        self.tmp.path().join("host")
    }

    fn occlum(&self) -> PathBuf {
        self.tmp.path().join("occlum")
    }

    fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    fn options(&self, name: &str) -> NewOptions {
        let mut opts = NewOptions::new(self.work().join(name));
        opts.occlum_dir = self.occlum();
        opts.host_root = self.host();
        opts
    }

    /// A fake file whose content is its own relative path, so that tests can
    /// tell where each copy came from.
    fn host_file(&self, rel: &str) {
        fake_file(&self.host(), rel);
    }

    fn occlum_file(&self, rel: &str) {
        fake_file(&self.occlum(), rel);
    }

    /// The files of a complete musl + glibc installation on Ubuntu.
    fn install_occlum(&self) {
        self.host_file("etc/localtime");
        fs::write(self.host().join("etc/os-release"), "NAME=\"Ubuntu\"\n").unwrap();
        self.host_file("lib/ld-musl-x86_64.so.1");
        for lib in ["libc.so", "libstdc++.so.6", "libgcc_s.so.1", "libgomp.so.1"] {
            self.host_file(&format!("usr/local/occlum/x86_64-linux-musl/lib/{lib}"));
        }
        for lib in ["libstdc++.so.6", "libgcc_s.so.1"] {
            self.host_file(&format!("usr/lib/x86_64-linux-gnu/{lib}"));
        }
        for lib in [
            "ld-linux-x86-64.so.2",
            "libc.so.6",
            "libpthread.so.0",
            "libm.so.6",
        ] {
            self.occlum_file(&format!("glibc/lib/{lib}"));
        }
        self.occlum_file("build/bin/init");
    }
}

fn fake_file(root: &Path, rel: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, rel).unwrap();
}

/// Every entry under `dir`, sorted: `path d`, `path f` or `path -> target`.
fn tree(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let rel = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            let kind = entry.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(entry.path()).unwrap();
                format!("{rel} -> {}", target.display())
            } else if kind.is_dir() {
                format!("{rel} d")
            } else {
                format!("{rel} f")
            }
        })
        .collect();
    lines.sort();
    lines
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn missing_about(report: &NewReport, needle: &str) -> usize {
    report.missing.iter().filter(|m| m.contains(needle)).count()
}

#[test]
fn new_instance_without_occlum_has_the_standard_layout() {
    let fx = Fixture::new();
    fx.host_file("etc/localtime");
    let opts = fx.options("inst");
    let report = create_instance(&opts).unwrap();
    let dir = opts.dir.clone();
    let expected = [
        ".__occlum_status f",
        "Occlum.json f",
        "app.yaml f",
        "image d",
        "image/bin d",
        "image/dev d",
        "image/etc d",
        "image/etc/hosts f",
        "image/etc/localtime f",
        "image/ext2 d",
        "image/host d",
        "image/lib d",
        "image/lib64 d",
        "image/proc d",
        "image/root d",
        "image/sbin d",
        "image/tmp d",
        "initfs d",
        "initfs/bin d",
        "initfs/dev d",
        "initfs/etc d",
        "initfs/etc/hosts f",
        "initfs/etc/localtime f",
        "initfs/lib d",
        "initfs/proc d",
    ];
    assert_eq!(tree(&dir), expected);
    assert_eq!(read(dir.join("image/etc/hosts")), "127.0.0.1   localhost\n");
    assert_eq!(
        read(dir.join("initfs/etc/hosts")),
        "127.0.0.1   localhost\n"
    );
    assert_eq!(read(dir.join(".__occlum_status")), "initialized\n");
    assert_eq!(read(dir.join("image/etc/localtime")), "etc/localtime");
    let mode = fs::metadata(dir.join("Occlum.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);

    assert_eq!(report.dir, dir);
    let localtime = fx.host().join("etc/localtime");
    assert_eq!(
        report.copied,
        vec![
            (localtime.clone(), PathBuf::from("image/etc/localtime")),
            (localtime, PathBuf::from("initfs/etc/localtime")),
        ]
    );
    // 5 musl files in image/lib and in initfs/lib, the init program, glibc.
    assert_eq!(report.missing.len(), 12, "{:#?}", report.missing);
    assert_eq!(missing_about(&report, "(the musl runtime)"), 10);
    assert_eq!(
        missing_about(&report, "image/lib/libc.so (the musl runtime)"),
        1
    );
    assert_eq!(
        missing_about(&report, "initfs/bin/init (the init program)"),
        1
    );
    assert_eq!(missing_about(&report, "glibc programs will not run"), 1);
    // No leftovers beside the instance.
    assert_eq!(names(&fx.work()), ["inst"]);
}

#[test]
fn host_without_localtime_gets_a_note_instead() {
    let fx = Fixture::new();
    let opts = fx.options("inst");
    let report = create_instance(&opts).unwrap();
    assert!(!opts.dir.join("image/etc/localtime").exists());
    assert!(!opts.dir.join("initfs/etc/localtime").exists());
    assert!(report.copied.is_empty());
    assert_eq!(missing_about(&report, "(the host's time zone)"), 2);
}

#[test]
fn occlum_installation_files_land_in_their_places() {
    let fx = Fixture::new();
    fx.install_occlum();
    let opts = fx.options("inst");
    let report = create_instance(&opts).unwrap();
    let dir = &opts.dir;
    assert!(report.missing.is_empty(), "{:#?}", report.missing);

    let musl = "usr/local/occlum/x86_64-linux-musl/lib";
    for root in ["image", "initfs"] {
        let lib = dir.join(root).join("lib");
        assert_eq!(
            read(lib.join("ld-musl-x86_64.so.1")),
            "lib/ld-musl-x86_64.so.1"
        );
        for name in ["libc.so", "libstdc++.so.6", "libgcc_s.so.1", "libgomp.so.1"] {
            assert_eq!(read(lib.join(name)), format!("{musl}/{name}"));
        }
    }
    let glibc = dir.join("image/opt/occlum/glibc");
    assert_eq!(
        read(dir.join("image/lib64/ld-linux-x86-64.so.2")),
        "glibc/lib/ld-linux-x86-64.so.2"
    );
    let link = glibc.join("lib/ld-linux-x86-64.so.2");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("/lib64/ld-linux-x86-64.so.2")
    );
    for name in ["libc.so.6", "libpthread.so.0", "libm.so.6"] {
        assert_eq!(
            read(glibc.join("lib").join(name)),
            format!("glibc/lib/{name}")
        );
    }
    for name in ["libstdc++.so.6", "libgcc_s.so.1"] {
        let from_os = format!("usr/lib/x86_64-linux-gnu/{name}");
        assert_eq!(read(glibc.join("lib").join(name)), from_os);
    }
    assert_eq!(read(glibc.join("etc/localtime")), "etc/localtime");
    assert_eq!(read(dir.join("initfs/bin/init")), "build/bin/init");
    assert!(tree(dir).contains(&"image/opt/occlum/glibc/etc d".to_string()));
    assert!(
        report
            .copied
            .contains(&(fx.occlum().join("build/bin/init"), "initfs/bin/init".into()))
    );
}

#[test]
fn non_ubuntu_hosts_take_the_glibc_companions_from_usr_lib64() {
    let fx = Fixture::new();
    fx.install_occlum();
    fs::write(
        fx.host().join("etc/os-release"),
        "NAME=\"Debian GNU/Linux\"\n",
    )
    .unwrap();
    let opts = fx.options("inst");
    let report = create_instance(&opts).unwrap();
    assert_eq!(
        missing_about(&report, "usr/lib64/libstdc++.so.6 does not exist"),
        1
    );
    assert_eq!(
        missing_about(&report, "usr/lib64/libgcc_s.so.1 does not exist"),
        1
    );
    assert_eq!(report.missing.len(), 2, "{:#?}", report.missing);
}

#[test]
fn grpc_ratls_initfs_has_the_ra_tls_client_and_its_init() {
    let fx = Fixture::new();
    fx.install_occlum();
    fx.host_file("etc/ssl/certs/ca-certificates.crt");
    fx.host_file("usr/local/occlum/x86_64-linux-musl/lib/libcjson.so.1");
    fx.occlum_file("toolchains/grpc_ratls/musl/libgrpc_ratls_client.so");
    fx.occlum_file("toolchains/grpc_ratls/musl/libhw_grpc_proto.so");
    fx.occlum_file("toolchains/dcap_lib/musl/libocclum_dcap.so.0.1.0");
    fx.occlum_file("build/bin/init_grpc_ratls");
    fx.occlum_file("etc/template/init_grpc_ratls.json");
    let mut opts = fx.options("inst");
    opts.init_ra = Some(InitRa::GrpcRatls);
    let report = create_instance(&opts).unwrap();
    let dir = &opts.dir;
    assert!(report.missing.is_empty(), "{:#?}", report.missing);

    assert!(!dir.join("initfs/etc/hosts").exists());
    assert_eq!(
        read(dir.join("initfs/etc/ssl/certs/ca-certificates.crt")),
        "etc/ssl/certs/ca-certificates.crt"
    );
    let lib = dir.join("initfs/lib");
    assert_eq!(
        read(lib.join("libgrpc_ratls_client.so")),
        "toolchains/grpc_ratls/musl/libgrpc_ratls_client.so"
    );
    assert!(lib.join("libhw_grpc_proto.so").is_file());
    assert!(lib.join("libocclum_dcap.so.0.1.0").is_file());
    assert!(lib.join("libcjson.so.1").is_file());
    assert!(lib.join("libc.so").is_file());
    assert_eq!(
        read(dir.join("initfs/bin/init")),
        "build/bin/init_grpc_ratls"
    );
    assert_eq!(
        read(dir.join("init_ra_conf.json")),
        "etc/template/init_grpc_ratls.json"
    );
    // The image is the same as for a default instance.
    assert_eq!(read(dir.join("image/etc/hosts")), "127.0.0.1   localhost\n");
}

#[test]
fn aecs_initfs_carries_glibc_and_the_aecs_client() {
    let fx = Fixture::new();
    fx.install_occlum();
    for lib in ["libaecs_client.so", "libual.so"] {
        fx.occlum_file(&format!("toolchains/aecs_client/{lib}"));
    }
    for lib in [
        "libz.so.1",
        "libdl.so.2",
        "libssl.so.1.1",
        "libcrypto.so.1.1",
    ] {
        fx.host_file(&format!("usr/lib/x86_64-linux-gnu/{lib}"));
    }
    for lib in ["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"] {
        fx.occlum_file(&format!("glibc/lib/{lib}"));
    }
    fx.occlum_file("build/bin/init_aecs");
    fx.occlum_file("etc/template/init_aecs.json");
    let mut opts = fx.options("inst");
    opts.init_ra = Some(InitRa::Aecs);
    let report = create_instance(&opts).unwrap();
    let dir = &opts.dir;
    assert!(report.missing.is_empty(), "{:#?}", report.missing);

    let listing = tree(&dir.join("initfs"));
    for wanted in [
        "etc/kubetee d",
        "lib d",
        "lib64 d",
        "opt/occlum/glibc/etc d",
    ] {
        assert!(
            listing.contains(&wanted.to_string()),
            "{wanted}: {listing:#?}"
        );
    }
    assert!(listing.contains(
        &"opt/occlum/glibc/lib/ld-linux-x86-64.so.2 -> /lib64/ld-linux-x86-64.so.2".to_string()
    ));
    assert_eq!(
        read(dir.join("initfs/lib64/ld-linux-x86-64.so.2")),
        "glibc/lib/ld-linux-x86-64.so.2"
    );
    let lib = dir.join("initfs/opt/occlum/glibc/lib");
    assert_eq!(
        read(lib.join("libaecs_client.so")),
        "toolchains/aecs_client/libaecs_client.so"
    );
    assert_eq!(
        read(lib.join("libssl.so.1.1")),
        "usr/lib/x86_64-linux-gnu/libssl.so.1.1"
    );
    for name in [
        "libual.so",
        "libz.so.1",
        "libdl.so.2",
        "libnss_dns.so.2",
        "libc.so.6",
    ] {
        assert!(lib.join(name).is_file(), "{name}");
    }
    assert!(!lib.join("libprotobuf.so.32").exists());
    assert!(!dir.join("initfs/lib/libc.so").exists());
    assert!(dir.join("initfs/etc/localtime").is_file());
    assert!(dir.join("initfs/opt/occlum/glibc/etc/localtime").is_file());
    assert_eq!(read(dir.join("initfs/bin/init")), "build/bin/init_aecs");
    assert_eq!(
        read(dir.join("init_ra_conf.json")),
        "etc/template/init_aecs.json"
    );
}

#[test]
fn aecs_without_occlum_lists_what_is_missing() {
    let fx = Fixture::new();
    let mut opts = fx.options("inst");
    opts.init_ra = Some(InitRa::Aecs);
    let report = create_instance(&opts).unwrap();
    assert!(opts.dir.join("initfs/opt/occlum/glibc/lib").is_dir());
    assert_eq!(
        missing_about(&report, "initfs/bin/init (the init program)"),
        1
    );
    assert_eq!(missing_about(&report, "init_ra_conf.json"), 1);
    assert_eq!(
        missing_about(&report, "toolchains/aecs_client does not exist"),
        1
    );
    assert_eq!(
        missing_about(&report, "initfs/lib64/ld-linux-x86-64.so.2 and"),
        1
    );
}

#[test]
fn an_existing_destination_is_refused_and_left_untouched() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.work().join("dir")).unwrap();
    fs::write(fx.work().join("dir/keep"), "mine").unwrap();
    fs::write(fx.work().join("file"), "mine").unwrap();
    for name in ["dir", "file"] {
        let opts = fx.options(name);
        let err = create_instance(&opts).unwrap_err();
        assert_eq!(err.status, Status::Usage);
        let message = format!("destination \"{}\" already exists", opts.dir.display());
        assert_eq!(err.message, message);
    }
    assert_eq!(names(&fx.work()), ["dir", "file"]);
    assert_eq!(names(&fx.work().join("dir")), ["keep"]);
    assert_eq!(read(fx.work().join("file")), "mine");
}

#[test]
fn paths_with_spaces_and_missing_parents_work() {
    let fx = Fixture::new();
    fx.install_occlum();
    let opts = fx.options("my projects/an instance");
    let report = create_instance(&opts).unwrap();
    assert!(report.missing.is_empty(), "{:#?}", report.missing);
    assert_eq!(read(opts.dir.join(".__occlum_status")), "initialized\n");
    assert!(opts.dir.join("image/lib/libc.so").is_file());
    assert_eq!(names(&fx.work().join("my projects")), ["an instance"]);
}

#[test]
fn a_failure_midway_leaves_nothing_behind() {
    let fx = Fixture::new();
    fx.install_occlum();
    // A source that exists but cannot be copied (a directory works as root too).
    fs::remove_file(fx.occlum().join("build/bin/init")).unwrap();
    fs::create_dir(fx.occlum().join("build/bin/init")).unwrap();
    fs::create_dir_all(fx.work()).unwrap();
    let opts = fx.options("parent/inst");
    let err = create_instance(&opts).unwrap_err();
    assert_eq!(err.status, Status::FileCopy);
    assert!(err.message.contains("build/bin/init"), "{}", err.message);
    assert!(names(&fx.work()).is_empty(), "{:?}", names(&fx.work()));
}

#[test]
fn occlum_json_has_the_fields_of_the_original_template() {
    let fx = Fixture::new();
    let opts = fx.options("inst");
    create_instance(&opts).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&read(opts.dir.join("Occlum.json"))).unwrap();
    let limits = &json["resource_limits"];
    assert_eq!(limits["kernel_space_heap_size"], "32MB");
    assert_eq!(limits["kernel_space_stack_size"], "1MB");
    assert_eq!(limits["user_space_size"], "300MB");
    assert_eq!(limits["max_num_of_threads"], 32);
    let process = &json["process"];
    assert_eq!(process["default_stack_size"], "4MB");
    assert_eq!(process["default_heap_size"], "32MB");
    assert_eq!(process["default_mmap_size"], "100MB");
    assert_eq!(json["entry_points"], serde_json::json!(["/bin"]));
    assert_eq!(json["env"]["default"], serde_json::json!(["OCCLUM=yes"]));
    assert_eq!(json["env"]["untrusted"], serde_json::json!(["EXAMPLE"]));
    let metadata = &json["metadata"];
    assert_eq!(metadata["product_id"], 0);
    assert_eq!(metadata["version_number"], 0);
    assert_eq!(metadata["debuggable"], true);
    assert_eq!(metadata["enable_kss"], false);
    for id in ["family_id", "ext_prod_id"] {
        assert_eq!(
            metadata[id],
            serde_json::json!({"high": "0x0", "low": "0x0"})
        );
    }
    let feature = &json["feature"];
    for key in ["amx", "pkru", "io_uring"] {
        assert_eq!(feature[key], 0, "{key}");
    }
    for key in ["enable_edmm", "enable_posix_shm"] {
        assert_eq!(feature[key], false, "{key}");
    }
    let mounts = json["mount"].as_array().unwrap();
    assert_eq!(mounts[0]["target"], "/");
    assert_eq!(mounts[0]["type"], "unionfs");
    let layers = mounts[0]["options"]["layers"].as_array().unwrap();
    assert_eq!(layers[0]["type"], "sefs");
    assert_eq!(layers[0]["source"], "./build/mount/__ROOT");
    assert_eq!(layers[0]["options"]["MAC"], "");
    assert_eq!(layers[1]["source"], "./run/mount/__ROOT");
    let host = mounts.iter().find(|m| m["target"] == "/host").unwrap();
    assert_eq!(host["type"], "hostfs");
    assert_eq!(host["source"], ".");
}

#[test]
fn app_yaml_includes_base_yaml_and_explains_the_command() {
    #[derive(serde::Deserialize)]
    struct Starter {
        includes: Vec<String>,
    }
    let fx = Fixture::new();
    let opts = fx.options("inst");
    create_instance(&opts).unwrap();
    let text = read(opts.dir.join("app.yaml"));
    assert!(text.contains("copy_bom -f app.yaml --root image"));
    let starter: Starter = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(starter.includes, ["base.yaml"]);
}

#[test]
fn a_trailing_slash_names_the_same_instance() {
    let fx = Fixture::new();
    let opts = fx.options("inst/");
    create_instance(&opts).unwrap();
    assert_eq!(names(&fx.work()), ["inst"]);
    assert!(fx.work().join("inst/image/bin").is_dir());
    let again = create_instance(&fx.options("inst")).unwrap_err();
    assert_eq!(again.status, Status::Usage);
}

/// `copy_bom new` through the binary writes the mounts of Occlum's own
/// template (SPEC A§6), exactly: the `/` unionfs of the two sefs layers and the
/// `/host` hostfs, and nothing else (no `/proc`, no `/dev`: Occlum mounts those
/// itself).
#[test]
fn the_binary_writes_exactly_the_mounts_of_occlums_template() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_copy_bom"))
        .args(["new", "inst", "--occlum-dir"])
        .arg(tmp.path().join("no-occlum"))
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value =
        serde_json::from_str(&read(tmp.path().join("inst/Occlum.json"))).unwrap();
    let expected = serde_json::json!([
        {
            "target": "/",
            "type": "unionfs",
            "options": {
                "layers": [
                    {
                        "target": "/",
                        "type": "sefs",
                        "source": "./build/mount/__ROOT",
                        "options": {"MAC": ""}
                    },
                    {
                        "target": "/",
                        "type": "sefs",
                        "source": "./run/mount/__ROOT"
                    }
                ]
            }
        },
        {"target": "/host", "type": "hostfs", "source": "."}
    ]);
    assert_eq!(json["mount"], expected);
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = vec![
        "resource_limits",
        "process",
        "entry_points",
        "env",
        "metadata",
        "feature",
        "mount",
    ];
    sorted.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, sorted);
}
