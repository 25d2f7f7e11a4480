//! Implied files: files glibc opens by name at run time that no ELF header names
//! (`getaddrinfo` reads /etc/nsswitch.conf and /etc/hosts, `getpwuid` /etc/passwd,
//! `iconv_open` loads modules from the gconv dir compiled into libc, `pthread_cancel` dlopens
//! libgcc_s.so.1). `check` names the ones an image lacks (`implied: ` lines, warnings; 248
//! with `--strict`) and a build with `--implicit` adds them.
//!
//! The truth is the program run in a chroot of the image (as root: those tests are ignored
//! otherwise, CI runs them): each fixture, built with gcc here, fails in a plain image though
//! the loader finds everything it names, and runs and answers in an `--implicit` image. What
//! `check` and the build say must be what the runs show.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::check_support::{Image, cc, loader_failure};
use crate::common::{Ws, copy_bom};

/// A C program that works only with an implied file, and what copy_bom must say about it.
struct Fixture {
    /// The program's name; it is copied to /bin/NAME.
    name: &'static str,
    src: &'static str,
    /// The glibc function that implies the file.
    function: &'static str,
    /// What `check` names as missing from the plain image.
    missing: &'static str,
    /// An image path the `--implicit` build adds for it (with a manifest record).
    added: &'static str,
    /// The program's whole output when it works.
    answer: &'static str,
}

const GETADDRINFO: Fixture = Fixture {
    name: "resolve",
    src: r#"#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(void) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    int rc = getaddrinfo("localhost", NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        return 1;
    }
    char buf[INET_ADDRSTRLEN];
    const struct sockaddr_in *in = (const struct sockaddr_in *)res->ai_addr;
    if (!inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) {
        perror("inet_ntop");
        return 1;
    }
    printf("%s\n", buf);
    freeaddrinfo(res);
    return 0;
}
"#,
    function: "getaddrinfo",
    missing: "/etc/hosts",
    added: "/etc/hosts",
    answer: "127.0.0.1\n",
};

const GETPWUID: Fixture = Fixture {
    name: "whoisroot",
    src: r#"#include <pwd.h>
#include <stdio.h>

int main(void) {
    struct passwd *pw = getpwuid(0);
    if (!pw) {
        fprintf(stderr, "getpwuid(0): no entry\n");
        return 1;
    }
    printf("%s\n", pw->pw_name);
    return 0;
}
"#,
    function: "getpwuid",
    missing: "/etc/passwd",
    added: "/etc/passwd",
    answer: "root\n",
};

const ICONV_OPEN: Fixture = Fixture {
    name: "euro",
    src: r#"#include <iconv.h>
#include <stdio.h>

int main(void) {
    iconv_t cd = iconv_open("ISO-8859-15", "UTF-8");
    if (cd == (iconv_t)-1) {
        perror("iconv_open");
        return 1;
    }
    char in[] = "\xe2\x82\xac";
    char out[8] = {0};
    char *ip = in, *op = out;
    size_t il = 3, ol = sizeof out;
    if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 || op - out != 1) {
        perror("iconv");
        return 1;
    }
    printf("%02x\n", (unsigned char)out[0]);
    iconv_close(cd);
    return 0;
}
"#,
    function: "iconv_open",
    missing: "gconv",
    // Debian 12's gconv dir (compiled into its libc) and the module for the conversion.
    added: "/usr/lib/x86_64-linux-gnu/gconv/ISO8859-15.so",
    answer: "a4\n",
};

const PTHREAD_CANCEL: Fixture = Fixture {
    name: "cancel",
    src: r#"#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *forever(void *arg) {
    (void)arg;
    for (;;)
        pause(); /* a cancellation point */
    return NULL;
}

int main(void) {
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, forever, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    if (pthread_cancel(t) != 0 || pthread_join(t, &ret) != 0) {
        fprintf(stderr, "pthread_cancel or pthread_join failed\n");
        return 1;
    }
    if (ret != PTHREAD_CANCELED) {
        fprintf(stderr, "the thread was not cancelled\n");
        return 1;
    }
    printf("cancelled\n");
    return 0;
}
"#,
    function: "pthread_cancel",
    missing: "libgcc_s.so.1",
    // Beside the image's libc (where autodep puts it on Debian).
    added: "/lib/x86_64-linux-gnu/libgcc_s.so.1",
    answer: "cancelled\n",
};

