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
    /// musl's name for the ABI (`ld-musl-<name>.so.1`).
    pub musl: &'static str,
}

const fn arch(
    interp: &'static str,
    triplet: &'static str,
    cache_id: u32,
    platform: Option<&'static str>,
    musl: &'static str,
) -> Arch {
    Arch {
        interp,
        triplet,
        cache_id,
        platform,
        hwcaps: &[],
        musl,
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
                "x86_64",
            )
        },
        (EM_X86_64, Class::Elf32) => arch(
            "/libx32/ld-linux-x32.so.2",
            "x86_64-linux-gnux32",
            0x0803,
            Some("x86_64"),
            "x32",
        ),
        (EM_386, Class::Elf32) => arch(
            "/lib/ld-linux.so.2",
            "i386-linux-gnu",
            0x0003,
            Some("i686"),
            "i386",
        ),
        (EM_AARCH64, Class::Elf64) if le => arch(
            "/lib/ld-linux-aarch64.so.1",
            "aarch64-linux-gnu",
            0x0a03,
            Some("aarch64"),
            "aarch64",
        ),
        (EM_AARCH64, Class::Elf64) => arch(
            "/lib/ld-linux-aarch64_be.so.1",
            "aarch64_be-linux-gnu",
            0x0a03,
            Some("aarch64_be"),
            "aarch64_be",
        ),
        (EM_ARM, Class::Elf32) if elf.flags & EF_ARM_ABI_FLOAT_HARD != 0 => arch(
            "/lib/ld-linux-armhf.so.3",
            "arm-linux-gnueabihf",
            0x0903,
            None,
            "armhf",
        ),
        (EM_ARM, Class::Elf32) => arch(
            "/lib/ld-linux.so.3",
            "arm-linux-gnueabi",
            0x0b03,
            None,
            "arm",
        ),
        (EM_PPC64, Class::Elf64) if le => Arch {
            hwcaps: &["power10", "power9"],
            ..arch(
                "/lib64/ld64.so.2",
                "powerpc64le-linux-gnu",
                0x0503,
                None,
                "powerpc64le",
            )
        },
        (EM_PPC64, Class::Elf64) => arch(
            "/lib64/ld64.so.1",
            "powerpc64-linux-gnu",
            0x0503,
            None,
            "powerpc64",
        ),
        (EM_S390, Class::Elf64) => Arch {
            hwcaps: &["z16", "z15", "z14", "z13"],
            ..arch("/lib/ld64.so.1", "s390x-linux-gnu", 0x0403, None, "s390x")
        },
        (EM_RISCV, Class::Elf64) => arch(
            "/lib/ld-linux-riscv64-lp64d.so.1",
            "riscv64-linux-gnu",
            0x1003,
            None,
            "riscv64",
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

/// Whether `elf` is an x86-64 (LP64) object, the ABI whose CPU facts are
/// modelled ([`Cpu`]).
fn is_x86_64(elf: &ElfFile) -> bool {
    elf.machine == EM_X86_64 && elf.class == Class::Elf64
}

/// What glibc's x86-64 loader learns from the CPU (`init_cpu_features`):
/// the micro-architecture level that selects `glibc-hwcaps/x86-64-vN`, and
/// for glibc ≤ 2.36 the platform that replaces AT_PLATFORM and the legacy
/// AVX512_1 hwcap bit, which together name `$PLATFORM` and the legacy
/// search subdirectories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// x86-64 level, 1 (baseline) to 4.
    pub level: u8,
    /// `haswell` or `xeon_phi` when glibc sets it (Intel CPUs only); None
    /// keeps the kernel's AT_PLATFORM (`x86_64`).
    pub platform: Option<String>,
    /// glibc's HWCAP_X86_AVX512_1 (Intel, AVX512F/CD/BW/DQ/VL, not Xeon Phi).
    pub avx512_1: bool,
}

impl Cpu {
    /// The CPU this program runs on, read with cpuid (never by running a
    /// loader); a baseline CPU on other architectures.
    pub fn host() -> Cpu {
        host_cpu()
    }

    /// A baseline x86-64 CPU: no hwcaps subdirectory, AT_PLATFORM.
    pub fn baseline() -> Cpu {
        Cpu {
            level: 1,
            platform: None,
            avx512_1: false,
        }
    }
}

/// glibc-hwcaps names the CPU supports for `elf`'s ABI, best first (glibc ≥
/// 2.33). Only the x86-64 levels are modelled; for another ABI only the
/// baseline (no subdirectory) is assumed.
pub(crate) fn supported_hwcaps(elf: &ElfFile, cpu: &Cpu) -> Vec<&'static str> {
    if !is_x86_64(elf) {
        return Vec::new();
    }
    ["x86-64-v4", "x86-64-v3", "x86-64-v2"]
        .into_iter()
        .zip([4, 3, 2])
        .filter(|(_, l)| *l <= cpu.level)
        .map(|(name, _)| name)
        .collect()
}

/// `$PLATFORM`: glibc's `dl_platform`, the CPU-derived name on x86-64 (up
/// to 2.36, `haswell` on AVX2 Intel CPUs), else AT_PLATFORM.
pub(crate) fn platform(elf: &ElfFile, cpu: &Cpu) -> Option<String> {
    let at_platform = arch_of(elf).and_then(|a| a.platform);
    if is_x86_64(elf) && cpu.platform.is_some() {
        return cpu.platform.clone();
    }
    at_platform.map(str::to_string)
}

