//! Where rvirtd keeps things: libvirt's layout with `libvirt` renamed
//! `rvirt`, for system mode, session mode (XDG directories) or one
//! `--root` directory holding the whole system tree (tests, the demo).

use std::io;
use std::path::{Path, PathBuf};

use rvirt_remote::uri::Mode;

/// The directories and files of one daemon instance.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Which URI path (`/system` or `/session`) CONNECT_OPEN accepts.
    pub mode: Mode,
    /// Persistent definitions, `NAME.xml`.
    pub config_dir: PathBuf,
    /// `NAME.xml` symlinks for domains started with the daemon.
    pub autostart_dir: PathBuf,
    /// Runtime state of running domains (`NAME.json`, `NAME/` with the
    /// monitor socket and pid file).
    pub state_dir: PathBuf,
    /// passt's pid files (`NAME/NAME-ALIAS.pid`), as libvirt's passt state
    /// directory: outside the private state directory, since passt writes
    /// its pid file as the VM's user (or nobody), one directory per
    /// domain, given to that user and bound into its passt's jail.
    pub passt_dir: PathBuf,
    /// Per-domain logs, `NAME.log`.
    pub log_dir: PathBuf,
    /// Persistent network definitions, `NAME.xml`.
    pub network_config_dir: PathBuf,
    /// `NAME.xml` symlinks for networks started with the daemon.
    pub network_autostart_dir: PathBuf,
    /// Runtime state of active networks (`NAME.json`: the live definition
    /// and dnsmasq's record; dnsmasq's pid file `NAME.pid`).
    pub network_state_dir: PathBuf,
    /// dnsmasq's configuration (`NAME.conf`), its output (`NAME.log`) and
    /// the leases the lease helper keeps (`BRIDGE.status`), as libvirt's
    /// `/var/lib/libvirt/dnsmasq`.
    pub dnsmasq_dir: PathBuf,
    /// The RPC socket.
    pub socket: PathBuf,
    /// Held (flock) while a daemon serves this tree.
    pub lock_file: PathBuf,
    /// Persistent storage pool definitions, `NAME.xml`.
    pub storage_config_dir: PathBuf,
    /// `NAME.xml` symlinks for pools started with the daemon.
    pub storage_autostart_dir: PathBuf,
    /// The live definitions of running pools, `NAME.xml`.
    pub storage_state_dir: PathBuf,
    /// The `default` pool's directory (system mode).
    pub images_dir: PathBuf,
    /// Cgroups of stopped VMs not yet removed (`CGROUP.json`, the
    /// cgroup's unique name): outside `state_dir`, whose names are
    /// domains'.
    pub cgroup_dir: PathBuf,
}

impl Tree {
    /// The system tree below `root` (`/` for the real system mode).
    pub fn system(root: &Path) -> Self {
        let run = root.join("run/rvirt");
        Tree {
            mode: Mode::System,
            config_dir: root.join("etc/rvirt/qemu"),
            autostart_dir: root.join("etc/rvirt/qemu/autostart"),
            state_dir: run.join("qemu"),
            passt_dir: run.join("passt"),
            log_dir: root.join("var/log/rvirt/qemu"),
            network_config_dir: root.join("etc/rvirt/qemu/networks"),
            network_autostart_dir: root.join("etc/rvirt/qemu/networks/autostart"),
            network_state_dir: run.join("network"),
            dnsmasq_dir: root.join("var/lib/rvirt/dnsmasq"),
            socket: run.join("rvirt-sock"),
            lock_file: run.join("rvirtd.lock"),
            storage_config_dir: root.join("etc/rvirt/storage"),
            storage_autostart_dir: root.join("etc/rvirt/storage/autostart"),
            storage_state_dir: run.join("storage"),
            // Where libvirt's packages put the default pool.
            images_dir: root.join("var/lib/libvirt/images"),
            cgroup_dir: run.join("cgroups"),
        }
    }

    /// The session tree of the current user, under the XDG directories as
    /// libvirt's session daemon lays it out.
    pub fn session() -> io::Result<Self> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "HOME is not set"))?;
        let xdg = |var: &str, fallback: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
        };
        let config_home = xdg("XDG_CONFIG_HOME", ".config").join("rvirt");
        let config = config_home.join("qemu");
        let cache = xdg("XDG_CACHE_HOME", ".cache").join("rvirt/qemu");
        let run = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            Some(p) if p.is_absolute() => p.join("rvirt"),
            _ => cache.join("run"),
        };
        Ok(Tree {
            mode: Mode::Session,
            network_config_dir: config.join("networks"),
            network_autostart_dir: config.join("networks/autostart"),
            network_state_dir: run.join("network"),
            dnsmasq_dir: run.join("dnsmasq"),
            autostart_dir: config.join("autostart"),
            config_dir: config,
            state_dir: run.join("qemu"),
            passt_dir: run.join("passt"),
            log_dir: cache.join("log"),
            socket: run.join("rvirt-sock"),
            lock_file: run.join("rvirtd.lock"),
            storage_config_dir: config_home.join("storage"),
            storage_autostart_dir: config_home.join("storage/autostart"),
            storage_state_dir: run.join("storage"),
            images_dir: xdg("XDG_DATA_HOME", ".local/share").join("rvirt/images"),
            cgroup_dir: run.join("cgroups"),
        })
    }

    /// Creates every directory (0700 for the private ones).
    pub fn create(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        // The socket's directory is searchable by everyone, as
        // /run/libvirt is: the socket's own mode (and --socket-group)
        // decides who may connect.
        if let Some(p) = self.socket.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(p)?;
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        for d in [
            &self.config_dir,
            &self.autostart_dir,
            &self.state_dir,
            &self.cgroup_dir,
            &self.log_dir,
            &self.storage_config_dir,
            &self.storage_autostart_dir,
            &self.storage_state_dir,
            &self.network_config_dir,
            &self.network_autostart_dir,
            &self.network_state_dir,
            &self.dnsmasq_dir,
        ] {
            b.create(d)?;
        }
        Ok(())
    }

    pub fn config_file(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    pub fn autostart_link(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(format!("{name}.xml"))
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// The JSON runtime record of a running domain.
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.json"))
    }

    /// The directory with a running domain's monitor socket and pid file.
    pub fn runtime_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// The files a domain's VMM uses: `monitor.sock` and `vmm.pid` in its
    /// runtime directory, its output in the domain log. The one place these
    /// names are spelled.
    pub fn vmm_paths(&self, name: &str) -> rvirt_domain::RuntimePaths {
        let dir = self.runtime_dir(name);
        rvirt_domain::RuntimePaths {
            monitor_socket: dir.join("monitor.sock"),
            pidfile: dir.join("vmm.pid"),
            log_file: self.log_file(name),
            // Its own directory: a domain's passt, jailed, gets only its
            // own pid files.
            passt_dir: self.passt_dir.join(name),
        }
    }
}
