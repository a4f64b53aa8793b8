//! The CPUID a vCPU sees: what KVM supports, narrowed to the requested CPU
//! model and feature flags, with the topology and hypervisor leaves filled in.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

use crate::topology::Topology;

/// Which base feature set a `-cpu` model starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuModel {
    /// Everything KVM supports (`host`, `max`). `migratable` (QEMU's
    /// default) leaves out what a migration could not keep: the invariant
    /// TSC.
    Host { migratable: bool },
    /// A named model: KVM's set narrowed to these features (QEMU's names;
    /// x2apic, tsc-deadline and hypervisor are always kept, as KVM gives
    /// them to every model).
    Named(&'static [&'static str]),
}

/// A `-cpu` request: a model plus `+feat` / `-feat` flags, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSpec {
    pub model: CpuModel,
    pub flags: Vec<(String, bool)>,
}

impl Default for CpuSpec {
    fn default() -> Self {
        CpuSpec {
            model: CpuModel::Host { migratable: true },
            flags: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// A named feature bit: (leaf, subleaf, register, bit).
struct Feature {
    names: &'static [&'static str],
    leaf: u32,
    index: u32,
    reg: Reg,
    bit: u32,
}

macro_rules! features {
    ($( [$($name:literal),+] => $leaf:literal, $index:literal, $reg:ident, $bit:literal; )*) => {
        &[$( Feature { names: &[$($name),+], leaf: $leaf, index: $index, reg: Reg::$reg, bit: $bit } ),*]
    };
}

/// Feature names as QEMU spells them (with its aliases).
static FEATURES: &[Feature] = features! {
    ["fpu"] => 1, 0, Edx, 0; ["vme"] => 1, 0, Edx, 1; ["de"] => 1, 0, Edx, 2;
    ["pse"] => 1, 0, Edx, 3; ["tsc"] => 1, 0, Edx, 4; ["msr"] => 1, 0, Edx, 5;
    ["pae"] => 1, 0, Edx, 6; ["mce"] => 1, 0, Edx, 7; ["cx8"] => 1, 0, Edx, 8;
    ["apic"] => 1, 0, Edx, 9; ["sep"] => 1, 0, Edx, 11; ["mtrr"] => 1, 0, Edx, 12;
    ["pge"] => 1, 0, Edx, 13; ["mca"] => 1, 0, Edx, 14; ["cmov"] => 1, 0, Edx, 15;
    ["pat"] => 1, 0, Edx, 16; ["pse36"] => 1, 0, Edx, 17; ["clflush"] => 1, 0, Edx, 19;
    ["mmx"] => 1, 0, Edx, 23; ["fxsr"] => 1, 0, Edx, 24; ["sse"] => 1, 0, Edx, 25;
    ["sse2"] => 1, 0, Edx, 26; ["ss"] => 1, 0, Edx, 27; ["ht"] => 1, 0, Edx, 28;
    ["pni", "sse3"] => 1, 0, Ecx, 0; ["pclmulqdq", "pclmuldq"] => 1, 0, Ecx, 1;
    ["monitor"] => 1, 0, Ecx, 3; ["vmx"] => 1, 0, Ecx, 5; ["ssse3"] => 1, 0, Ecx, 9;
    ["fma"] => 1, 0, Ecx, 12; ["cx16"] => 1, 0, Ecx, 13; ["pdcm"] => 1, 0, Ecx, 15;
    ["pcid"] => 1, 0, Ecx, 17; ["sse4.1", "sse4_1"] => 1, 0, Ecx, 19;
    ["sse4.2", "sse4_2"] => 1, 0, Ecx, 20; ["x2apic"] => 1, 0, Ecx, 21;
    ["movbe"] => 1, 0, Ecx, 22; ["popcnt"] => 1, 0, Ecx, 23;
    ["tsc-deadline", "tsc_deadline"] => 1, 0, Ecx, 24; ["aes"] => 1, 0, Ecx, 25;
    ["xsave"] => 1, 0, Ecx, 26; ["avx"] => 1, 0, Ecx, 28; ["f16c"] => 1, 0, Ecx, 29;
    ["rdrand"] => 1, 0, Ecx, 30; ["hypervisor"] => 1, 0, Ecx, 31;
    ["fsgsbase"] => 7, 0, Ebx, 0; ["tsc-adjust", "tsc_adjust"] => 7, 0, Ebx, 1;
    ["bmi1"] => 7, 0, Ebx, 3; ["hle"] => 7, 0, Ebx, 4; ["avx2"] => 7, 0, Ebx, 5;
    ["smep"] => 7, 0, Ebx, 7; ["bmi2"] => 7, 0, Ebx, 8; ["erms"] => 7, 0, Ebx, 9;
    ["invpcid"] => 7, 0, Ebx, 10; ["rtm"] => 7, 0, Ebx, 11; ["avx512f"] => 7, 0, Ebx, 16;
    ["avx512dq"] => 7, 0, Ebx, 17; ["rdseed"] => 7, 0, Ebx, 18; ["adx"] => 7, 0, Ebx, 19;
    ["smap"] => 7, 0, Ebx, 20; ["clflushopt"] => 7, 0, Ebx, 23; ["clwb"] => 7, 0, Ebx, 24;
    ["avx512cd"] => 7, 0, Ebx, 28; ["sha-ni", "sha_ni"] => 7, 0, Ebx, 29;
    ["avx512bw"] => 7, 0, Ebx, 30; ["avx512vl"] => 7, 0, Ebx, 31;
    ["umip"] => 7, 0, Ecx, 2; ["pku"] => 7, 0, Ecx, 3; ["vaes"] => 7, 0, Ecx, 9;
    ["vpclmulqdq"] => 7, 0, Ecx, 10; ["rdpid"] => 7, 0, Ecx, 22;
    ["fsrm"] => 7, 0, Edx, 4; ["md-clear", "md_clear"] => 7, 0, Edx, 10;
    ["spec-ctrl"] => 7, 0, Edx, 26; ["arch-capabilities"] => 7, 0, Edx, 29;
    ["ssbd"] => 7, 0, Edx, 31;
    ["xsaveopt"] => 0xd, 1, Eax, 0; ["xsavec"] => 0xd, 1, Eax, 1;
    ["xgetbv1"] => 0xd, 1, Eax, 2; ["xsaves"] => 0xd, 1, Eax, 3;
    ["syscall"] => 0x8000_0001, 0, Edx, 11; ["nx", "xd"] => 0x8000_0001, 0, Edx, 20;
    ["mmxext"] => 0x8000_0001, 0, Edx, 22; ["fxsr-opt", "ffxsr"] => 0x8000_0001, 0, Edx, 25;
    ["pdpe1gb"] => 0x8000_0001, 0, Edx, 26; ["rdtscp"] => 0x8000_0001, 0, Edx, 27;
    ["lm", "i64"] => 0x8000_0001, 0, Edx, 29;
    ["lahf-lm", "lahf_lm"] => 0x8000_0001, 0, Ecx, 0;
    ["cmp-legacy", "cmp_legacy"] => 0x8000_0001, 0, Ecx, 1; ["svm"] => 0x8000_0001, 0, Ecx, 2;
    ["extapic"] => 0x8000_0001, 0, Ecx, 3; ["cr8legacy"] => 0x8000_0001, 0, Ecx, 4;
    ["abm"] => 0x8000_0001, 0, Ecx, 5; ["sse4a"] => 0x8000_0001, 0, Ecx, 6;
    ["misalignsse"] => 0x8000_0001, 0, Ecx, 7; ["3dnowprefetch"] => 0x8000_0001, 0, Ecx, 8;
    ["osvw"] => 0x8000_0001, 0, Ecx, 9; ["topoext"] => 0x8000_0001, 0, Ecx, 22;
    ["invtsc"] => 0x8000_0007, 0, Edx, 8;
    ["ibpb"] => 0x8000_0008, 0, Ebx, 12;
};

/// Errors in a CPU request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuidError {
    #[error("unknown CPU feature '{0}'")]
    UnknownFeature(String),
    #[error("too many CPUID entries")]
    TooManyEntries,
}

fn find(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.names.contains(&name))
}

