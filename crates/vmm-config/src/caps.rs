//! What rvirt-vmm accepts for `-machine` and `-cpu`: the one table its
//! command-line parser checks, its CPUID is built from, and rvirtd
//! advertises in the capabilities (through the VMM's own
//! `query-cpu-definitions`, so what the host can run is KVM's word).

/// The machine types, the default (as QEMU's) first.
pub const MACHINES: &[&str] = &["pc", "q35", "microvm"];

/// A named CPU model: the features (QEMU's names) a guest sees, whatever
/// more the host has. rvirt narrows KVM's CPUID to them; the family,
/// model and brand string stay the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuModelDef {
    pub name: &'static str,
    /// The vendor whose CPUs the model describes (`None`: any).
    pub vendor: Option<&'static str>,
    /// Its features, QEMU's names; the ones KVM adds to every model
    /// (x2apic, tsc-deadline, hypervisor) are implied.
    pub features: &'static [&'static str],
}

/// The x86-64 baseline of every model below.
macro_rules! base {
    ($($more:literal),* $(,)?) => {
        &[
            "fpu", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge",
            "mca", "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "syscall", "nx",
            "lm", $($more),*
        ]
    };
}

/// The named models, oldest first: the generations' feature sets as
/// QEMU 7.2 defines them (its TSX-less versions; rvirt's feature table
/// has no MPX, so those models carry none).
pub const CPU_MODELS: &[CpuModelDef] = &[
    CpuModelDef {
        name: "qemu64",
        vendor: None,
        features: base!["pni", "cx16", "lahf-lm", "svm"],
    },
    CpuModelDef {
        name: "kvm64",
        vendor: None,
        features: base!["vme", "pni", "cx16"],
    },
    CpuModelDef {
        name: "Nehalem",
        vendor: Some("Intel"),
        features: base!["pni", "ssse3", "cx16", "sse4.1", "sse4.2", "popcnt", "lahf-lm"],
    },
    CpuModelDef {
        name: "Westmere",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "cx16",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "aes",
            "lahf-lm",
            "rdtscp",
        ],
    },
    CpuModelDef {
        name: "SandyBridge",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "cx16",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "lahf-lm",
            "rdtscp",
            "xsaveopt",
        ],
    },
    CpuModelDef {
        name: "IvyBridge",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "cx16",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "lahf-lm",
            "rdtscp",
            "xsaveopt",
            "fsgsbase",
            "smep",
            "erms",
        ],
    },
    CpuModelDef {
        name: "Haswell-noTSX",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "fma",
            "cx16",
            "pcid",
            "sse4.1",
            "sse4.2",
            "movbe",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "lahf-lm",
            "abm",
            "rdtscp",
            "xsaveopt",
            "fsgsbase",
            "bmi1",
            "avx2",
            "smep",
            "bmi2",
            "erms",
            "invpcid",
        ],
    },
    CpuModelDef {
        name: "Broadwell-noTSX",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "fma",
            "cx16",
            "pcid",
            "sse4.1",
            "sse4.2",
            "movbe",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "lahf-lm",
            "abm",
            "3dnowprefetch",
            "rdtscp",
            "xsaveopt",
            "fsgsbase",
            "bmi1",
            "avx2",
            "smep",
            "bmi2",
            "erms",
            "invpcid",
            "rdseed",
            "adx",
            "smap",
        ],
    },
    CpuModelDef {
        name: "Skylake-Client-noTSX-IBRS",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "fma",
            "cx16",
            "pcid",
            "sse4.1",
            "sse4.2",
            "movbe",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "lahf-lm",
            "abm",
            "3dnowprefetch",
            "rdtscp",
            "xsaveopt",
            "xsavec",
            "xgetbv1",
            "fsgsbase",
            "bmi1",
            "avx2",
            "smep",
            "bmi2",
            "erms",
            "invpcid",
            "rdseed",
            "adx",
            "smap",
            "clflushopt",
            "spec-ctrl",
        ],
    },
    CpuModelDef {
        name: "Skylake-Server-noTSX-IBRS",
        vendor: Some("Intel"),
        features: base![
            "pni",
            "pclmulqdq",
            "ssse3",
            "fma",
            "cx16",
            "pcid",
            "sse4.1",
            "sse4.2",
            "movbe",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "lahf-lm",
            "abm",
            "3dnowprefetch",
            "pdpe1gb",
            "rdtscp",
            "xsaveopt",
            "xsavec",
            "xgetbv1",
            "fsgsbase",
            "bmi1",
            "avx2",
            "smep",
            "bmi2",
            "erms",
            "invpcid",
            "rdseed",
            "adx",
            "smap",
            "clflushopt",
            "clwb",
            "avx512f",
            "avx512dq",
            "avx512cd",
            "avx512bw",
            "avx512vl",
            "pku",
            "spec-ctrl",
        ],
    },
];

/// The features KVM gives every model (QEMU's `kvm_default_props` and
/// KVM's own): never in a model's list, never unavailable.
pub const KVM_IMPLIED_FEATURES: &[&str] = &["x2apic", "tsc-deadline", "hypervisor"];

/// The model named `name`, if rvirt-vmm has it (`host` and `max` are not
/// models of the table: they are KVM's whole set).
pub fn cpu_model(name: &str) -> Option<&'static CpuModelDef> {
    CPU_MODELS.iter().find(|m| m.name == name)
}

/// Whether `-machine TYPE` is one rvirt-vmm runs: a listed type, a
/// versioned one of QEMU's (`pc-i440fx-7.2`, `pc-q35-7.2`), or `none`.
pub fn is_known_machine(t: &str) -> bool {
    MACHINES.contains(&t) || t == "none" || t.starts_with("pc-")
}

/// Whether `-cpu MODEL` is one rvirt-vmm emulates.
pub fn is_known_cpu_model(m: &str) -> bool {
    matches!(m, "host" | "max") || cpu_model(m).is_some()
}

/// libvirt's name of a CPU feature (its cpu_map), from QEMU's: the two
/// spell a few differently (`lahf-lm` is `lahf_lm`, `pclmulqdq` is
/// `pclmuldq`). Both are accepted by `-cpu`.
pub fn libvirt_feature_name(qemu: &str) -> &str {
    match qemu {
        "lahf-lm" => "lahf_lm",
        "pclmulqdq" => "pclmuldq",
        "tsc-adjust" => "tsc_adjust",
        "cmp-legacy" => "cmp_legacy",
        "fxsr-opt" => "fxsr_opt",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        for m in MACHINES {
            assert!(is_known_machine(m));
        }
        assert!(is_known_machine("pc-i440fx-7.2") && is_known_machine("pc-q35-7.2"));
        assert!(!is_known_machine("virt"));
        for m in ["host", "max", "qemu64", "kvm64", "Haswell-noTSX"] {
            assert!(is_known_cpu_model(m));
        }
        assert!(!is_known_cpu_model("Skylake-Client"));
        assert!(!is_known_cpu_model("Intel(R) Xeon(R) Processor"));
    }

    #[test]
    fn each_generation_contains_the_one_before() {
        let intel: Vec<_> = CPU_MODELS.iter().filter(|m| m.vendor.is_some()).collect();
        for pair in intel.windows(2) {
            for f in pair[0].features {
                assert!(
                    pair[1].features.contains(f),
                    "{} lacks {f} of {}",
                    pair[1].name,
                    pair[0].name
                );
            }
        }
        for m in CPU_MODELS {
            for f in KVM_IMPLIED_FEATURES {
                assert!(!m.features.contains(f), "{} lists {f}", m.name);
            }
        }
    }
}