const FIXTURES: [&Fixture; 4] = [&GETADDRINFO, &GETPWUID, &ICONV_OPEN, &PTHREAD_CANCEL];

/// A bom putting `prog` in /bin (autodep brings libc and the loader).
fn bom(prog: &Path) -> String {
    format!(
        "targets:\n  - target: /bin\n    copy:\n      - files: [{}]\n",
        prog.display()
    )
}

/// A workspace with the fixture compiled into `build/` and `app.yaml` copying it to /bin;
/// returns it and the program's host path.
fn workspace(f: &Fixture) -> (Ws, PathBuf) {
    let ws = Ws::new();
    let prog = ws.path().join("build").join(f.name);
    cc("gcc", f.src, &prog, &["-pthread"]);
    ws.write("app.yaml", &bom(&prog));
    (ws, prog)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `copy_bom check --root ROOT` with `extra` arguments.
fn check(root: &Path, extra: &[&str]) -> Output {
    copy_bom()
        .args(["check", "--root"])
        .arg(root)
        .args(extra)
        .output()
        .unwrap()
}

/// The `implied: ` lines of `check`'s output.
fn implied_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("implied: "))
        .collect()
}

/// The manifest's records, as (image path with its leading `/`, why).
fn manifest(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let p = r["path"].as_str().unwrap().trim_start_matches('/');
            (format!("/{p}"), r["why"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The plain image of the fixture (no `--implicit`): the loader finds everything, yet the
/// program fails (when `chroot`); `check` passes with an `implied:` line naming what is
/// missing, the program and the function, and fails with `--strict`. Returns the workspace
/// (which holds the program) and the program's host path.
fn plain_image_lacks_it(f: &Fixture, chroot: bool) -> (Ws, PathBuf) {
    let (ws, prog) = workspace(f);
    ws.run("app.yaml", &[]).success();
    let img = Image::new(ws.root());
    let program = format!("/bin/{}", f.name);
    assert!(img.exists(&program));
    if chroot {
        let out = img.run(&program, &[], false);
        assert!(
            !loader_failure(&out),
            "{program}: the loader should start it: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(
            !(out.status.success() && stdout(&out) == f.answer),
            "{program} works without its implied files: {:?} {} {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
    }

    let out = check(&img.root, &[]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "implied files are warnings: {text}{}",
        stderr(&out)
    );
    let lines = implied_lines(&text);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(f.missing) && l.contains(&program) && l.contains(f.function)),
        "no implied line names {} for {program} ({}): {text}",
        f.missing,
        f.function
    );

    let out = check(&img.root, &["--strict"]);
    assert_eq!(
        out.status.code(),
        Some(248),
        "check --strict: {}{}",
        stdout(&out),
        stderr(&out)
    );
    (ws, prog)
}

/// The fixture built into a fresh root with `--implicit --manifest`: the program runs and
/// answers (when `chroot`), `check` names nothing implied, the manifest says why the added
/// file is there, /etc/passwd (if any) holds root and nobody only, and there is no
/// /etc/shadow. Returns the workspace of the image.
fn implicit_image_has_it(f: &Fixture, prog: &Path, chroot: bool) -> Ws {
    let ws = Ws::new();
    ws.write("app.yaml", &bom(prog));
    let manifest_file = ws.path().join("manifest.json");
    ws.run(
        "app.yaml",
        &["--implicit", "--manifest", manifest_file.to_str().unwrap()],
    )
    .success();
    let img = Image::new(ws.root());
    let program = format!("/bin/{}", f.name);
    if chroot {
        let out = img.run(&program, &[], false);
        assert!(
            out.status.success(),
            "{program} in the --implicit image: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert_eq!(stdout(&out), f.answer, "{program}");
    }

    for strict in [&[][..], &["--strict"][..]] {
        let out = check(&img.root, strict);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "check {strict:?}: {text}{}",
            stderr(&out)
        );
        assert_eq!(implied_lines(&text), Vec::<&str>::new(), "{text}");
    }

    let records = manifest(&manifest_file);
    let record = records.iter().find(|(p, _)| p == f.added);
    let Some((_, why)) = record else {
        panic!("no manifest record for {}: {records:?}", f.added);
    };
    assert!(why.starts_with("implied"), "{}: {why}", f.added);
    assert!(
        why.contains(&program) && why.contains(f.function),
        "{}: {why}",
        f.added
    );
    assert!(img.exists(f.added), "{}", f.added);

    if img.host("/etc/passwd").exists() {
        let passwd = ws.image_file("/etc/passwd");
        let lines: Vec<&str> = passwd.lines().collect();
        assert_eq!(lines.len(), 2, "{passwd}");
        assert!(lines.iter().any(|l| l.starts_with("root:")), "{passwd}");
        assert!(lines.iter().any(|l| l.starts_with("nobody:")), "{passwd}");
        // The groups are those of these two users (nobody's is named nogroup on Debian).
        if img.host("/etc/group").exists() {
            let group = ws.image_file("/etc/group");
            let gid = |l: &str, field: usize| l.split(':').nth(field).unwrap_or("").to_string();
            let mut want: Vec<String> = lines.iter().map(|l| gid(l, 3)).collect();
            let mut have: Vec<String> = group.lines().map(|l| gid(l, 2)).collect();
            want.sort();
            have.sort();
            assert_eq!(have, want, "{group}");
            assert!(group.lines().any(|l| l.starts_with("root:")), "{group}");
        }
    }
    assert!(
        std::fs::symlink_metadata(img.host("/etc/shadow")).is_err(),
        "/etc/shadow is never added"
    );
    ws
}

/// The whole case: plain image, then `--implicit` image.
fn implied_case(f: &Fixture, chroot: bool) {
    let (_plain, prog) = plain_image_lacks_it(f, chroot);
    implicit_image_has_it(f, &prog, chroot);
}

#[test]
#[ignore = "needs root: chroot"]
fn getaddrinfo_needs_etc_hosts_and_an_implicit_build_adds_it() {
    implied_case(&GETADDRINFO, true);
}

#[test]
#[ignore = "needs root: chroot"]
fn getpwuid_needs_etc_passwd_and_an_implicit_build_adds_root_and_nobody() {
    implied_case(&GETPWUID, true);
}

#[test]
#[ignore = "needs root: chroot"]
fn iconv_open_needs_the_gconv_dir_and_an_implicit_build_copies_it() {
    implied_case(&ICONV_OPEN, true);
}

#[test]
#[ignore = "needs root: chroot"]
fn pthread_cancel_needs_libgcc_s_and_an_implicit_build_puts_it_beside_libc() {
    implied_case(&PTHREAD_CANCEL, true);
}

/// The same cases without the chroot runs, for runs without root.
#[test]
fn check_and_implicit_builds_agree_for_every_fixture_without_running_them() {
    for f in FIXTURES {
        implied_case(f, false);
    }
}

#[test]
fn dry_run_with_implicit_lists_the_implied_files_and_writes_nothing() {
    let (ws, _prog) = workspace(&GETADDRINFO);
    let out = ws
        .run("app.yaml", &["--dry-run", "--implicit"])
        .success()
        .get_output()
        .stdout
        .clone();
    let plan = String::from_utf8(out).unwrap();
    assert!(
        plan.lines()
            .any(|l| l.contains("implied") && l.contains("/etc/hosts")),
        "{plan}"
    );
    assert!(!ws.root().exists());
}

/// Python's own getaddrinfo and getpwuid (in `_socket` and `pwd`): the python example image
/// (python3 and its standard library) fails without the implied files and works with them.
#[test]
#[ignore = "needs root: chroot"]
fn python_resolves_localhost_and_names_root_after_an_implicit_build() {
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "install python3: no /usr/bin/python3"
    );
    let bom = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python.yaml");
    let script = "import socket, pwd\n\
                  for a in socket.getaddrinfo('localhost', 80): print(a[4][0])\n\
                  print(pwd.getpwuid(0).pw_name)\n";
    let t = tempfile::tempdir().unwrap();
    let image = |name: &str, extra: &[&str]| {
        let root = t.path().join(name);
        let out = copy_bom()
            .arg("-f")
            .arg(&bom)
            .arg("--root")
            .arg(&root)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        Image::new(root)
    };

    let plain = image("plain", &[]);
    let out = plain.run("/usr/bin/python3", &["-c", script], true);
    assert!(
        !out.status.success(),
        "python ran without /etc/hosts and /etc/passwd: {}",
        stdout(&out)
    );
    let text = stdout(&check(&plain.root, &[]));
    let lines = implied_lines(&text);
    // Python imports many functions of each kind: any of them may be the one named.
    for missing in ["/etc/hosts", "/etc/passwd"] {
        assert!(
            lines.iter().any(|l| l.contains(missing)),
            "{missing}: {text}"
        );
    }

    let img = image("implicit", &["--implicit"]);
    let out = img.run("/usr/bin/python3", &["-c", script], true);
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"127.0.0.1"), "{text}");
    assert_eq!(lines.last(), Some(&"root"), "{text}");
    let text = stdout(&check(&img.root, &[]));
    assert!(
        !implied_lines(&text)
            .iter()
            .any(|l| l.contains("/etc/hosts") || l.contains("/etc/passwd")),
        "{text}"
    );
}

