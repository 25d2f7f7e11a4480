//! Malformed ELF files through the whole tool (issue 5): thousands of
//! truncated and mutated copies of real binaries go through `deps`, a build
//! that copies them as a dir with autodep, and `check` of the built image.
//! No process may panic, die on a signal, outlive its deadline or grow past
//! the memory bound, and every file gets a line or a warning that names it.
//!
//! Mutants are generated deterministically (xorshift, fixed seed) from the
//! ELF layout of each sample, so each family targets a structure the loader
//! reads: the ELF header, the program header table, PT_INTERP, PT_DYNAMIC
//! and the dynamic string table.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Total mutants across all samples; the issue asks for at least 10,000.
const TOTAL_MUTANTS: usize = 12_000;
/// Mutants per batch directory (one `deps`, one build, one `check` each).
const BATCH: usize = 400;
/// A process that runs longer than this is a hang.
const DEADLINE: Duration = Duration::from_secs(60);
/// Largest resident set a process may reach.
const MAX_RSS_KIB: i64 = 512 * 1024;

const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const PT_LOAD: u32 = 1;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DT_AUXILIARY: u64 = 0x7fff_fffd;
const DT_FILTER: u64 = 0x7fff_ffff;

/// xorshift64*: small, deterministic, good enough to spread mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn read_le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0, |acc, x| (acc << 8) | u64::from(*x))
}

/// Writes `n` little-endian bytes of `v`; bytes past the end are dropped.
fn write_le(b: &mut [u8], at: usize, n: usize, v: u64) {
    for i in 0..n {
        if let Some(x) = b.get_mut(at + i) {
            *x = (v >> (8 * i)) as u8;
        }
    }
}

/// A NUL-terminated string written over `room` bytes (truncated to fit).
fn write_str(b: &mut [u8], at: usize, room: usize, s: &[u8]) {
    let n = s.len().min(room.saturating_sub(1));
    let end = (at + n).min(b.len());
    if at < end {
        b[at..end].copy_from_slice(&s[..end - at]);
    }
    if let Some(x) = b.get_mut(at + n) {
        *x = 0;
    }
}

struct Phdr {
    /// File offset of the header itself.
    at: usize,
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// A string of the dynamic string table named by a dynamic entry.
struct DynString {
    tag: u64,
    at: usize,
    len: usize,
}

/// The layout of one well-formed ELF64 little-endian sample, as the test
/// needs it to aim mutations.
struct Sample {
    /// Index in the sample list.
    id: usize,
    name: &'static str,
    bytes: Vec<u8>,
    phoff: usize,
    phdrs: Vec<Phdr>,
    /// File offsets of the dynamic entries, DT_NULL included.
    dyn_entries: Vec<usize>,
    strtab: Option<(usize, usize)>,
    strings: Vec<DynString>,
}

impl Sample {
    fn new(id: usize, name: &'static str, bytes: Vec<u8>) -> Sample {
        assert_eq!(&bytes[..6], b"\x7fELF\x02\x01", "{name}: ELF64 LE sample");
        let phoff = read_le(&bytes, 32, 8) as usize;
        let phnum = read_le(&bytes, 56, 2) as usize;
        let phdrs: Vec<Phdr> = (0..phnum)
            .map(|i| {
                let at = phoff + i * 56;
                Phdr {
                    at,
                    kind: read_le(&bytes, at, 4) as u32,
                    offset: read_le(&bytes, at + 8, 8),
                    vaddr: read_le(&bytes, at + 16, 8),
                    filesz: read_le(&bytes, at + 32, 8),
                }
            })
            .collect();
        let mut s = Sample {
            id,
            name,
            bytes,
            phoff,
            phdrs,
            dyn_entries: Vec::new(),
            strtab: None,
            strings: Vec::new(),
        };
        s.read_dynamic();
        s
    }

