//! The differential test of `check`: generated images (deterministic seeds)
//! built with plain `cp`/`ln` from gcc and musl-gcc fixtures and real host
//! programs, with the variations the loader rules hinge on. For every
//! program of every image, `check`'s verdict (complete or not) must equal
//! whether `chroot IMAGE PROGRAM` runs: the truth is the real loader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::check_support::{Image, cc, ldd, loader_failure, shared};
use copy_bom::check::{CheckReport, KnownHeaders, Role, check_image};
use copy_bom::deps::LoaderConfig;

/// How many images are generated.
const IMAGES: u64 = 48;

/// A small deterministic generator (xorshift64*), so every run builds the
/// same images.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The fixtures every image is assembled from, compiled once.
struct Fixtures {
    dir: PathBuf,
    /// Host programs (path, arguments) with the libraries ldd lists.
    host: Vec<(PathBuf, Vec<&'static str>, Vec<PathBuf>)>,
}

impl Fixtures {
    fn f(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn build_fixtures(dir: &Path) -> Fixtures {
    let d = dir.display().to_string();
    let l = format!("-L{d}");
    let link = format!("-Wl,-rpath-link,{d}");
    let na = "-Wl,--no-as-needed";
    let p = |n: &str| dir.join(n);
    // S1: exe1 -> liba1 -> libb1.
    shared("gcc", "int b1(void){return 2;}", &p("libb1.so"), &[]);
    shared(
        "gcc",
        "int b1(void); int a1(void){return b1()+1;}",
        &p("liba1.so"),
        &[na, &l, "-lb1"],
    );
    cc(
        "gcc",
        "int a1(void); int main(void){return a1()==3?0:1;}",
        &p("exe1"),
        &[na, &l, "-la1", &link],
    );
    // S2: exe2r (RPATH /opt/s2) and exe2u (RUNPATH /opt/s2) -> liba2 -> libb2.
    shared("gcc", "int b2(void){return 2;}", &p("libb2.so"), &[]);
    shared(
        "gcc",
        "int b2(void); int a2(void){return b2()+1;}",
        &p("liba2.so"),
        &[na, &l, "-lb2"],
    );
    let main2 = "int a2(void); int main(void){return a2()==3?0:1;}";
    cc(
        "gcc",
        main2,
        &p("exe2r"),
        &[
            na,
            &l,
            "-la2",
            &link,
            "-Wl,-rpath,/opt/s2",
            "-Wl,--disable-new-dtags",
        ],
    );
    cc(
        "gcc",
        main2,
        &p("exe2u"),
        &[
            na,
            &l,
            "-la2",
            &link,
            "-Wl,-rpath,/opt/s2",
            "-Wl,--enable-new-dtags",
        ],
    );
    // S3: the same with $ORIGIN/../lib, and a liba3 with its own RUNPATH $ORIGIN.
    shared("gcc", "int b3(void){return 2;}", &p("libb3.so"), &[]);
    let a3 = "int b3(void); int a3(void){return b3()+1;}";
    shared("gcc", a3, &p("liba3.so"), &[na, &l, "-lb3"]);
    std::fs::create_dir_all(p("origin")).unwrap();
    shared(
        "gcc",
        a3,
        &p("origin/liba3.so"),
        &[
            na,
            &l,
            "-lb3",
            "-Wl,-rpath,$ORIGIN",
            "-Wl,--enable-new-dtags",
        ],
    );
    let main3 = "int a3(void); int main(void){return a3()==3?0:1;}";
    cc(
        "gcc",
        main3,
        &p("exe3r"),
        &[
            na,
            &l,
            "-la3",
            &link,
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--disable-new-dtags",
        ],
    );
    cc(
        "gcc",
        main3,
        &p("exe3u"),
        &[
            na,
            &l,
            "-la3",
            &link,
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--enable-new-dtags",
        ],
    );
    // S4: a program that loads libcore4 and then dlopens a plugin needing it.
    shared("gcc", "int core4(void){return 40;}", &p("libcore4.so"), &[]);
    shared(
        "gcc",
        "int extra4(void){return 1;}",
        &p("libextra4.so"),
        &[],
    );
    shared(
        "gcc",
        "int core4(void); int extra4(void); int plug4(void){return core4()+extra4()+1;}",
        &p("plug4.so"),
        &[na, &l, "-lcore4", "-lextra4"],
    );
    cc(
        "gcc",
        r#"#include <dlfcn.h>
#include <stdio.h>
int core4(void);
int main(void){
  void *h = dlopen("/opt/app4/lib/plugins/plug4.so", RTLD_NOW);
  if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 3; }
  int (*f)(void) = (int (*)(void))dlsym(h, "plug4");
  return f && f() == 42 && core4() == 40 ? 0 : 1;
}"#,
        &p("host4"),
        &[
            na,
            &l,
            "-lcore4",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--enable-new-dtags",
        ],
    );
    // S5: static-pie.
    cc(
        "gcc",
        "int main(void){return 0;}",
        &p("sp5"),
        &["-static-pie"],
    );
    // S6: musl.
    std::fs::create_dir_all(p("musl")).unwrap();
    shared(
        "musl-gcc",
        "int mu6(void){return 6;}",
        &p("musl/libmu6.so"),
        &[],
    );
    cc(
        "musl-gcc",
        "int mu6(void); int main(void){return mu6()==6?0:1;}",
        &p("m6"),
        &[&format!("-L{d}/musl"), "-lmu6"],
    );
    // S7: a program with its own interpreter path.
    cc(
        "gcc",
        "int main(void){return 0;}",
        &p("exe7"),
        &["-Wl,--dynamic-linker=/lib/ld-s7.so.2"],
    );

    // S9: exe9 (RPATH /opt/s9) -> libr9, a library with PT_INTERP (like
    // libc.so.6) -> libq9, found only through the inherited RPATH.
    shared("gcc", "int q9(void){return 2;}", &p("libq9.so"), &[]);
    shared(
        "gcc",
        "const char interp9[] __attribute__((section(\".interp\"))) = \"/lib64/ld-linux-x86-64.so.2\";\n\
         int q9(void); int r9(void){return q9()+1;}",
        &p("libr9.so"),
        &[na, &l, "-lq9"],
    );
    cc(
        "gcc",
        "int r9(void); int main(void){return r9()==3?0:1;}",
        &p("exe9"),
        &[
            na,
            &l,
            "-lr9",
            &link,
            "-Wl,-rpath,/opt/s9",
            "-Wl,--disable-new-dtags",
        ],
    );

    let mut host = Vec::new();
    let candidates: [(&str, &[&str]); 5] = [
        ("/bin/true", &[]),
        ("/bin/ls", &[]),
        ("/usr/bin/env", &[]),
        ("/bin/date", &[]),
        ("/usr/lib/systemd/systemd", &["--version"]),
    ];
    for (prog, args) in candidates {
        let prog = Path::new(prog);
        if prog.exists() {
            let libs = ldd(prog).into_iter().map(|(_, p)| p).collect();
            host.push((prog.to_path_buf(), args.to_vec(), libs));
        }
    }
    Fixtures {
        dir: dir.to_path_buf(),
        host,
    }
}

/// One program of a generated image and how to run it.
struct Program {
    path: String,
    args: Vec<&'static str>,
    /// Needs /proc (its own `$ORIGIN`).
    proc: bool,
    /// Objects it dlopens: its verdict includes theirs.
    plugins: Vec<String>,
    /// Scenario and variant, for messages and coverage.
    label: String,
}

const GLIBC_LIBS: [&str; 2] = ["libc.so.6", "ld-linux-x86-64.so.2"];

fn is_glibc_core(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| GLIBC_LIBS.iter().any(|g| n == *g))
}

/// Generates image number `seed` under `root`; returns its programs.
fn generate(fx: &Fixtures, seed: u64, root: &Path) -> (Image, Vec<Program>) {
    let img = Image::new(root.to_path_buf());
    let mut rng = Rng::new(seed + 1);
    let mut progs = Vec::new();
    let cache = rng.chance(50);
    let tag = if cache { "cache" } else { "no-cache" };
    // Every scenario at least once in the first images, then at random.
    let pick = |rng: &mut Rng, k: u64| seed % 8 == k || rng.chance(45);
    let mut glibc = false;

    if pick(&mut rng, 0) {
        glibc = true;
        let v = rng.below(6);
        img.copy(&fx.f("exe1"), "/bin/exe1");
        let (a_dir, b) = match v {
            0 => ("/usr/lib", Some("/usr/lib/libb1.so")),
            1 => ("/opt/conf", Some("/opt/conf/libb1.so")),
            2 => ("/usr/lib", None),
            3 => {
                img.symlink("libb1.so.1.0", "/usr/lib/libb1.so");
                ("/usr/lib", None)
            }
            4 => {
                img.copy(&fx.f("libb1.so"), "/usr/lib/libb1.so.1.0");
                img.symlink("libb1.so.1.0", "/usr/lib/libb1.so");
                ("/usr/lib", None)
            }
            _ => {
                img.copy(&fx.f("libb1.so"), "/opt/store/libb1.so");
                img.hard_link("/opt/store/libb1.so", "/usr/lib/libb1.so");
                ("/usr/lib", None)
            }
        };
        img.copy(&fx.f("liba1.so"), &format!("{a_dir}/liba1.so"));
        if let Some(b) = b {
            img.copy(&fx.f("libb1.so"), b);
        }
        let what = [
            "system", "conf", "removed", "dangling", "symlink", "hardlink",
        ][v as usize];
        progs.push(prog("/bin/exe1", &[], false, &format!("S1 {what} {tag}")));
    }
    if pick(&mut rng, 1) {
        glibc = true;
        let v = rng.below(3);
        img.copy(&fx.f("exe2r"), "/bin/exe2r");
        img.copy(&fx.f("exe2u"), "/bin/exe2u");
        if v != 2 {
            img.copy(&fx.f("liba2.so"), "/opt/s2/liba2.so");
        }
        img.copy(&fx.f("libb2.so"), "/opt/s2/libb2.so");
        if v == 1 {
            img.copy(&fx.f("libb2.so"), "/usr/lib/libb2.so");
        }
        let what = ["rpath-only", "b-in-system", "a-removed"][v as usize];
        progs.push(prog("/bin/exe2r", &[], false, &format!("S2 RPATH {what}")));
        progs.push(prog(
            "/bin/exe2u",
            &[],
            false,
            &format!("S2 RUNPATH {what}"),
        ));
    }
    if pick(&mut rng, 2) {
        glibc = true;
        let v = rng.below(3);
        img.copy(&fx.f("exe3r"), "/app3/bin/exe3r");
        img.copy(&fx.f("exe3u"), "/app3/bin/exe3u");
        let a = if v == 1 {
            "origin/liba3.so"
        } else {
            "liba3.so"
        };
        img.copy(&fx.f(a), "/app3/lib/liba3.so");
        if v != 2 {
            img.copy(&fx.f("libb3.so"), "/app3/lib/libb3.so");
        }
        let what = ["plain-a", "a-runpath-origin", "b-removed"][v as usize];
        progs.push(prog(
            "/app3/bin/exe3r",
            &[],
            true,
            &format!("S3 $ORIGIN RPATH {what}"),
        ));
        progs.push(prog(
            "/app3/bin/exe3u",
            &[],
            true,
            &format!("S3 $ORIGIN RUNPATH {what}"),
        ));
    }
    if pick(&mut rng, 3) {
        glibc = true;
        let v = rng.below(3);
        img.copy(&fx.f("host4"), "/opt/app4/bin/host4");
        img.copy(&fx.f("plug4.so"), "/opt/app4/lib/plugins/plug4.so");
        if v != 1 {
            img.copy(&fx.f("libcore4.so"), "/opt/app4/lib/libcore4.so");
        }
        if v != 2 {
            img.copy(&fx.f("libextra4.so"), "/usr/lib/libextra4.so");
        }
        let what = ["ok", "core-removed", "plugin-dep-removed"][v as usize];
        let mut p = prog(
            "/opt/app4/bin/host4",
            &[],
            true,
            &format!("S4 plugin {what}"),
        );
        p.plugins.push("/opt/app4/lib/plugins/plug4.so".into());
        progs.push(p);
    }
    if pick(&mut rng, 4) {
        img.copy(&fx.f("sp5"), "/bin/sp5");
        progs.push(prog("/bin/sp5", &[], false, "S5 static-pie"));
    }
    if pick(&mut rng, 5) {
        let v = rng.below(6);
        img.copy(&fx.f("m6"), "/bin/m6");
        if v != 5 {
            img.copy(
                Path::new("/lib/ld-musl-x86_64.so.1"),
                "/lib/ld-musl-x86_64.so.1",
            );
        }
        let lib = fx.f("musl/libmu6.so");
        match v {
            0 | 5 => img.copy(&lib, "/lib/libmu6.so"),
            1 => img.copy(&lib, "/usr/local/lib/libmu6.so"),
            2 => {
                img.copy(&lib, "/opt/m6/libmu6.so");
                img.write("/etc/ld-musl-x86_64.path", "/opt/m6\n");
            }
            3 => img.copy(&lib, "/opt/m6/libmu6.so"),
            _ => {}
        }
        let what = [
            "lib",
            "usr-local",
            "path-file",
            "no-path-file",
            "removed",
            "no-ldso",
        ][v as usize];
        progs.push(prog("/bin/m6", &[], false, &format!("S6 musl {what}")));
    }
    if pick(&mut rng, 6) {
        glibc = true;
        let v = rng.below(2);
        img.copy(&fx.f("exe7"), "/bin/exe7");
        if v == 0 {
            img.copy(Path::new("/lib64/ld-linux-x86-64.so.2"), "/lib/ld-s7.so.2");
        }
        let what = ["interp", "no-interp"][v as usize];
        progs.push(prog("/bin/exe7", &[], false, &format!("S7 {what}")));
    }
    if pick(&mut rng, 7) && !fx.host.is_empty() {
        glibc = true;
        let v = rng.below(3);
        let extra: Vec<&PathBuf> = fx
            .host
            .iter()
            .flat_map(|(_, _, libs)| libs)
            .filter(|l| !is_glibc_core(l))
            .collect();
        let removed = (v == 2 && !extra.is_empty())
            .then(|| extra[rng.below(extra.len() as u64) as usize].clone());
        for (p, args, libs) in &fx.host {
            let path = p.display().to_string();
            img.copy(p, &path);
            for l in libs.iter().filter(|l| !is_glibc_core(l)) {
                if Some(l) == removed.as_ref() {
                    continue;
                }
                let dest = match v {
                    1 => format!("/opt/conf/{}", l.file_name().unwrap().to_string_lossy()),
                    _ => l.display().to_string(),
                };
                if !img.host(&dest).exists() {
                    img.copy(l, &dest);
                }
            }
            let what = match (&removed, v) {
                (Some(r), _) => format!("without {}", r.display()),
                (None, 1) => "libs-in-conf".to_string(),
                _ => "as-on-host".to_string(),
            };
            progs.push(prog(&path, args, false, &format!("S8 {path} {what} {tag}")));
        }
    }
    if seed % 8 == 2 || rng.chance(30) {
        glibc = true;
        let v = rng.below(2);
        img.copy(&fx.f("exe9"), "/bin/exe9");
        img.copy(&fx.f("libr9.so"), "/opt/s9/libr9.so");
        if v == 0 {
            img.copy(&fx.f("libq9.so"), "/opt/s9/libq9.so");
        }
        let what = ["ok", "q-removed"][v as usize];
        progs.push(prog(
            "/bin/exe9",
            &[],
            false,
            &format!("S9 runnable library {what}"),
        ));
    }
    if glibc {
        // Sometimes the image's glibc is missing altogether.
        if seed % 16 != 15 {
            img.add_glibc();
        } else {
            for p in &mut progs {
                p.label.push_str(" no-glibc");
            }
        }
        img.write("/etc/ld.so.conf", "/opt/conf\n");
        if cache {
            img.ldconfig();
        }
    }
    (img, progs)
}

fn prog(path: &str, args: &[&'static str], proc: bool, label: &str) -> Program {
    Program {
        path: path.to_string(),
        args: args.to_vec(),
        proc,
        plugins: Vec::new(),
        label: label.to_string(),
    }
}

/// Objects judged alone, and how many of them load.
struct Alone(usize, usize);

impl std::ops::AddAssign for Alone {
    fn add_assign(&mut self, o: Alone) {
        self.0 += o.0;
        self.1 += o.1;
    }
}

/// Each object no program loads, judged alone, against the real loader
/// loading it as the root object (`INTERP --list OBJECT` in a chroot: its
/// own RPATH/RUNPATH, `$ORIGIN` its directory, the image's cache). Objects
/// whose verdict rests on a library their tree's program loads first are
/// left out: no loader run can show that alone; so are objects whose
/// loader is not in the image.
fn compare_alone(
    img: &Image,
    report: &CheckReport,
    text: &str,
    seed: u64,
    mismatches: &mut Vec<String>,
) -> Alone {
    let mut n = Alone(0, 0);
    let first: Vec<&PathBuf> = report
        .loaded_first
        .iter()
        .flat_map(|f| &f.needed_by)
        .collect();
    for o in report.objects.iter().filter(|o| o.role == Role::Alone) {
        if first.contains(&&o.path) {
            continue;
        }
        let interp = o
            .interp
            .clone()
            .unwrap_or_else(|| "/lib64/ld-linux-x86-64.so.2".into());
        // Without that loader in the image there is nothing to run.
        if !img.exists(&interp) {
            continue;
        }
        let path = o.path.display().to_string();
        let out = img.run(&interp, &["--list", &path], false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let loads = out.status.success() && !stdout.contains("not found");
        n.0 += 1;
        if loads {
            n.1 += 1;
        }
        if o.complete != loads {
            mismatches.push(format!(
                "image {seed} {path} alone with {interp}: check says {}, the loader {}: {}{}\n{text}",
                o.complete,
                loads,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    n
}

/// `check`'s verdict for one program: its own, and its plugins'.
fn verdict(report: &CheckReport, p: &Program) -> bool {
    let of = |path: &str| {
        report
            .object(Path::new(path))
            .unwrap_or_else(|| panic!("{path} not judged"))
            .complete
    };
    of(&p.path) && p.plugins.iter().all(|pl| of(pl))
}

#[test]
#[ignore = "needs root"]
fn check_agrees_with_chroot_runs_of_generated_images() {
    let t = tempfile::tempdir().unwrap();
    let fx = build_fixtures(&t.path().join("fixtures"));
    let mut mismatches = Vec::new();
    let mut outcomes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut programs, mut runs_ok) = (0, 0);
    let mut alone = Alone(0, 0);
    for seed in 0..IMAGES {
        let root = t.path().join(format!("image{seed}"));
        let (img, progs) = generate(&fx, seed, &root);
        let report = check_image(&root, &LoaderConfig::default(), &KnownHeaders::new()).unwrap();
        let text = copy_bom::report::check_lines(&report);
        // The CLI's status agrees with the report: 0 or 248.
        let cli = Command::new(env!("CARGO_BIN_EXE_copy_bom"))
            .args(["check", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        let expected_status = if report.is_complete() { 0 } else { 248 };
        assert_eq!(
            cli.status.code(),
            Some(expected_status),
            "image {seed}\n{text}"
        );
        let mut failed: Vec<&str> = Vec::new();
        for p in &progs {
            programs += 1;
            let out = img.run(&p.path, &p.args, p.proc);
            let runs = out.status.success();
            if !runs {
                failed.push(&p.path);
            }
            if !runs {
                let plugin_failed = !p.plugins.is_empty() && out.status.code() == Some(3);
                assert!(
                    loader_failure(&out) || plugin_failed,
                    "image {seed} {}: failed for another reason than loading: {:?} {}",
                    p.label,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            } else {
                runs_ok += 1;
            }
            let e = outcomes.entry(p.label.clone()).or_default();
            if runs {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if verdict(&report, p) != runs {
                mismatches.push(format!(
                    "image {seed} {} ({}): check says {}, chroot run {} ({:?}: {})\n{text}",
                    p.label,
                    p.path,
                    if verdict(&report, p) {
                        "complete"
                    } else {
                        "incomplete"
                    },
                    if runs { "runs" } else { "fails" },
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        // Every problem reported outside objects judged alone is a program
        // of the image that fails: nothing else (a library with PT_INTERP
        // that a program loads, say) makes the image incomplete.
        let scopes = report
            .missing
            .iter()
            .filter(|m| !m.alone)
            .flat_map(|m| &m.scopes)
            .chain(report.missing_interpreters.iter().map(|(p, _)| p));
        for s in scopes {
            if !failed.iter().any(|f| Path::new(f) == s) {
                mismatches.push(format!(
                    "image {seed}: a problem is reported for {}, which is not a failing program\n{text}",
                    s.display()
                ));
            }
        }
        alone += compare_alone(&img, &report, &text, seed, &mut mismatches);
    }
    eprintln!(
        "compared {programs} programs in {IMAGES} images: {runs_ok} run, {} fail; \
         {} objects no program loads, {} of them loadable",
        programs - runs_ok,
        alone.0,
        alone.1
    );
    for (label, (ok, fail)) in &outcomes {
        eprintln!("  {label}: {ok} run, {fail} fail");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The cases the rules hinge on were generated and went the loader's way.
    let ran = |prefix: &str| {
        outcomes
            .iter()
            .filter(|(l, _)| l.starts_with(prefix) && !l.ends_with("no-glibc"))
            .fold((0, 0), |acc, (_, (ok, fail))| (acc.0 + ok, acc.1 + fail))
    };
    for (case, runs) in [
        ("S1 conf no-cache", false),
        ("S1 conf cache", true),
        ("S1 dangling", false),
        ("S1 hardlink", true),
        ("S2 RPATH rpath-only", true),
        ("S2 RUNPATH rpath-only", false),
        ("S3 $ORIGIN RUNPATH plain-a", false),
        ("S3 $ORIGIN RUNPATH a-runpath-origin", true),
        ("S4 plugin ok", true),
        ("S4 plugin plugin-dep-removed", false),
        ("S5 static-pie", true),
        ("S6 musl path-file", true),
        ("S6 musl no-ldso", false),
        ("S7 no-interp", false),
        ("S9 runnable library ok", true),
        ("S9 runnable library q-removed", false),
    ] {
        let (ok, fail) = ran(case);
        assert!(ok + fail > 0, "{case} was never generated");
        assert_eq!(
            (ok > 0, fail > 0),
            (runs, !runs),
            "{case}: {ok} run, {fail} fail"
        );
    }
}
