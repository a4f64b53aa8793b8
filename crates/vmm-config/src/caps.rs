//! What rvirt-vmm accepts for `-machine` and `-cpu`: the one table its
//! command-line parser checks and rvirtd advertises in the capabilities.

/// The machine types, the default (as QEMU's) first.
pub const MACHINES: &[&str] = &["pc", "q35", "microvm"];

/// The CPU models besides `host` and `max`.
pub const NAMED_CPU_MODELS: &[&str] = &["qemu64", "kvm64"];

/// Whether `-machine TYPE` is one rvirt-vmm runs: a listed type, a
/// versioned one of QEMU's (`pc-i440fx-7.2`, `pc-q35-7.2`), or `none`.
pub fn is_known_machine(t: &str) -> bool {
    MACHINES.contains(&t) || t == "none" || t.starts_with("pc-")
}

/// Whether `-cpu MODEL` is one rvirt-vmm emulates.
pub fn is_known_cpu_model(m: &str) -> bool {
    matches!(m, "host" | "max") || NAMED_CPU_MODELS.contains(&m)
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
        for m in ["host", "max", "qemu64", "kvm64"] {
            assert!(is_known_cpu_model(m));
        }
        assert!(!is_known_cpu_model("Skylake-Client"));
    }
}