    fn read_dynamic(&mut self) {
        let Some(d) = self.phdrs.iter().find(|p| p.kind == PT_DYNAMIC) else {
            return;
        };
        let mut at = d.offset as usize;
        let mut pairs = Vec::new();
        loop {
            let tag = read_le(&self.bytes, at, 8);
            self.dyn_entries.push(at);
            pairs.push((tag, read_le(&self.bytes, at + 8, 8)));
            if tag == DT_NULL {
                break;
            }
            at += 16;
        }
        let value = |t| pairs.iter().find(|(tag, _)| *tag == t).map(|(_, v)| *v);
        let (Some(addr), Some(size)) = (value(DT_STRTAB), value(DT_STRSZ)) else {
            return;
        };
        let load = self
            .phdrs
            .iter()
            .find(|p| p.kind == PT_LOAD && addr >= p.vaddr && addr < p.vaddr + p.filesz)
            .expect("DT_STRTAB in a PT_LOAD");
        let start = (load.offset + addr - load.vaddr) as usize;
        self.strtab = Some((start, size as usize));
        for (tag, val) in pairs {
            if matches!(tag, DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH) {
                let at = start + val as usize;
                let len = self.bytes[at..].iter().position(|b| *b == 0).unwrap();
                self.strings.push(DynString { tag, at, len });
            }
        }
    }

    fn segment(&self, kind: u32) -> Option<&Phdr> {
        self.phdrs.iter().find(|p| p.kind == kind)
    }
}

/// One malformed file: what was done to which sample, kept as the bytes
/// that differ from the sample, so that 12,000 mutants stay small in the
/// test process (whose RSS a forked child starts with).
struct Mutant {
    what: String,
    sample: usize,
    len: usize,
    patches: Vec<(usize, u8)>,
}

impl Mutant {
    fn bytes(&self, samples: &[Sample]) -> Vec<u8> {
        let mut bytes = samples[self.sample].bytes[..self.len].to_vec();
        for (at, v) in &self.patches {
            bytes[*at] = *v;
        }
        bytes
    }
}

fn mutant_name(index: usize) -> String {
    format!("m{index:05}")
}

/// Builds the mutant list family by family.
struct Mutator<'a> {
    rng: Rng,
    samples: &'a [Sample],
    out: Vec<Mutant>,
}