/// musl has no NSS, no gconv and no unwinding through libgcc_s: it reads `/etc/hosts` and
/// `/etc/passwd` itself, and those are all that is implied. The musl loader and musl's libc
/// decide, in a chroot.
#[test]
#[ignore = "needs root: chroot"]
fn musl_reads_hosts_and_passwd_itself_and_needs_no_nss() {
    let ws = Ws::new();
    let prog = ws.path().join("build/musl-lookup");
    let src = r#"#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
int main(void) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    if (getaddrinfo("localhost", NULL, &hints, &res) != 0) return 1;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, buf, sizeof buf);
    struct passwd *pw = getpwuid(0);
    if (!pw) return 2;
    printf("%s %s\n", buf, pw->pw_name);
    return 0;
}
"#;
    cc("musl-gcc", src, &prog, &[]);
    ws.write("app.yaml", &bom(&prog));
    ws.run("app.yaml", &[]).success();
    let img = Image::new(ws.root());
    let out = img.run("/bin/musl-lookup", &[], false);
    assert!(!out.status.success(), "works without /etc/hosts: {out:?}");
    let text = stdout(&check(&img.root, &[]));
    let lines = implied_lines(&text);
    for want in ["/etc/hosts is missing", "/etc/passwd is missing"] {
        assert!(lines.iter().any(|l| l.contains(want)), "{want}: {text}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("nsswitch") || l.contains("libnss")),
        "musl has no NSS: {text}"
    );

    let ws = Ws::new();
    ws.write("app.yaml", &bom(&prog));
    ws.run("app.yaml", &["--implicit"]).success();
    let img = Image::new(ws.root());
    assert!(!img.exists("/etc/nsswitch.conf"));
    let out = img.run("/bin/musl-lookup", &[], false);
    assert_eq!(stdout(&out), "127.0.0.1 root\n", "{out:?}");
    assert!(implied_lines(&stdout(&check(&img.root, &[]))).is_empty());
}

/// `deps --tree` lists, after the libraries, what the closure's C library opens for the
/// functions the program imports; the plain `ldd`-style output does not.
#[test]
fn deps_tree_lists_the_implied_files_with_their_reason() {
    let (_ws, prog) = workspace(&GETADDRINFO);
    let out = copy_bom()
        .args(["deps", "--tree"])
        .arg(&prog)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let line = format!(
        "implied /etc/hosts [name and address lookup: {} imports getaddrinfo]",
        prog.display()
    );
    assert!(text.contains(&line), "no {line:?} in:\n{text}");
    let out = copy_bom().arg("deps").arg(&prog).output().unwrap();
    assert!(!stdout(&out).contains("implied"), "{out:?}");
}
