//! What the host is: CPUs and memory (NODE_GET_INFO, NODE_GET_CPU_MAP,
//! the capabilities).

use rvirt_remote::calls::NodeGetInfoRet;
use rvirt_remote::xdr::CharArray;

/// Online host CPUs.
pub fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn meminfo_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One logical CPU as /proc/cpuinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalCpu {
    pub id: u32,
    pub socket: u32,
    pub core: u32,
}

/// The host CPU: vendor, model, clock and topology from /proc/cpuinfo,
/// the figures NODE_GET_INFO and the capabilities XML both report.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuInfo {
    /// `Intel`, `AMD` or the raw vendor_id, as libvirt names vendors.
    pub vendor: Option<String>,
    /// The `model name` line.
    pub model: Option<String>,
    pub mhz: i32,
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
    pub cpus: Vec<LogicalCpu>,
}

/// Parses /proc/cpuinfo text; `online` stands in for the CPU list when
/// the text has none (a container that hides it).
pub fn parse_cpuinfo(text: &str, online: u32) -> CpuInfo {
    let field = |block: &str, key: &str| -> Option<String> {
        block.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let num = |block: &str, key: &str| field(block, key).and_then(|v| v.parse::<u32>().ok());
    let blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|b| b.lines().any(|l| l.starts_with("processor")))
        .collect();
    let mut cpus = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let id = num(b, "processor").unwrap_or(i as u32);
        cpus.push(LogicalCpu {
            id,
            socket: num(b, "physical id").unwrap_or(0),
            core: num(b, "core id").unwrap_or(id),
        });
    }
    if cpus.is_empty() {
        cpus = (0..online.max(1))
            .map(|id| LogicalCpu {
                id,
                socket: 0,
                core: id,
            })
            .collect();
    }
    let first = blocks.first().copied().unwrap_or("");
    let vendor = field(first, "vendor_id").map(|v| match v.as_str() {
        "GenuineIntel" => "Intel".to_string(),
        "AuthenticAMD" => "AMD".to_string(),
        _ => v,
    });
    let mut sockets: Vec<u32> = cpus.iter().map(|c| c.socket).collect();
    sockets.sort_unstable();
    sockets.dedup();
    let sockets = sockets.len().max(1) as u32;
    let total = cpus.len() as u32;
    // Guard every division: the figures must multiply back to the CPU
    // count, as libvirt's nodeinfo does, whatever the file claims.
    let cores = num(first, "cpu cores")
        .filter(|&c| c > 0 && c * sockets <= total)
        .unwrap_or((total / sockets).max(1));
    let threads = (total / (sockets * cores)).max(1);
    let mhz = field(first, "cpu MHz")
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |m| m as i32);
    CpuInfo {
        vendor,
        model: field(first, "model name"),
        mhz,
        sockets,
        cores,
        threads,
        cpus,
    }
}

pub fn cpu_info() -> CpuInfo {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    parse_cpuinfo(&text, cpus())
}

/// The host's memory in KiB.
pub fn memory_kib() -> u64 {
    meminfo_kib()
}

pub fn node_info() -> NodeGetInfoRet {
    let info = cpu_info();
    NodeGetInfoRet {
        model: CharArray::from_str_truncated(std::env::consts::ARCH),
        memory: meminfo_kib(),
        cpus: info.cpus.len() as i32,
        mhz: info.mhz,
        nodes: 1,
        sockets: info.sockets as i32,
        cores: info.cores as i32,
        threads: info.threads as i32,
    }
}

/// The host's UUID as libvirt reports it: the SMBIOS one when readable,
/// else the machine id in UUID form.
pub fn host_uuid() -> Option<String> {
    let smbios = std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
        .ok()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| s.len() == 36);
    smbios.or_else(|| {
        let id = std::fs::read_to_string("/etc/machine-id").ok()?;
        let id = id.trim();
        (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| {
            format!(
                "{}-{}-{}-{}-{}",
                &id[..8],
                &id[8..12],
                &id[12..16],
                &id[16..20],
                &id[20..]
            )
        })
    })
}

/// libvirt's `VIR_CPU_MAPLEN`: bytes for a bitmap of `n` CPUs.
pub fn cpu_map_len(n: u32) -> usize {
    n.div_ceil(8) as usize
}

/// A bitmap of `len` bytes with the first `n` CPUs set.
pub fn all_cpus_map(n: u32, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    for i in 0..n as usize {
        if let Some(b) = m.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_SOCKETS: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold\ncpu MHz\t\t: 2100.000\nphysical id\t: 0\ncore id\t\t: 0\ncpu cores\t: 2\n\n\
processor\t: 1\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 0\ncpu cores\t: 2\n\n\
processor\t: 2\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 1\ncpu cores\t: 2\n\n\
processor\t: 3\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: 1\ncpu cores\t: 2\n\n\
processor\t: 4\nvendor_id\t: GenuineIntel\nphysical id\t: 1\ncore id\t\t: 0\ncpu cores\t: 2\n\n\
processor\t: 5\nvendor_id\t: GenuineIntel\nphysical id\t: 1\ncore id\t\t: 0\ncpu cores\t: 2\n\n\
processor\t: 6\nvendor_id\t: GenuineIntel\nphysical id\t: 1\ncore id\t\t: 1\ncpu cores\t: 2\n\n\
processor\t: 7\nvendor_id\t: GenuineIntel\nphysical id\t: 1\ncore id\t\t: 1\ncpu cores\t: 2\n";

    #[test]
    fn topology_from_cpuinfo() {
        let c = parse_cpuinfo(TWO_SOCKETS, 1);
        assert_eq!(c.vendor.as_deref(), Some("Intel"));
        assert_eq!(c.model.as_deref(), Some("Intel(R) Xeon(R) Gold"));
        assert_eq!(c.mhz, 2100);
        assert_eq!((c.sockets, c.cores, c.threads), (2, 2, 2));
        assert_eq!(c.cpus.len(), 8);
        assert_eq!(
            c.cpus[5],
            LogicalCpu {
                id: 5,
                socket: 1,
                core: 0
            }
        );
    }

    #[test]
    fn empty_or_lying_cpuinfo_still_multiplies_back() {
        let c = parse_cpuinfo("", 3);
        assert_eq!((c.cpus.len(), c.sockets, c.cores, c.threads), (3, 1, 3, 1));
        let c = parse_cpuinfo("processor\t: 0\ncpu cores\t: 64\n", 1);
        assert_eq!((c.sockets, c.cores, c.threads), (1, 1, 1));
    }
}