impl Mutator<'_> {
    fn push(&mut self, s: &Sample, what: String, bytes: Vec<u8>) {
        let patches = bytes
            .iter()
            .zip(&s.bytes)
            .enumerate()
            .filter(|(_, (new, old))| new != old)
            .map(|(at, (new, _))| (at, *new))
            .collect();
        self.out.push(Mutant {
            what: format!("{}: {what}", s.name),
            sample: s.id,
            len: bytes.len(),
            patches,
        });
    }

    fn edit(&mut self, s: &Sample, what: String, f: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = s.bytes.clone();
        f(&mut bytes);
        self.push(s, what, bytes);
    }

    /// Interesting values for an offset, size, address or d_val.
    fn hostile_value(&mut self, s: &Sample) -> u64 {
        let len = s.bytes.len() as u64;
        let choices = [
            0,
            1,
            len - 1,
            len,
            len + 1,
            u64::from(u32::MAX),
            u64::MAX,
            u64::MAX - 7,
            1 << 63,
            self.rng.next(),
            self.rng.next() % len,
        ];
        self.rng.pick(&choices)
    }

    fn truncations(&mut self, s: &Sample) {
        let mut cuts: Vec<usize> = (0..=64).collect();
        for p in &s.phdrs {
            cuts.extend([p.at, p.at + 1, p.at + 8, p.at + 55]);
            let off = p.offset as usize;
            if matches!(p.kind, PT_INTERP | PT_DYNAMIC) {
                cuts.extend([off, off + 1, off + p.filesz as usize / 2]);
                cuts.push((off + p.filesz as usize).saturating_sub(1));
            }
        }
        for at in &s.dyn_entries {
            cuts.extend([*at, at + 8, at + 12]);
        }
        if let Some((start, size)) = s.strtab {
            cuts.extend([start, start + 1, start + size - 1]);
        }
        for d in &s.strings {
            cuts.extend([d.at, d.at + 1, d.at + d.len]);
        }
        for _ in 0..40 {
            cuts.push(self.rng.below(s.bytes.len()));
        }
        cuts.retain(|c| *c < s.bytes.len());
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            self.push(
                s,
                format!("truncated to {cut} bytes"),
                s.bytes[..cut].to_vec(),
            );
        }
    }

    /// Every bit of the 64-byte ELF header, one at a time.
    fn header_bit_flips(&mut self, s: &Sample) {
        for bit in 0..64 * 8 {
            self.edit(s, format!("ELF header bit {bit} flipped"), |b| {
                b[bit / 8] ^= 1 << (bit % 8)
            });
        }
    }

    fn phdr_byte_overwrites(&mut self, s: &Sample, count: usize) {
        let table = s.phdrs.len() * 56;
        for _ in 0..count {
            let at = s.phoff + self.rng.below(table);
            let v = self.rng.pick(&[0u8, 1, 2, 3, 0x7f, 0x80, 0xff]) ^ (self.rng.next() as u8 & 1);
            self.edit(s, format!("byte {at:#x} (program headers) = {v:#x}"), |b| {
                b[at] = v
            });
        }
    }

    /// p_offset, p_vaddr and p_filesz of the segments the loader reads.
    fn phdr_fields(&mut self, s: &Sample, per_field: usize) {
        for p in s.phdrs.iter().filter(|p| p.kind <= PT_INTERP) {
            for (field, off) in [("p_offset", 8), ("p_vaddr", 16), ("p_filesz", 32)] {
                for _ in 0..per_field {
                    let v = self.hostile_value(s);
                    let what = format!("segment type {} {field} = {v:#x}", p.kind);
                    self.edit(s, what, |b| write_le(b, p.at + off, 8, v));
                }
            }
        }
    }

    fn dynamic_entries(&mut self, s: &Sample, per_entry: usize) {
        const TAGS: [u64; 11] = [
            DT_NULL,
            DT_NEEDED,
            DT_STRTAB,
            DT_STRSZ,
            DT_SONAME,
            DT_RPATH,
            DT_RUNPATH,
            DT_FLAGS_1,
            DT_AUXILIARY,
            DT_FILTER,
            0x6fff_fff0,
        ];
        for (i, at) in s.dyn_entries.iter().copied().enumerate() {
            for _ in 0..per_entry {
                let tag = self.rng.pick(&TAGS);
                self.edit(s, format!("dynamic entry {i} d_tag = {tag:#x}"), |b| {
                    write_le(b, at, 8, tag)
                });
                let v = self.hostile_value(s);
                self.edit(s, format!("dynamic entry {i} d_val = {v:#x}"), |b| {
                    write_le(b, at + 8, 8, v)
                });
            }
        }
        self.unterminated_dynamic(s);
    }

    /// No DT_NULL: the walk must stop at the end of the segment, or of the
    /// file when PT_DYNAMIC claims the rest of it.
    fn unterminated_dynamic(&mut self, s: &Sample) {
        let (Some(&last), Some(d)) = (s.dyn_entries.last(), s.segment(PT_DYNAMIC)) else {
            return;
        };
        let (at, end) = (d.offset as usize, (d.offset + d.filesz) as usize);
        for tag in [DT_NEEDED, 21, DT_RUNPATH] {
            self.edit(s, format!("no DT_NULL, padding tagged {tag:#x}"), |b| {
                for e in (last..end.saturating_sub(15)).step_by(16) {
                    write_le(b, e, 8, tag);
                }
            });
            let rest = (s.bytes.len() - at) as u64;
            self.edit(
                s,
                format!("no DT_NULL, tagged {tag:#x}, PT_DYNAMIC to EOF"),
                |b| {
                    for e in (last..end.saturating_sub(15)).step_by(16) {
                        write_le(b, e, 8, tag);
                    }
                    write_le(b, d.at + 32, 8, rest);
                },
            );
        }
        // The dynamic section claims to be the whole file from offset 0: the
        // ELF header and program headers are read as (tag, value) pairs.
        let whole = s.bytes.len() as u64;
        self.edit(s, "PT_DYNAMIC covers the whole file".into(), |b| {
            write_le(b, d.at + 8, 8, 0);
            write_le(b, d.at + 32, 8, whole);
        });
    }

    /// PT_INTERP naming endless, special or odd files.
    fn interpreters(&mut self, s: &Sample) {
        let Some(p) = s.segment(PT_INTERP) else {
            return;
        };
        let (at, room) = (p.offset as usize, p.filesz as usize);
        for name in [
            &b"/dev/zero"[..],
            b"/dev/urandom",
            b"/dev/stdin",
            b"/proc/self/pagemap",
            b"/proc/self/mem",
            b"/proc/self/exe",
            b"/bin/ls",
            b"",
            b"ld.so",
            b"/lib64/../../../../..",
            b"/lib64/ld-\xff\xfe.so",
            b"/lib/ld-musl-x86_64.so.1",
        ] {
            let what = format!("PT_INTERP = {:?}", String::from_utf8_lossy(name));
            self.edit(s, what, |b| write_str(b, at, room, name));
        }
        self.edit(s, "PT_INTERP without NUL".into(), |b| {
            b[at..at + room].fill(b'A')
        });
    }

    /// Dynamic strings rewritten in place: special files, climbing paths,
    /// bad UTF-8, the file itself.
    fn string_rewrites(&mut self, s: &Sample) {
        const NAMES: [&[u8]; 14] = [
            b"/dev/zero",
            b"/proc/self/pagemap",
            b"/proc/self/exe",
            b"$ORIGIN",
            b"$ORIGIN/../../../../../../../../..",
            b"../../../../etc/passwd",
            b"$LIB/libz.so.1",
            b"${ORIGIN}/${LIB}/${PLATFORM}/${",
            b"",
            b":::::",
            b"libc.so.6",
            b"lib\xff\xfe.so",
            b"ld-linux-x86-64.so.2",
            b"$ORIGIN/$ORIGIN/$ORIGIN",
        ];
        for d in &s.strings {
            for name in NAMES {
                let what = format!(
                    "string of tag {} = {:?}",
                    d.tag,
                    String::from_utf8_lossy(name)
                );
                self.edit(s, what, |b| write_str(b, d.at, d.len + 1, name));
            }
            let me = mutant_name(self.out.len());
            self.edit(s, format!("string of tag {} = itself", d.tag), |b| {
                write_str(b, d.at, d.len + 1, me.as_bytes())
            });
        }
        self.self_and_cycles(s);
    }

    /// DT_NEEDED naming the file itself, or a partner that names it back,
    /// found through `$ORIGIN`.
    fn self_and_cycles(&mut self, s: &Sample) {
        let Some(needed) = s.strings.iter().find(|d| d.tag == DT_NEEDED) else {
            return;
        };
        let runpath = s
            .strings
            .iter()
            .find(|d| matches!(d.tag, DT_RUNPATH | DT_RPATH));
        let name = |i: usize| match runpath {
            Some(_) => mutant_name(i),
            None => format!("$ORIGIN/{}", mutant_name(i)),
        };
        // A file that needs itself, then a pair and a triangle that need
        // each other round the cycle.
        for size in [1, 2, 3] {
            let base = self.out.len();
            for k in 0..size {
                let target = name(base + (k + 1) % size);
                if target.len() > needed.len {
                    return;
                }
                self.edit(s, format!("DT_NEEDED = {target}"), |b| {
                    write_str(b, needed.at, needed.len + 1, target.as_bytes());
                    if let Some(r) = runpath {
                        write_str(b, r.at, r.len + 1, b"$ORIGIN");
                    }
                });
            }
        }
    }

    /// A few random byte overwrites, mostly in the first 4 KiB or the
    /// dynamic section, sometimes followed by a truncation.
    fn random_edits(&mut self, s: &Sample) {
        let mut bytes = s.bytes.clone();
        let edits = 1 + self.rng.below(16);
        let dyn_at = s.dyn_entries.first().copied().unwrap_or(0);
        let dyn_len = s.dyn_entries.len() * 16;
        for _ in 0..edits {
            let at = match self.rng.below(3) {
                0 => self.rng.below(4096.min(bytes.len())),
                1 => dyn_at + self.rng.below(dyn_len),
                _ => self.rng.below(bytes.len()),
            };
            bytes[at] = self.rng.next() as u8;
        }
        if self.rng.below(4) == 0 {
            bytes.truncate(self.rng.below(bytes.len()));
        }
        self.push(s, format!("{edits} random byte edits"), bytes);
    }

    fn generate(mut self, total: usize) -> Vec<Mutant> {
        for s in self.samples {
            self.truncations(s);
            self.header_bit_flips(s);
            self.phdr_byte_overwrites(s, 250);
            self.phdr_fields(s, 12);
            self.dynamic_entries(s, 8);
            self.interpreters(s);
            self.string_rewrites(s);
        }
        let mut i = 0;
        while self.out.len() < total {
            let s = &self.samples[i % self.samples.len()];
            self.random_edits(s);
            i += 1;
        }
        self.out
    }
}

