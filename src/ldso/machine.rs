//! Per-architecture facts the loader has compiled in: its default path,
//! its multiarch triplet, the ld.so.cache flag value it accepts, its
//! platform string and its glibc-hwcaps names. Used when a sysroot lacks
//! the interpreter or when a file names none.

use crate::elf::{Class, ElfFile, Endian};

const EM_386: u16 = 3;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
/// EF_ARM_ABI_FLOAT_HARD: the hard-float ARM ABI has its own loader.
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

/// What glibc's build for one ABI knows about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arch {
    pub interp: &'static str,
    pub triplet: &'static str,
    /// `_DL_CACHE_DEFAULT_ID`: the cache entry flags this ABI accepts (besides 1).
    pub cache_id: u32,
    /// AT_PLATFORM, when it is a fixed string.
    pub platform: Option<&'static str>,
    /// glibc-hwcaps subdirectory names, best first.
    pub hwcaps: &'static [&'static str],
}

const fn arch(
    interp: &'static str,
    triplet: &'static str,
    cache_id: u32,
    platform: Option<&'static str>,
) -> Arch {
    Arch {
        interp,
        triplet,
        cache_id,
        platform,
        hwcaps: &[],
    }
}

/// The ABI of `elf`, when it is one we know.
pub(crate) fn arch_of(elf: &ElfFile) -> Option<Arch> {
    let le = elf.data == Endian::Little;
    Some(match (elf.machine, elf.class) {
        (EM_X86_64, Class::Elf64) => Arch {
            hwcaps: &["x86-64-v4", "x86-64-v3", "x86-64-v2"],
            ..arch(
                "/lib64/ld-linux-x86-64.so.2",
                "x86_64-linux-gnu",
                0x0303,
                Some("x86_64"),
            )
        },
        (EM_X86_64, Class::Elf32) => arch(
            "/libx32/ld-linux-x32.so.2",
            "x86_64-linux-gnux32",
            0x0803,
            Some("x86_64"),
        ),
        (EM_386, Class::Elf32) => {
            arch("/lib/ld-linux.so.2", "i386-linux-gnu", 0x0003, Some("i686"))
        }
        (EM_AARCH64, Class::Elf64) if le => arch(
            "/lib/ld-linux-aarch64.so.1",
            "aarch64-linux-gnu",
            0x0a03,
            Some("aarch64"),
        ),
        (EM_AARCH64, Class::Elf64) => arch(
            "/lib/ld-linux-aarch64_be.so.1",
            "aarch64_be-linux-gnu",
            0x0a03,
            Some("aarch64_be"),
        ),
        (EM_ARM, Class::Elf32) if elf.flags & EF_ARM_ABI_FLOAT_HARD != 0 => arch(
            "/lib/ld-linux-armhf.so.3",
            "arm-linux-gnueabihf",
            0x0903,
            None,
        ),
        (EM_ARM, Class::Elf32) => arch("/lib/ld-linux.so.3", "arm-linux-gnueabi", 0x0b03, None),
        (EM_PPC64, Class::Elf64) if le => Arch {
            hwcaps: &["power10", "power9"],
            ..arch("/lib64/ld64.so.2", "powerpc64le-linux-gnu", 0x0503, None)
        },
        (EM_PPC64, Class::Elf64) => arch("/lib64/ld64.so.1", "powerpc64-linux-gnu", 0x0503, None),
        (EM_S390, Class::Elf64) => Arch {
            hwcaps: &["z16", "z15", "z14", "z13"],
            ..arch("/lib/ld64.so.1", "s390x-linux-gnu", 0x0403, None)
        },
        (EM_RISCV, Class::Elf64) => arch(
            "/lib/ld-linux-riscv64-lp64d.so.1",
            "riscv64-linux-gnu",
            0x1003,
            None,
        ),
        _ => return None,
    })
}

/// System directories when the interpreter cannot be read: Debian's
/// multiarch directories first, then upstream's slibdir and libdir.
pub(crate) fn fallback_system_dirs(elf: &ElfFile) -> Vec<String> {
    let mut dirs = Vec::new();
    if let Some(a) = arch_of(elf) {
        dirs.push(format!("/lib/{}", a.triplet));
        dirs.push(format!("/usr/lib/{}", a.triplet));
    }
    if elf.class == Class::Elf64 {
        dirs.extend(["/lib64".to_string(), "/usr/lib64".to_string()]);
    }
    dirs.extend(["/lib".to_string(), "/usr/lib".to_string()]);
    dirs
}

/// Whether `elf` runs natively on the machine this program runs on, so
/// that the CPU's own features decide the hwcaps subdirectories.
fn is_host(elf: &ElfFile) -> bool {
    cfg!(target_arch = "x86_64") && elf.machine == EM_X86_64 && elf.class == Class::Elf64
}

/// glibc-hwcaps names the CPU supports for `elf`'s ABI, best first. Only the
/// host's CPU can be asked; for another architecture only the baseline
/// (no subdirectory) is assumed.
pub(crate) fn supported_hwcaps(elf: &ElfFile) -> Vec<&'static str> {
    if !is_host(elf) {
        return Vec::new();
    }
    let level = x86_64_level();
    ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
        .into_iter()
        .zip([4, 3, 2])
        .filter(|(_, l)| *l <= level)
        .map(|(name, _)| name)
        .collect()
}

/// The legacy (pre-2.37) `tls` and platform subdirectories glibc 2.36 still
/// tries after glibc-hwcaps; only known for the host.
pub(crate) fn legacy_subdirs(elf: &ElfFile) -> Vec<&'static str> {
    if !is_host(elf) {
        return Vec::new();
    }
    vec![
        "tls/x86_64/x86_64",
        "tls/x86_64",
        "tls",
        "x86_64/x86_64",
        "x86_64",
    ]
}

/// The x86-64 micro-architecture level (1–4) of this CPU.
#[cfg(target_arch = "x86_64")]
fn x86_64_level() -> u8 {
    use std::arch::is_x86_feature_detected as has;
    let v2 = has!("cmpxchg16b")
        && has!("popcnt")
        && has!("sse3")
        && has!("ssse3")
        && has!("sse4.1")
        && has!("sse4.2");
    let v3 = v2
        && has!("avx")
        && has!("avx2")
        && has!("bmi1")
        && has!("bmi2")
        && has!("f16c")
        && has!("fma")
        && has!("lzcnt")
        && has!("movbe")
        && has!("xsave");
    let v4 = v3
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl");
    1 + u8::from(v2) + u8::from(v3) + u8::from(v4)
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_64_level() -> u8 {
    1
}
