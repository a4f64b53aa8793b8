//! CPU topology and APIC ID assignment.
//!
//! APIC IDs are built from bit fields as on real hardware (and as QEMU does):
//! thread, core, die and socket numbers each get the fewest bits that hold
//! their count, so a guest reading CPUID leaf 0xB/0x1F can split an APIC ID
//! back into its parts.

/// Sockets × dies × cores × threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

fn bits_for(count: u32) -> u32 {
    // ceil(log2(count)); 0 for a count of 1.
    32 - count.saturating_sub(1).leading_zeros()
}

impl Topology {
    /// A machine of `cpus` single-core sockets, QEMU's default layout.
    pub fn flat(cpus: u32) -> Self {
        Topology {
            sockets: cpus,
            dies: 1,
            cores: 1,
            threads: 1,
        }
    }

    /// Logical CPUs in the whole machine.
    pub fn cpus(&self) -> u32 {
        self.sockets * self.dies * self.cores * self.threads
    }

    /// Bits to shift an APIC ID right to get the core number.
    pub fn core_shift(&self) -> u32 {
        bits_for(self.threads)
    }

    /// Bits to shift an APIC ID right to get the die number.
    pub fn die_shift(&self) -> u32 {
        self.core_shift() + bits_for(self.cores)
    }

    /// Bits to shift an APIC ID right to get the socket (package) number.
    pub fn package_shift(&self) -> u32 {
        self.die_shift() + bits_for(self.dies)
    }

    /// Logical CPUs in one package.
    pub fn per_package(&self) -> u32 {
        self.dies * self.cores * self.threads
    }

    /// The APIC ID of the CPU with index `cpu` (0-based, in creation order).
    pub fn apic_id(&self, cpu: u32) -> u32 {
        let thread = cpu % self.threads;
        let core = cpu / self.threads % self.cores;
        let die = cpu / (self.threads * self.cores) % self.dies;
        let socket = cpu / self.per_package();
        (socket << self.package_shift())
            | (die << self.die_shift())
            | (core << self.core_shift())
            | thread
    }

    /// (socket, die, core, thread) of the CPU with index `cpu`.
    pub fn position(&self, cpu: u32) -> (u32, u32, u32, u32) {
        (
            cpu / self.per_package(),
            cpu / (self.threads * self.cores) % self.dies,
            cpu / self.threads % self.cores,
            cpu % self.threads,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apic_ids_pack_fields() {
        let t = Topology {
            sockets: 2,
            dies: 1,
            cores: 2,
            threads: 1,
        };
        let ids: Vec<u32> = (0..4).map(|c| t.apic_id(c)).collect();
        assert_eq!(ids, vec![0, 1, 2, 3]);
        let t = Topology {
            sockets: 2,
            dies: 1,
            cores: 3,
            threads: 2,
        };
        // 2 threads -> 1 bit, 3 cores -> 2 bits: socket 1 starts at 8.
        assert_eq!(t.package_shift(), 3);
        assert_eq!(t.apic_id(6), 8);
        assert_eq!(t.apic_id(5), 5);
        assert_eq!(t.position(7), (1, 0, 0, 1));
        assert_eq!(Topology::flat(4).apic_id(3), 3);
        assert_eq!(Topology::flat(1).package_shift(), 0);
    }
}