/// Real binaries of the machine and gcc-built PIEs with RPATH and RUNPATH
/// (their fixture library goes to `ws/lib`, where `$ORIGIN/../lib` finds it
/// from the batch dirs).
fn samples(ws: &Path) -> Vec<Sample> {
    let lib_name = "libfixture_with_room_for_in_place_name_rewrites.so";
    let lib = ws.join("lib").join(lib_name);
    common::gcc(
        "int fixture_value(void) { return 7; }\n",
        &lib,
        &[
            "-shared",
            "-fPIC",
            &format!("-Wl,-soname,{lib_name}"),
            "-Wl,-rpath,$ORIGIN/padding/padding/padding/padding/padding",
            "-Wl,--enable-new-dtags",
        ],
    );
    let prog = "#include <math.h>\nint fixture_value(void);\n\
                int main(int c, char **v) { (void)v; return fixture_value() + (int)sqrt(c); }\n";
    let mut out = Vec::new();
    for (name, dtags, path) in [
        (
            "pie-runpath",
            "--enable-new-dtags",
            "$ORIGIN/../lib:/opt/padding/padding",
        ),
        (
            "pie-rpath",
            "--disable-new-dtags",
            "/opt/padding/padding:$ORIGIN/../lib",
        ),
    ] {
        let exe = ws.join("fixtures").join(name);
        let libdir = format!("-L{}", ws.join("lib").display());
        let rpath = format!("-Wl,-rpath,{path}");
        let link = format!("-Wl,{dtags}");
        let args = [
            "-fPIE",
            "-pie",
            libdir.as_str(),
            "-lfixture_with_room_for_in_place_name_rewrites",
            "-lm",
            &rpath,
            &link,
        ];
        common::gcc(prog, &exe, &args);
        out.push(Sample::new(out.len(), name, fs::read(&exe).unwrap()));
    }
    out.push(Sample::new(
        out.len(),
        "fixture-lib",
        fs::read(&lib).unwrap(),
    ));
    out.push(Sample::new(out.len(), "ls", fs::read("/bin/ls").unwrap()));
    let libz = fs::read("/lib/x86_64-linux-gnu/libz.so.1")
        .or_else(|_| fs::read("/lib/x86_64-linux-gnu/libc.so.6"))
        .unwrap();
    out.push(Sample::new(out.len(), "libz", libz));
    out
}