/// Checks that every flag in `spec` names a known feature.
pub fn validate(spec: &CpuSpec) -> Result<(), CpuidError> {
    for (name, _) in &spec.flags {
        find(name).ok_or_else(|| CpuidError::UnknownFeature(name.clone()))?;
    }
    Ok(())
}

fn reg_mut(e: &mut kvm_cpuid_entry2, reg: Reg) -> &mut u32 {
    match reg {
        Reg::Eax => &mut e.eax,
        Reg::Ebx => &mut e.ebx,
        Reg::Ecx => &mut e.ecx,
        Reg::Edx => &mut e.edx,
    }
}

/// The leaves and registers a named model narrows: (leaf, index, register).
const MODEL_REGS: &[(u32, u32, Reg)] = &[
    (1, 0, Reg::Ecx),
    (1, 0, Reg::Edx),
    (7, 0, Reg::Ebx),
    (7, 0, Reg::Ecx),
    (7, 0, Reg::Edx),
    (0xd, 1, Reg::Eax),
    (0x8000_0001, 0, Reg::Ecx),
    (0x8000_0001, 0, Reg::Edx),
];

/// The features KVM adds to every model.
const IMPLIED: &[&str] = &["x2apic", "tsc-deadline", "hypervisor"];

/// The mask of bits a model with `features` keeps in (leaf, index, reg).
fn model_mask(features: &[&str], leaf: u32, index: u32, reg: Reg) -> u32 {
    features
        .iter()
        .chain(IMPLIED)
        .filter_map(|n| find(n))
        .filter(|f| f.leaf == leaf && f.index == index && f.reg == reg)
        .fold(0, |m, f| m | (1 << f.bit))
}

