//! `check` on an Occlum instance: its `Occlum.json` is judged (entry points the image must hold,
//! sizes `occlum build` must parse) and used (`env.default`'s `LD_LIBRARY_PATH` for the loader,
//! `TZ` for the zone file). The truth for the loader part is the program run in a chroot with
//! the instance's environment.

use std::path::Path;
use std::process::{Command, Output};

use crate::check_support::{Image, cc, shared};
use crate::common::copy_bom;

fn check_instance(inst: &Path) -> Output {
    copy_bom()
        .args(["check", "--instance"])
        .arg(inst)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `copy_bom new` an instance in `dir`, then edit its Occlum.json with `edit`.
fn instance(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let inst = dir.join("inst");
    let out = copy_bom().arg("new").arg(&inst).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let json = inst.join("Occlum.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&json, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    inst
}

fn push_env(v: &mut serde_json::Value, var: &str) {
    v["env"]["default"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::Value::from(var));
}

#[test]
fn entry_points_and_sizes_are_judged() {
    let t = tempfile::tempdir().unwrap();
    let inst = instance(t.path(), |_| {});
    let out = check_instance(&inst);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("0 Occlum.json problems"), "{out:?}");
    let inst = instance(&t.path().join("bad"), |v| {
        v["entry_points"] = serde_json::json!(["/bin", "/app"]);
        v["resource_limits"]["user_space_size"] = "300 MiB".into();
    });
    let out = check_instance(&inst);
    assert_eq!(out.status.code(), Some(248), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("entry_points[1]: /app is not a directory in the image"),
        "{text}"
    );
    assert!(
        text.contains("resource_limits.user_space_size: \"300 MiB\" is not a size"),
        "{text}"
    );
    // The same instance judged through its image: Occlum.json is found beside it.
    let out = copy_bom()
        .args(["check", "--root"])
        .arg(inst.join("image"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(248), "{out:?}");
}

#[test]
#[ignore = "needs root: chroot"]
fn ld_library_path_of_the_instance_is_the_loaders() {
    let t = tempfile::tempdir().unwrap();
    let inst = instance(t.path(), |v| push_env(v, "LD_LIBRARY_PATH=/opt/app/lib"));
    let img = Image::new(inst.join("image"));
    let build = t.path().join("build");
    shared(
        "gcc",
        "int f(void) { return 7; }\n",
        &build.join("libf.so.1"),
        &[],
    );
    let prog = build.join("prog");
    let lib = format!("-L{}", build.display());
    cc(
        "gcc",
        "int f(void); int main(void) { return f(); }\n",
        &prog,
        &[&lib, "-l:libf.so.1"],
    );
    img.add_glibc();
    img.copy(&prog, "/bin/prog");
    img.copy(&build.join("libf.so.1"), "/opt/app/lib/libf.so.1");
    // The truth: in a chroot, the program finds libf only with the instance's environment.
    let bare = img.run("/bin/prog", &[], false);
    assert_ne!(bare.status.code(), Some(7), "{bare:?}");
    let with_env = Command::new("chroot")
        .arg(&img.root)
        .arg("/bin/prog")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LD_LIBRARY_PATH", "/opt/app/lib")
        .status()
        .unwrap();
    assert_eq!(with_env.code(), Some(7));
    // check agrees: complete for the instance, libf missing for the bare image.
    let out = check_instance(&inst);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let bare_dir = t.path().join("bare");
    std::fs::create_dir_all(&bare_dir).unwrap();
    let out = Command::new("cp")
        .arg("-a")
        .arg(&img.root)
        .arg(bare_dir.join("root"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = copy_bom()
        .args(["check", "--root"])
        .arg(bare_dir.join("root"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(248), "{out:?}");
    assert!(stdout(&out).contains("missing libf.so.1"), "{out:?}");
}

#[test]
fn the_instance_tz_picks_the_zone_file() {
    let t = tempfile::tempdir().unwrap();
    let inst = instance(t.path(), |v| push_env(v, "TZ=Asia/Shanghai"));
    let prog = t.path().join("clock");
    cc(
        "gcc",
        "#include <time.h>\nint main(void) { time_t t = 0; return localtime(&t)->tm_hour; }\n",
        &prog,
        &[],
    );
    let bom = t.path().join("clock.yaml");
    std::fs::write(
        &bom,
        format!(
            "targets:\n  - target: /bin\n    copy:\n      - files: [{}]\n",
            prog.display()
        ),
    )
    .unwrap();
    let out = copy_bom()
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(inst.join("image"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = check_instance(&inst);
    assert!(
        stdout(&out).contains("implied: /usr/share/zoneinfo/Asia/Shanghai is missing"),
        "{out:?}"
    );
    let out = copy_bom()
        .arg("-f")
        .arg(&bom)
        .arg("--root")
        .arg(inst.join("image"))
        .arg("--implicit")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let zone = inst.join("image/usr/share/zoneinfo/Asia/Shanghai");
    assert_eq!(
        std::fs::read(&zone).unwrap(),
        std::fs::read("/usr/share/zoneinfo/Asia/Shanghai").unwrap()
    );
    assert!(!stdout(&check_instance(&inst)).contains("implied:"));
}