/// How one child process ended.
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    max_rss_kib: i64,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Why this run counts as a crash, a hang or a blow-up, if it does.
    fn failure(&self, allowed: &[i32]) -> Option<String> {
        if self.timed_out {
            return Some(format!("killed after {:?}", self.elapsed));
        }
        if let Some(sig) = self.signal {
            return Some(format!("killed by signal {sig}"));
        }
        if self.stderr.contains("panicked") {
            return Some("panicked".into());
        }
        if self.max_rss_kib > MAX_RSS_KIB {
            return Some(format!("max RSS {} KiB", self.max_rss_kib));
        }
        match self.code {
            Some(c) if allowed.contains(&c) => None,
            c => Some(format!("exit status {c:?}")),
        }
    }
}

/// Runs `cmd` with output to files, reaping it with wait4 to get its own
/// maximum RSS; kills it at the deadline.
// The child is reaped by wait4 (std's wait cannot report rusage).
#[allow(clippy::zombie_processes)]
fn run(mut cmd: Command, scratch: &Path) -> Run {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(got >= 0, "wait4 failed");
        if got == pid {
            break;
        }
        if start.elapsed() > DEADLINE && !timed_out {
            timed_out = true;
            child.kill().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned();
    Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        timed_out,
        max_rss_kib: usage.ru_maxrss,
        elapsed: start.elapsed(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// `copy_bom deps` output split per file: `NAME:` headers, then lines.
fn deps_sections(stdout: &str, names: &[String]) -> BTreeMap<String, Vec<String>> {
    let headers: BTreeMap<String, &String> = names.iter().map(|n| (format!("{n}:"), n)).collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        match headers.get(line) {
            Some(name) if !out.contains_key(*name) => {
                current = Some(name.to_string());
                out.insert(name.to_string(), Vec::new());
            }
            _ => {
                if let Some(c) = &current {
                    out.get_mut(c).unwrap().push(line.to_string());
                }
            }
        }
    }
    out
}

/// What the test saw across all batches.
#[derive(Default)]
struct Tally {
    processes: usize,
    max_rss_kib: i64,
    slowest: Duration,
    malformed: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, label: &str, r: &Run, allowed: &[i32]) {
        self.processes += 1;
        self.max_rss_kib = self.max_rss_kib.max(r.max_rss_kib);
        self.slowest = self.slowest.max(r.elapsed);
        if let Some(why) = r.failure(allowed) {
            let tail: String = r.stderr.chars().rev().take(2000).collect();
            let tail: String = tail.chars().rev().collect();
            self.failures.push(format!("{label}: {why}\n{tail}"));
        }
    }
}

/// One batch: the mutants in `ws/batch`, `deps` over them, a build of
/// `dirs: [batch/]`, then `check` of that image.
fn run_batch(ws: &Path, samples: &[Sample], mutants: &[(usize, &Mutant)], tally: &mut Tally) {
    let batch = ws.join("batch");
    let root = ws.join("image");
    let _ = fs::remove_dir_all(&batch);
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&batch).unwrap();
    let names: Vec<String> = mutants.iter().map(|(i, _)| mutant_name(*i)).collect();
    let mut malformed = Vec::new();
    for ((_, m), name) in mutants.iter().zip(&names) {
        let path = batch.join(name);
        fs::write(&path, m.bytes(samples)).unwrap();
        if copy_bom::elf::read_file(&path).is_err() {
            malformed.push(name.clone());
        }
    }
    tally.malformed += malformed.len();
    let describe = |n: &str| {
        let i: usize = n[1..].parse().unwrap();
        format!(
            "{n} ({})",
            mutants.iter().find(|(j, _)| *j == i).unwrap().1.what
        )
    };
    let first = &names[0];
    let label = format!("batch {first}..{}", names[names.len() - 1]);

    let mut deps = common::copy_bom();
    deps.current_dir(&batch).arg("deps").args(&names);
    let r = run(deps, ws);
    tally.record(&format!("deps {label}"), &r, &[0, 248, 255]);
    let sections = deps_sections(&r.stdout, &names);
    for n in &names {
        match sections.get(n) {
            None => tally
                .failures
                .push(format!("deps: no section for {}", describe(n))),
            Some(lines) if lines.is_empty() => tally
                .failures
                .push(format!("deps: nothing said about {}", describe(n))),
            Some(_) => {}
        }
    }

    fs::write(
        ws.join("app.yaml"),
        "targets:\n  - target: /m\n    copy:\n      - dirs: [batch/]\n",
    )
    .unwrap();
    let mut build = common::copy_bom();
    build
        .current_dir(ws)
        .args(["-f", "app.yaml", "--root", "image", "--no-check"]);
    let r = run(build, ws);
    tally.record(&format!("build {label}"), &r, &[0, 248]);
    for n in &malformed {
        if !r.stderr.contains(&format!("batch/{n}: ")) {
            tally
                .failures
                .push(format!("build: no warning for {}", describe(n)));
        }
    }

    let mut check = common::copy_bom();
    check.current_dir(ws).args(["check", "--root", "image"]);
    let r = run(check, ws);
    tally.record(&format!("check {label}"), &r, &[0, 248]);
    for n in &malformed {
        if !r.stdout.contains(&format!("warning: /m/{n}: ")) {
            tally
                .failures
                .push(format!("check: no warning for {}", describe(n)));
        }
    }
}