/// Whether KVM's `supported` set has feature `f`.
fn has(supported: &CpuId, f: &Feature) -> bool {
    supported
        .as_slice()
        .iter()
        .find(|e| e.function == f.leaf && e.index == f.index)
        .is_some_and(|e| {
            let mut e = *e;
            *reg_mut(&mut e, f.reg) & (1 << f.bit) != 0
        })
}

/// The features of rvirt's table KVM offers (first names, QEMU's
/// spelling), as the migratable `host` model shows them (no invariant TSC).
pub fn supported_features(supported: &CpuId) -> Vec<&'static str> {
    FEATURES
        .iter()
        .filter(|f| f.names[0] != "invtsc" && has(supported, f))
        .map(|f| f.names[0])
        .collect()
}

/// Which of `features` KVM cannot give (QEMU's `unavailable-features`
/// of a model); unknown names count as unavailable.
pub fn unavailable_features(supported: &CpuId, features: &[&str]) -> Vec<String> {
    features
        .iter()
        .filter(|n| find(n).is_none_or(|f| !has(supported, f)))
        .map(|n| n.to_string())
        .collect()
}

/// KVM's supported CPUID on this host, read from `/dev/kvm` (what
/// `query-cpu-definitions` checks models against, with no VM).
pub fn kvm_supported() -> Result<CpuId, vmm_sys_util::errno::Error> {
    kvm_ioctls::Kvm::new()?.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
}

/// Whether `name` is a feature rvirt knows (any of QEMU's spellings).
pub fn is_feature(name: &str) -> bool {
    find(name).is_some()
}

fn entry(cpuid: &mut CpuId, leaf: u32, index: u32) -> Option<&mut kvm_cpuid_entry2> {
    cpuid
        .as_mut_slice()
        .iter_mut()
        .find(|e| e.function == leaf && e.index == index)
}