/// The legacy (glibc ≤ 2.36) subdirectories tried in each search directory
/// after glibc-hwcaps and before the directory itself, best first, as
/// `_dl_important_hwcaps` builds them: every combination of the important
/// hwcap names (ascending bit order), the platform and `tls`, the later
/// element outermost, from all of them down to one. On this x86-64
/// machine `LD_DEBUG=libs` shows `tls/haswell/avx512_1/x86_64`, …, `x86_64`.
///
/// x86-64: the HWCAP_X86_64 bit is always set and AVX512_1 per the CPU;
/// i386: SSE2 (every x86-64 CPU has it). Other ABIs' hwcap bits come from
/// the kernel's AT_HWCAP of the target, which is unknown here: only the
/// platform and `tls` are used for them.
pub(crate) fn legacy_subdirs(elf: &ElfFile, cpu: &Cpu) -> Vec<String> {
    let mut elems: Vec<String> = Vec::new();
    if is_x86_64(elf) {
        elems.push("x86_64".into());
        if cpu.avx512_1 {
            elems.push("avx512_1".into());
        }
    } else if elf.machine == EM_386 {
        elems.push("sse2".into());
    }
    elems.extend(platform(elf, cpu));
    elems.push("tls".into());
    let n = elems.len();
    let mut dirs = Vec::new();
    for mask in (1..(1u32 << n)).rev() {
        let parts: Vec<&str> = (0..n)
            .rev()
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| elems[i].as_str())
            .collect();
        let dir = parts.join("/");
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

#[cfg(target_arch = "x86_64")]
fn host_cpu() -> Cpu {
    use std::arch::is_x86_feature_detected as has;
    use std::arch::x86_64::{__cpuid, __cpuid_count};
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
    let avx512 = has!("avx512f") && has!("avx512cd");
    let v4 = v3 && avx512 && has!("avx512bw") && has!("avx512dq") && has!("avx512vl");
    let level = 1 + u8::from(v2) + u8::from(v3) + u8::from(v4);
    // glibc derives the platform and AVX512_1 only on Intel CPUs.
    let vendor = __cpuid(0);
    let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    if !intel {
        return Cpu {
            level,
            platform: None,
            avx512_1: false,
        };
    }
    // AVX512ER and AVX512PF (Xeon Phi): leaf 7 EBX bits 27 and 26, usable
    // when the OS enables AVX-512 state (as avx512f's detection checks).
    let ebx = if vendor.eax >= 7 {
        __cpuid_count(7, 0).ebx
    } else {
        0
    };
    let er = avx512 && ebx & (1 << 27) != 0;
    let pf = avx512 && ebx & (1 << 26) != 0;
    let mut platform = None;
    let mut avx512_1 = false;
    if avx512 {
        if er {
            if pf {
                platform = Some("xeon_phi".to_string());
            }
        } else {
            avx512_1 = has!("avx512bw") && has!("avx512dq") && has!("avx512vl");
        }
    }
    let haswell = has!("avx2")
        && has!("fma")
        && has!("bmi1")
        && has!("bmi2")
        && has!("lzcnt")
        && has!("movbe")
        && has!("popcnt");
    if platform.is_none() && haswell {
        platform = Some("haswell".to_string());
    }
    Cpu {
        level,
        platform,
        avx512_1,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn host_cpu() -> Cpu {
    Cpu::baseline()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(machine: u16, class: Class) -> ElfFile {
        ElfFile {
            class,
            data: Endian::Little,
            osabi: 0,
            abiversion: 0,
            machine,
            flags: 0,
            kind: crate::elf::ET_DYN,
            interp: None,
            dynamic: true,
            needed: Vec::new(),
            rpath: None,
            runpath: None,
            soname: None,
            nodeflib: false,
            pie: false,
            filters: Vec::new(),
            auxiliary: Vec::new(),
            dlopen: Vec::new(),
        }
    }

    /// The order `LD_DEBUG=libs` of glibc 2.36 showed on an AVX-512 Intel
    /// machine (platform haswell, hwcap avx512_1): see tests/ldso_rules.rs
    /// for the live comparison.
    #[test]
    fn legacy_subdirs_in_glibc_order() {
        let cpu = Cpu {
            level: 4,
            platform: Some("haswell".into()),
            avx512_1: true,
        };
        let dirs = legacy_subdirs(&object(EM_X86_64, Class::Elf64), &cpu);
        assert_eq!(
            dirs,
            [
                "tls/haswell/avx512_1/x86_64",
                "tls/haswell/avx512_1",
                "tls/haswell/x86_64",
                "tls/haswell",
                "tls/avx512_1/x86_64",
                "tls/avx512_1",
                "tls/x86_64",
                "tls",
                "haswell/avx512_1/x86_64",
                "haswell/avx512_1",
                "haswell/x86_64",
                "haswell",
                "avx512_1/x86_64",
                "avx512_1",
                "x86_64",
            ]
        );
    }

    #[test]
    fn a_foreign_abi_gets_none_of_the_hosts_cpu_facts() {
        let cpu = Cpu {
            level: 4,
            platform: Some("haswell".into()),
            avx512_1: true,
        };
        let arm = object(EM_AARCH64, Class::Elf64);
        assert_eq!(
            legacy_subdirs(&arm, &cpu),
            ["tls/aarch64", "tls", "aarch64"]
        );
        assert_eq!(platform(&arm, &cpu).as_deref(), Some("aarch64"));
        assert!(supported_hwcaps(&arm, &cpu).is_empty());
    }
}
