//! What the host is: name, CPUs, memory (CONNECT_GET_HOSTNAME,
//! NODE_GET_INFO, NODE_GET_CPU_MAP).

use rvirt_remote::calls::NodeGetInfoRet;
use rvirt_remote::xdr::CharArray;

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

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

fn mhz() -> i32 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0, |m| m as i32)
}

pub fn node_info() -> NodeGetInfoRet {
    let cpus = cpus() as i32;
    NodeGetInfoRet {
        model: CharArray::from_str_truncated(std::env::consts::ARCH),
        memory: meminfo_kib(),
        cpus,
        mhz: mhz(),
        nodes: 1,
        sockets: 1,
        cores: cpus,
        threads: 1,
    }
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