#[test]
fn malformed_elf_files_never_crash_hang_or_blow_up() {
    let start = Instant::now();
    // tmpfs when there is one: the mutants are written and copied in bulk.
    let ws = tempfile::Builder::new()
        .prefix("malformed-elf")
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        })
        .unwrap();
    let samples = samples(ws.path());
    let mutants = Mutator {
        rng: Rng(0x5eed_e1f5_afe7_0001),
        samples: &samples,
        out: Vec::new(),
    }
    .generate(TOTAL_MUTANTS);
    assert!(mutants.len() >= 10_000, "only {} mutants", mutants.len());
    let generated = start.elapsed();
    let mut tally = Tally::default();
    let indexed: Vec<(usize, &Mutant)> = mutants.iter().enumerate().collect();
    for chunk in indexed.chunks(BATCH) {
        run_batch(ws.path(), &samples, chunk, &mut tally);
        if tally.failures.len() > 50 {
            break;
        }
    }
    eprintln!(
        "{} mutants ({} malformed for the parser), {} processes, slowest {:?}, max RSS {} KiB, \
         generated in {generated:?}, total {:?}",
        mutants.len(),
        tally.malformed,
        tally.processes,
        tally.slowest,
        tally.max_rss_kib,
        start.elapsed()
    );
    if !tally.failures.is_empty() {
        // Keep the last batch, its image and the samples for reproduction.
        let kept = ws.keep();
        panic!(
            "{} failures (workspace kept in {}):\n{}",
            tally.failures.len(),
            kept.display(),
            tally.failures.join("\n")
        );
    }
}
