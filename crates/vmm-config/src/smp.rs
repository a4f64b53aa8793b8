//! `-smp`: QEMU's rules for filling in missing topology values (cores
//! preferred over sockets, as on machine types since 6.2) and its errors.

use crate::ConfigError;

/// A resolved CPU topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smp {
    pub cpus: u32,
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
    pub maxcpus: u32,
}

impl Default for Smp {
    fn default() -> Self {
        Smp {
            cpus: 1,
            sockets: 1,
            dies: 1,
            cores: 1,
            threads: 1,
            maxcpus: 1,
        }
    }
}

/// What the user gave; 0 means "not given".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmpRequest {
    pub cpus: Option<u32>,
    pub sockets: Option<u32>,
    pub dies: Option<u32>,
    pub cores: Option<u32>,
    pub threads: Option<u32>,
    pub maxcpus: Option<u32>,
}

/// The most vCPUs the pc machine type accepts (QEMU's max_cpus for pc).
pub const MAX_CPUS: u32 = 288;

impl SmpRequest {
    /// Fills in the missing values and checks the result as QEMU does.
    pub fn resolve(&self) -> Result<Smp, ConfigError> {
        let err = |m: String| ConfigError::new("-smp", m);
        let given = [
            self.cpus,
            self.sockets,
            self.dies,
            self.cores,
            self.threads,
            self.maxcpus,
        ];
        if given.contains(&Some(0)) {
            return Err(err(
                "Invalid CPU topology: CPU topology parameters must be greater than zero".into(),
            ));
        }
        let mut cpus = self.cpus.unwrap_or(0) as u64;
        let mut sockets = self.sockets.unwrap_or(0) as u64;
        let dies = self.dies.unwrap_or(1) as u64;
        let mut cores = self.cores.unwrap_or(0) as u64;
        let mut threads = self.threads.unwrap_or(0) as u64;
        let mut maxcpus = self.maxcpus.unwrap_or(0) as u64;
        if cpus == 0 && maxcpus == 0 {
            sockets = sockets.max(1);
            cores = cores.max(1);
            threads = threads.max(1);
        } else {
            if maxcpus == 0 {
                maxcpus = cpus;
            }
            if cores == 0 {
                sockets = sockets.max(1);
                threads = threads.max(1);
                cores = maxcpus / (sockets * dies * threads);
            } else if sockets == 0 {
                threads = threads.max(1);
                sockets = maxcpus / (dies * cores * threads);
            }
            if threads == 0 {
                threads = maxcpus / (sockets * dies * cores);
            }
        }
        let product = sockets * dies * cores * threads;
        if maxcpus == 0 {
            maxcpus = product;
        }
        if cpus == 0 {
            cpus = maxcpus;
        }
        let hierarchy =
            format!("sockets ({sockets}) * dies ({dies}) * cores ({cores}) * threads ({threads})");
        if product != maxcpus {
            return Err(err(format!(
                "Invalid CPU topology: product of the hierarchy must match maxcpus: \
                 {hierarchy} != maxcpus ({maxcpus})"
            )));
        }
        if maxcpus < cpus {
            return Err(err(format!(
                "Invalid CPU topology: maxcpus must be equal to or greater than smp: \
                 {hierarchy} == maxcpus ({maxcpus}) < smp_cpus ({cpus})"
            )));
        }
        if maxcpus > u64::from(MAX_CPUS) {
            return Err(err(format!(
                "Invalid SMP CPUs {maxcpus}. The max CPUs supported by machine 'pc' is {MAX_CPUS}"
            )));
        }
        // maxcpus above cpus: the VM boots with `cpus` vCPUs; the others
        // would come by hotplug, which rvirt does not do yet.
        Ok(Smp {
            cpus: cpus as u32,
            sockets: sockets as u32,
            dies: dies as u32,
            cores: cores as u32,
            threads: threads as u32,
            maxcpus: maxcpus as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cpus: u32, s: u32, d: u32, c: u32, t: u32, m: u32) -> SmpRequest {
        let o = |v| if v == 0 { None } else { Some(v) };
        SmpRequest {
            cpus: o(cpus),
            sockets: o(s),
            dies: o(d),
            cores: o(c),
            threads: o(t),
            maxcpus: o(m),
        }
    }

    #[test]
    fn fills_in_like_qemu() {
        let s = req(4, 0, 0, 0, 0, 0).resolve().unwrap();
        assert_eq!(
            (s.sockets, s.cores, s.threads),
            (1, 4, 1),
            "cores preferred"
        );
        let s = req(4, 4, 0, 1, 1, 0).resolve().unwrap();
        assert_eq!((s.sockets, s.cores, s.threads), (4, 1, 1));
        let s = req(4, 2, 0, 2, 1, 0).resolve().unwrap();
        assert_eq!((s.cpus, s.sockets, s.cores), (4, 2, 2));
        let s = req(0, 2, 0, 2, 2, 0).resolve().unwrap();
        assert_eq!((s.cpus, s.maxcpus), (8, 8));
        let s = req(8, 2, 2, 0, 1, 0).resolve().unwrap();
        assert_eq!(s.cores, 2);
        let s = req(6, 0, 0, 3, 0, 0).resolve().unwrap();
        assert_eq!((s.sockets, s.threads), (2, 1));
    }

    #[test]
    fn errors_read_like_qemu() {
        assert_eq!(
            req(4, 3, 0, 1, 0, 0).resolve().unwrap_err().to_string(),
            "-smp: Invalid CPU topology: product of the hierarchy must match maxcpus: \
             sockets (3) * dies (1) * cores (1) * threads (1) != maxcpus (4)"
        );
        let zero = SmpRequest {
            cpus: Some(0),
            ..Default::default()
        };
        assert!(zero
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("greater than zero"));
        assert!(req(4, 1, 0, 2, 1, 2)
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("maxcpus"));
        assert!(req(1000, 0, 0, 0, 0, 0)
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("max CPUs"));
        // Fewer vCPUs at boot than the topology holds: accepted (the VM
        // boots with 2; vCPU hotplug would add the rest).
        let s = req(2, 0, 0, 0, 0, 4).resolve().unwrap();
        assert_eq!((s.cpus, s.maxcpus, s.cores), (2, 4, 4));
    }
}