/// Builds the CPUID for vCPU `cpu` from KVM's supported set.
pub fn build(
    supported: &CpuId,
    spec: &CpuSpec,
    topo: &Topology,
    cpu: u32,
) -> Result<CpuId, CpuidError> {
    validate(spec)?;
    let apic_id = topo.apic_id(cpu);
    let host_bits = supported.clone();
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        // Topology leaves are rebuilt below for the guest's topology.
        .filter(|e| !matches!(e.function, 0xb | 0x1f))
        .copied()
        .collect();

    for e in entries.iter_mut() {
        // Invariant TSC is left out unless asked for (`+invtsc`) or the
        // host model is not migratable, as QEMU's `host` does: guests
        // would otherwise rely on a constant TSC that a migration cannot
        // promise, and on AMD Linux also expects a firmware MSR bit
        // (HWCR.TscFreqSel) KVM may lack.
        if e.function == 0x8000_0007 && spec.model != (CpuModel::Host { migratable: false }) {
            e.edx &= !(1 << 8);
        }
        if let CpuModel::Named(features) = spec.model {
            for &(leaf, index, reg) in MODEL_REGS {
                if e.function == leaf && e.index == index {
                    *reg_mut(e, reg) &= model_mask(features, leaf, index, reg);
                }
            }
        }
        topology_leaf(e, topo, apic_id);
    }

    // Explicit flags, in order, so `-cpu host,-avx,+avx` ends with avx on.
    for (name, on) in &spec.flags {
        let f = find(name).ok_or_else(|| CpuidError::UnknownFeature(name.clone()))?;
        let host_has = has(&host_bits, f);
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.function == f.leaf && e.index == f.index)
        {
            if *on && !host_has && f.names[0] != "hypervisor" {
                // As QEMU: a feature KVM cannot give is left off, with a warning.
                tracing::warn!("host does not support requested feature {}", f.names[0]);
                continue;
            }
            let r = reg_mut(e, f.reg);
            *r = if *on {
                *r | (1 << f.bit)
            } else {
                *r & !(1 << f.bit)
            };
        }
    }

    // Leaf 0xB (and 0x1F when there are dies): the x2APIC topology.
    let max_basic = entries
        .iter()
        .find(|e| e.function == 0)
        .map_or(0, |e| e.eax);
    if max_basic >= 0xb {
        entries.extend(extended_topology(0xb, topo, apic_id));
    }
    if max_basic >= 0x1f && topo.dies > 1 {
        entries.extend(extended_topology(0x1f, topo, apic_id));
    }

    let mut out = CpuId::from_entries(&entries).map_err(|_| CpuidError::TooManyEntries)?;
    if let Some(e) = entry(&mut out, 0x4000_0000, 0) {
        // The KVM signature makes guests say "Hypervisor detected: KVM".
        e.ebx = u32::from_le_bytes(*b"KVMK");
        e.ecx = u32::from_le_bytes(*b"VMKV");
        e.edx = u32::from_le_bytes(*b"M\0\0\0");
    }
    Ok(out)
}

/// Patches the per-CPU and per-topology fields of one supported leaf.
fn topology_leaf(e: &mut kvm_cpuid_entry2, topo: &Topology, apic_id: u32) {
    let per_pkg = topo.per_package();
    match e.function {
        1 => {
            // Initial APIC ID, logical processors per package, HTT.
            e.ebx = (e.ebx & 0x0000_ffff) | (apic_id << 24) | ((per_pkg.min(255)) << 16);
            if per_pkg > 1 {
                e.edx |= 1 << 28;
            } else {
                e.edx &= !(1 << 28);
            }
            e.ecx |= 1 << 31; // hypervisor
        }
        // Intel deterministic cache parameters: cores per package and the
        // CPUs sharing each cache level (L1/L2 per core, L3 per package).
        4 if e.eax & 0x1f != 0 => {
            let level = (e.eax >> 5) & 7;
            let sharing = if level >= 3 {
                (1 << topo.package_shift()) - 1
            } else {
                (1 << topo.core_shift()) - 1
            };
            let cores = (1 << (topo.package_shift() - topo.core_shift())) - 1;
            e.eax = (e.eax & 0x3fff) | (sharing << 14) | (cores << 26);
        }
        // AMD: cores per package and APIC ID size.
        0x8000_0008 => {
            let nc = per_pkg.saturating_sub(1) & 0xff;
            e.ecx = (e.ecx & !0xf0ff) | nc | (topo.package_shift().max(1) << 12);
        }
        // AMD cache topology: CPUs sharing each cache level.
        0x8000_001d if e.eax & 0x1f != 0 => {
            let level = (e.eax >> 5) & 7;
            let sharing = if level >= 3 {
                (1 << topo.package_shift()) - 1
            } else {
                (1 << topo.core_shift()) - 1
            };
            e.eax = (e.eax & !(0xfff << 14)) | (sharing << 14);
        }
        // AMD extended APIC ID, core ID and threads per core.
        0x8000_001e => {
            e.eax = apic_id;
            e.ebx = (apic_id >> topo.core_shift()) & 0xff | ((topo.threads - 1) << 8);
            e.ecx = 0;
        }
        _ => {}
    }
}

/// The subleaves of leaf 0xB or 0x1F for one CPU.
fn extended_topology(leaf: u32, topo: &Topology, apic_id: u32) -> Vec<kvm_cpuid_entry2> {
    // (level type, shift to the next level, logical CPUs at this level)
    const SMT: u32 = 1;
    const CORE: u32 = 2;
    const DIE: u32 = 5;
    let mut levels = vec![(SMT, topo.core_shift(), topo.threads)];
    if leaf == 0x1f {
        levels.push((CORE, topo.die_shift(), topo.threads * topo.cores));
        levels.push((DIE, topo.package_shift(), topo.per_package()));
    } else {
        levels.push((CORE, topo.package_shift(), topo.per_package()));
    }
    let mut out: Vec<kvm_cpuid_entry2> = levels
        .iter()
        .enumerate()
        .map(|(i, &(kind, shift, count))| kvm_cpuid_entry2 {
            function: leaf,
            index: i as u32,
            flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
            eax: shift,
            ebx: count,
            ecx: (kind << 8) | i as u32,
            edx: apic_id,
            ..Default::default()
        })
        .collect();
    // The terminating invalid level.
    out.push(kvm_cpuid_entry2 {
        function: leaf,
        index: levels.len() as u32,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        ecx: levels.len() as u32,
        edx: apic_id,
        ..Default::default()
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's `qemu64` feature set (the default model).
    const QEMU64: &[&str] = &[
        "fpu", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge", "mca",
        "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "pni", "cx16", "syscall",
        "nx", "lm", "lahf-lm", "svm",
    ];

    fn fake_supported() -> CpuId {
        let e = |function, index, eax, ebx, ecx, edx| kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        CpuId::from_entries(&[
            e(0, 0, 0x1f, 0, 0, 0),
            e(1, 0, 0x800f12, 0x0008_0800, 0xffff_ffff, 0xffff_ffff),
            e(4, 0, 0x121, 0, 0, 0),
            e(4, 1, 0x163, 0, 0, 0),
            e(7, 0, 0, 0xffff_ffff, 0, 0),
            e(0xb, 0, 1, 2, 0x100, 5),
            e(0x4000_0000, 0, 0x4000_0001, 0, 0, 0),
            e(0x8000_0001, 0, 0, 0, 0xffff_ffff, 0xffff_ffff),
            e(0x8000_0007, 0, 0, 0, 0, 1 << 8),
        ])
        .unwrap()
    }

    fn get(c: &CpuId, f: u32, i: u32) -> kvm_cpuid_entry2 {
        *c.as_slice()
            .iter()
            .find(|e| e.function == f && e.index == i)
            .unwrap()
    }

    #[test]
    fn topology_leaves_describe_the_request() {
        let topo = Topology {
            sockets: 2,
            dies: 1,
            cores: 2,
            threads: 1,
        };
        let c = build(&fake_supported(), &CpuSpec::default(), &topo, 3).unwrap();
        let l1 = get(&c, 1, 0);
        assert_eq!(l1.ebx >> 24, 3, "APIC ID");
        assert_eq!((l1.ebx >> 16) & 0xff, 2, "logical CPUs per package");
        assert_ne!(l1.ecx & (1 << 31), 0, "hypervisor bit");
        let smt = get(&c, 0xb, 0);
        let core = get(&c, 0xb, 1);
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8, smt.edx), (0, 1, 1, 3));
        assert_eq!((core.eax, core.ebx, core.ecx >> 8), (1, 2, 2));
        assert_eq!(get(&c, 0xb, 2).ecx >> 8, 0, "terminating level");
        assert_eq!(get(&c, 4, 0).eax >> 26, 1, "two cores per package");
        let sig = get(&c, 0x4000_0000, 0);
        assert_eq!(&sig.ebx.to_le_bytes(), b"KVMK");
    }

    #[test]
    fn invariant_tsc_only_on_request() {
        let topo = Topology::flat(1);
        let c = build(&fake_supported(), &CpuSpec::default(), &topo, 0).unwrap();
        assert_eq!(get(&c, 0x8000_0007, 0).edx & (1 << 8), 0);
        let spec = CpuSpec {
            model: CpuModel::Host { migratable: true },
            flags: vec![("invtsc".into(), true)],
        };
        let c = build(&fake_supported(), &spec, &topo, 0).unwrap();
        assert_ne!(get(&c, 0x8000_0007, 0).edx & (1 << 8), 0);
        let spec = CpuSpec {
            model: CpuModel::Host { migratable: false },
            flags: Vec::new(),
        };
        let c = build(&fake_supported(), &spec, &topo, 0).unwrap();
        assert_ne!(get(&c, 0x8000_0007, 0).edx & (1 << 8), 0, "migratable=off");
    }

    #[test]
    fn usability_against_kvms_set() {
        let s = fake_supported();
        assert!(unavailable_features(&s, &["sse2", "avx2", "lm"]).is_empty());
        // Leaf 0xd is absent from the fake set, as is anything unknown.
        assert_eq!(
            unavailable_features(&s, &["xsaveopt", "frobnicate"]),
            ["xsaveopt", "frobnicate"]
        );
        let host = supported_features(&s);
        assert!(host.contains(&"avx2") && host.contains(&"pni"));
        assert!(!host.contains(&"invtsc") && !host.contains(&"xsaveopt"));
    }

    #[test]
    fn dies_add_leaf_0x1f() {
        let topo = Topology {
            sockets: 1,
            dies: 2,
            cores: 2,
            threads: 2,
        };
        let c = build(&fake_supported(), &CpuSpec::default(), &topo, 0).unwrap();
        let die = get(&c, 0x1f, 2);
        assert_eq!((die.eax, die.ebx, die.ecx >> 8), (3, 8, 5));
    }

    #[test]
    fn flags_and_models() {
        let spec = CpuSpec {
            model: CpuModel::Named(QEMU64),
            flags: vec![("pni".into(), false), ("avx2".into(), true)],
        };
        let c = build(&fake_supported(), &spec, &Topology::flat(1), 0).unwrap();
        assert_eq!(get(&c, 1, 0).ecx & 1, 0, "-pni");
        assert_ne!(get(&c, 1, 0).ecx & (1 << 13), 0, "qemu64 has cx16");
        assert_eq!(get(&c, 1, 0).ecx & (1 << 28), 0, "qemu64 has no avx");
        assert_eq!(get(&c, 7, 0).ebx, 1 << 5, "only the avx2 asked for");
        let bad = CpuSpec {
            model: CpuModel::Host { migratable: true },
            flags: vec![("frobnicate".into(), true)],
        };
        assert_eq!(
            build(&fake_supported(), &bad, &Topology::flat(1), 0).unwrap_err(),
            CpuidError::UnknownFeature("frobnicate".into())
        );
    }
}
