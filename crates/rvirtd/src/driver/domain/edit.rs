//! Device and resource edits: attach, detach and update a device, set the
//! memory, the maximum memory and the vCPU count. A `--config` edit is a
//! redefinition of the persistent definition: the device is put into (or
//! taken out of) the stored XML, and the result goes through the same
//! validation, fill-in (aliases, addresses) and atomic write as any
//! define, so a rejected edit changes nothing. `--live` changes only what
//! rvirt-vmm can change at run time: the balloon target, a CD-ROM's
//! medium ([`super::media`]), and virtio disks and NICs hot-plugged on q35
//! (`hotplug.rs`); everything else is refused with libvirt's "not
//! supported live" errors.

use std::sync::PoisonError;

use rvirt_domain::xml::{self, Element, Node};
use rvirt_remote::consts::affect;
use rvirt_remote::error::{code, from};
use rvirt_remote::{NonnullDomain, RemoteError};

use super::DomainDriver;

/// `VIR_DOMAIN_DEVICE_MODIFY_FORCE` (update-device `--force`).
const MODIFY_FORCE: u32 = 1 << 2;
/// `VIR_DOMAIN_MEM_MAXIMUM` (setmaxmem through SET_MEMORY_FLAGS).
const MEM_MAXIMUM: u32 = 1 << 2;
/// `VIR_DOMAIN_VCPU_MAXIMUM`, `VIR_DOMAIN_VCPU_GUEST`,
/// `VIR_DOMAIN_VCPU_HOTPLUGGABLE`.
const VCPU_MAXIMUM: u32 = 1 << 2;
const VCPU_GUEST: u32 = 1 << 3;
const VCPU_HOTPLUGGABLE: u32 = 1 << 4;

/// Which device edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEdit {
    Attach,
    Detach,
    Update,
}

impl DeviceEdit {
    fn function(self) -> &'static str {
        match self {
            DeviceEdit::Attach => "qemuDomainAttachDeviceFlags",
            DeviceEdit::Detach => "qemuDomainDetachDeviceFlags",
            DeviceEdit::Update => "qemuDomainUpdateDeviceFlags",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            DeviceEdit::Attach => "attach",
            DeviceEdit::Detach => "detach",
            DeviceEdit::Update => "update",
        }
    }
}

fn device_missing(detail: &str) -> RemoteError {
    RemoteError::new(code::DEVICE_MISSING, from::DOMAIN, Some(detail))
}

/// Which of the running and the persistent definition an edit with
/// `flags` (AFFECT_LIVE, AFFECT_CONFIG, or neither: the current one)
/// touches, refused as libvirt's `virDomainObjUpdateModificationImpact`
/// refuses it.
fn impact(flags: u32, active: bool, persistent: bool) -> Result<(bool, bool), RemoteError> {
    let (mut live, mut config) = (flags & affect::LIVE != 0, flags & affect::CONFIG != 0);
    if !live && !config {
        live = active;
        config = !active;
    }
    if live && !active {
        return Err(RemoteError::operation_invalid("domain is not running"));
    }
    if config && !persistent {
        return Err(RemoteError::operation_invalid(
            "transient domains do not have any persistent config",
        ));
    }
    Ok((live, config))
}

/// The one device element of a device document.
fn parse_device(text: &str) -> Result<Element, RemoteError> {
    let e = xml::parse(text).map_err(|e| RemoteError::xml_error(&e.to_string()))?;
    const KINDS: &[&str] = &[
        "disk",
        "interface",
        "serial",
        "console",
        "channel",
        "controller",
        "input",
        "graphics",
        "video",
        "sound",
        "rng",
        "memballoon",
        "filesystem",
        "hostdev",
        "watchdog",
        "panic",
        "redirdev",
        "smartcard",
        "tpm",
        "shmem",
        "memory",
        "iommu",
        "vsock",
        "audio",
        "hub",
        "lease",
        "redirfilter",
        "crypto",
    ];
    if !KINDS.contains(&e.name.as_ref()) {
        return Err(RemoteError::xml_error(&format!(
            "unknown device type '{}'",
            e.name.as_ref() as &str
        )));
    }
    Ok(e)
}

fn target_dev(e: &Element) -> Option<&str> {
    e.child("target").and_then(|t| t.attr("dev"))
}

fn mac(e: &Element) -> Option<String> {
    e.child("mac")
        .and_then(|m| m.attr("address"))
        .map(str::to_ascii_lowercase)
}

/// The index in `devices` of the device `dev` names, as libvirt finds it:
/// a disk by its target, a NIC by its MAC (or the only NIC), anything else
/// by kind and type or model.
fn find(devices: &Element, dev: &Element) -> Result<Option<usize>, RemoteError> {
    let name: &str = dev.name.as_ref();
    let same_kind = |e: &Element| AsRef::<str>::as_ref(&e.name) == name;
    let elements = devices
        .children
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n {
            Node::Element(e) if same_kind(e) => Some((i, e)),
            _ => None,
        });
    let found: Vec<usize> = match name {
        "disk" => {
            let want = target_dev(dev).ok_or_else(|| {
                RemoteError::xml_error("missing <target> dev in the disk definition")
            })?;
            elements
                .filter(|(_, e)| target_dev(e) == Some(want))
                .map(|(i, _)| i)
                .collect()
        }
        "interface" => match mac(dev) {
            Some(want) => elements
                .filter(|(_, e)| mac(e).as_deref() == Some(want.as_str()))
                .map(|(i, _)| i)
                .collect(),
            None => elements.map(|(i, _)| i).collect(),
        },
        _ => {
            let key = |e: &Element| {
                (
                    e.attr("type").map(str::to_string),
                    e.attr("model")
                        .or_else(|| e.child("model").and_then(|m| m.attr("type")))
                        .map(str::to_string),
                )
            };
            elements
                .filter(|(_, e)| key(e) == key(dev))
                .map(|(i, _)| i)
                .collect()
        }
    };
    match found.as_slice() {
        [] => Ok(None),
        [i] => Ok(Some(*i)),
        _ => Err(RemoteError::operation_failed(
            "multiple devices matching the description were found",
        )),
    }
}

/// Applies `edit` of `dev` to the `<devices>` of a definition tree.
pub(super) fn apply(root: &mut Element, edit: DeviceEdit, dev: Element) -> Result<(), RemoteError> {
    let Some(Node::Element(devices)) = root
        .children
        .iter_mut()
        .find(|n| matches!(n, Node::Element(e) if AsRef::<str>::as_ref(&e.name) == "devices"))
    else {
        return Err(RemoteError::internal("the definition has no <devices>"));
    };
    let kind: String = AsRef::<str>::as_ref(&dev.name).to_string();
    let at = find(devices, &dev)?;
    match edit {
        DeviceEdit::Attach => {
            if let (Some(_), Some(t)) = (at.filter(|_| kind == "disk"), target_dev(&dev)) {
                return Err(RemoteError::operation_invalid(&format!(
                    "target {t} already exists"
                )));
            }
            devices.push(dev);
        }
        DeviceEdit::Detach => {
            let i = at.ok_or_else(|| missing(&kind, &dev))?;
            devices.children.remove(i);
        }
        DeviceEdit::Update => {
            let i = at.ok_or_else(|| missing(&kind, &dev))?;
            devices.children[i] = Node::Element(dev);
        }
    }
    Ok(())
}

/// The alias of the device of a live definition tree that `dev` names
/// (as [`apply`] finds it), or libvirt's error when none matches.
pub(super) fn alias_of(root: &mut Element, dev: &Element) -> Result<String, RemoteError> {
    let Some(Node::Element(devices)) = root
        .children
        .iter_mut()
        .find(|n| matches!(n, Node::Element(e) if AsRef::<str>::as_ref(&e.name) == "devices"))
    else {
        return Err(RemoteError::internal("the definition has no <devices>"));
    };
    let kind: String = AsRef::<str>::as_ref(&dev.name).to_string();
    let i = find(devices, dev)?.ok_or_else(|| missing(&kind, dev))?;
    match &devices.children[i] {
        Node::Element(e) => e
            .child("alias")
            .and_then(|a| a.attr("name"))
            .map(str::to_string)
            .ok_or_else(|| RemoteError::operation_failed("the device has no alias")),
        _ => Err(missing(&kind, dev)),
    }
}

fn missing(kind: &str, dev: &Element) -> RemoteError {
    match kind {
        "disk" => device_missing(&format!(
            "no target device {}",
            target_dev(dev).unwrap_or_default()
        )),
        "interface" => match mac(dev) {
            Some(m) => device_missing(&format!("no device matching MAC address {m} found")),
            None => device_missing("no matching network device was found"),
        },
        other => device_missing(&format!("matching {other} device was not found")),
    }
}

fn document(root: &Element) -> String {
    let mut out = String::new();
    xml::write(&mut out, root, 0);
    out
}

impl DomainDriver {
    /// The job lock's guard is held by the caller; this answers whether the
    /// domain runs, whether it is persistent, and its stored XML.
    fn edit_state(&self, dom: &NonnullDomain) -> Result<(bool, Option<String>), RemoteError> {
        let reg = self.reg();
        let e = reg.resolve(dom)?;
        Ok((
            e.is_active(),
            e.config.as_ref().map(|c| c.xml().to_string()),
        ))
    }

    /// DOMAIN_ATTACH/DETACH/UPDATE_DEVICE(_FLAGS).
    pub fn edit_device(
        &self,
        dom: &NonnullDomain,
        xml_text: &str,
        flags: u32,
        edit: DeviceEdit,
    ) -> Result<(), RemoteError> {
        let supported = affect::LIVE
            | affect::CONFIG
            | if edit == DeviceEdit::Update {
                MODIFY_FORCE
            } else {
                0
            };
        RemoteError::check_flags(flags, supported, edit.function())?;
        let dev = parse_device(xml_text)?;
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (active, stored) = self.edit_state(dom)?;
        let (live, config) = impact(flags, active, stored.is_some())?;
        // A CD-ROM's medium is the one device update-device changes live.
        let media = edit == DeviceEdit::Update && super::media::is_removable(&dev);
        let run = if live {
            let run = self.reg().resolve(dom)?.run.clone();
            let run = run.ok_or_else(|| RemoteError::operation_invalid("domain is not running"))?;
            // What cannot change live is refused before anything else.
            if !media
                && (edit == DeviceEdit::Update || !super::hotplug::can_plug(&run.live(), &dev))
            {
                return Err(RemoteError::new(
                    code::OPERATION_UNSUPPORTED,
                    from::QEMU,
                    Some(&format!(
                        "live {} of device '{}' is not supported",
                        edit.verb(),
                        AsRef::<str>::as_ref(&dev.name) as &str
                    )),
                ));
            }
            Some(run)
        } else {
            None
        };
        // The persistent half is checked first and saved last: libvirt
        // changes neither when the live half fails.
        let new_config = if config {
            let stored = stored.unwrap_or_default();
            let mut root = xml::parse(&stored).map_err(|e| {
                RemoteError::internal(&format!("stored definition unreadable: {e}"))
            })?;
            apply(&mut root, edit, dev.clone())?;
            let text = document(&root);
            super::definitions::parse(&text)?;
            Some(text)
        } else {
            None
        };
        if let Some(run) = run {
            let name = self.reg().resolve(dom)?.name.clone();
            match edit {
                _ if media => {
                    self.change_media_live(&name, &run, &dev, flags & MODIFY_FORCE != 0)?
                }
                DeviceEdit::Attach => self.attach_live(&name, &run, &dev)?,
                _ => self.detach_live(&name, &run, &dev)?,
            }
        }
        if let Some(text) = new_config {
            self.define(&text)?;
        }
        Ok(())
    }

    /// SET_MEMORY(_FLAGS) and SET_MAX_MEMORY: `kib` as the balloon target
    /// (`--live`: QMP `balloon`; `--config`: `<currentMemory>`), or with
    /// `maximum` as `<memory>` (config only, as the VMM's RAM is fixed).
    pub fn set_memory(
        &self,
        dom: &NonnullDomain,
        kib: u64,
        flags: u32,
        function: &str,
    ) -> Result<(), RemoteError> {
        RemoteError::check_flags(flags, affect::LIVE | affect::CONFIG | MEM_MAXIMUM, function)?;
        let maximum = flags & MEM_MAXIMUM != 0;
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (active, stored) = self.edit_state(dom)?;
        let (live, config) = impact(flags & !MEM_MAXIMUM, active, stored.is_some())?;
        if maximum && live {
            return Err(RemoteError::new(
                code::OPERATION_INVALID,
                from::QEMU,
                Some("cannot resize the maximum memory on an active domain"),
            ));
        }
        let mut def = match &stored {
            Some(x) if config => Some(super::definitions::parse(x)?),
            _ => None,
        };
        if let Some(d) = def.as_mut() {
            if maximum {
                if kib == 0 {
                    return Err(RemoteError::invalid_arg(
                        "memory size must be greater than zero",
                    ));
                }
                d.memory_kib = kib;
                // libvirt lowers the balloon target with the maximum.
                if d.current_memory_kib.is_none_or(|c| c > kib) {
                    d.current_memory_kib = Some(kib);
                }
            } else {
                if kib > d.memory_kib {
                    return Err(RemoteError::invalid_arg(
                        "cannot set memory higher than max memory",
                    ));
                }
                d.current_memory_kib = Some(kib);
            }
        }
        if live {
            let (_, run) = self.running(dom)?;
            if kib > run.live().memory_kib {
                return Err(RemoteError::invalid_arg(
                    "cannot set memory higher than max memory",
                ));
            }
            if run
                .live()
                .devices
                .others
                .iter()
                .all(|o| o.kind() != "memballoon" || o.model() == Some("none"))
            {
                return Err(RemoteError::new(
                    code::OPERATION_INVALID,
                    from::QEMU,
                    Some("Unable to change memory of active domain without the balloon device and guest OS balloon driver"),
                ));
            }
            run.qmp
                .execute(
                    "balloon",
                    Some(serde_json::json!({ "value": kib.saturating_mul(1024) })),
                )
                .map_err(|e| {
                    RemoteError::operation_failed(&format!("balloon: {}", crate::error_chain(&e)))
                })?;
        }
        if let Some(d) = def {
            self.define(&d.to_inactive_xml())?;
        }
        Ok(())
    }

    /// SET_MEMORY_STATS_PERIOD: how often the balloon asks the guest for
    /// its statistics (`--live`: QMP `qom-set`; `--config`: `<memballoon>`'s
    /// `<stats period='N'/>`, none for 0), with libvirt's checks.
    pub fn set_memory_stats_period(
        &self,
        dom: &NonnullDomain,
        period: i32,
        flags: u32,
    ) -> Result<(), RemoteError> {
        RemoteError::check_flags(
            flags,
            affect::LIVE | affect::CONFIG,
            "qemuDomainSetMemoryStatsPeriod",
        )?;
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (active, stored) = self.edit_state(dom)?;
        let (live, config) = impact(flags, active, stored.is_some())?;
        let Ok(secs) = u32::try_from(period) else {
            return Err(RemoteError::invalid_arg(
                "period parameter must not be negative",
            ));
        };
        let no_balloon = || {
            RemoteError::new(
                code::INTERNAL_ERROR,
                from::QEMU,
                Some("No memory balloon device configured, can not set the collection period"),
            )
        };
        let mut def = match &stored {
            Some(x) if config => Some(super::definitions::parse(x)?),
            _ => None,
        };
        if let Some(d) = def.as_mut() {
            let balloon = d
                .devices
                .others
                .iter_mut()
                .find(|o| o.kind() == "memballoon" && o.model() != Some("none"))
                .ok_or_else(no_balloon)?;
            balloon.element.take_child("stats");
            if secs > 0 {
                let stats = Element::new("stats").with_attr("period", Some(secs.to_string()));
                // Where libvirt writes it: first, before alias and address.
                let before = ["alias", "address"]
                    .into_iter()
                    .find(|n| balloon.element.child(n).is_some())
                    .unwrap_or("driver");
                balloon.element.insert_before(before, stats);
            }
        }
        if live {
            let (_, run) = self.running(dom)?;
            if !super::memstats::has_balloon(&run.live()) {
                return Err(no_balloon());
            }
            super::memstats::set_period(&run.qmp, secs).map_err(|e| {
                tracing::warn!(error = %crate::error_chain(&e), "qom-set guest-stats-polling-interval");
                RemoteError::operation_invalid("unable to set balloon driver collection period")
            })?;
        }
        if let Some(d) = def {
            self.define(&d.to_inactive_xml())?;
        }
        Ok(())
    }

    /// SET_VCPUS(_FLAGS): the vCPU count of the persistent definition
    /// (`--config`, `--maximum`); rvirt-vmm has no vCPU hot-plug, so a live
    /// change is refused as libvirt refuses it where QEMU cannot.
    pub fn set_vcpus(
        &self,
        dom: &NonnullDomain,
        n: u32,
        flags: u32,
        function: &str,
    ) -> Result<(), RemoteError> {
        RemoteError::check_flags(
            flags,
            affect::LIVE | affect::CONFIG | VCPU_MAXIMUM | VCPU_GUEST | VCPU_HOTPLUGGABLE,
            function,
        )?;
        if flags & VCPU_GUEST != 0 {
            self.reg().resolve(dom)?;
            return Err(super::calls::agent_not_configured());
        }
        if n == 0 {
            return Err(RemoteError::invalid_arg("nvcpus must not be zero"));
        }
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let (active, stored) = self.edit_state(dom)?;
        let maximum = flags & VCPU_MAXIMUM != 0;
        let (live, config) = impact(
            flags & (affect::LIVE | affect::CONFIG),
            active,
            stored.is_some(),
        )?;
        if live {
            return Err(RemoteError::new(
                code::OPERATION_UNSUPPORTED,
                from::QEMU,
                Some(if maximum {
                    "cannot set the maximum vCPU count on a live domain"
                } else {
                    "live vCPU hot-plug is not supported: rvirt-vmm has no CPU hot-plug"
                }),
            ));
        }
        if config {
            let mut d = super::definitions::parse(&stored.unwrap_or_default())?;
            if maximum {
                // The vCPUs online at boot stay as they were, up to the
                // new maximum (libvirt writes `current='1'` then).
                let current = d.vcpu.current.unwrap_or(d.vcpu.count);
                d.vcpu.count = n;
                d.vcpu.current = (current < n).then_some(current);
            } else {
                if n > d.vcpu.count {
                    return Err(RemoteError::invalid_arg(&format!(
                        "requested vcpus is greater than max allowable vcpus for the persistent domain: {n} > {}",
                        d.vcpu.count
                    )));
                }
                d.vcpu.current = (n != d.vcpu.count).then_some(n);
            }
            d.validate()
                .map_err(|e| RemoteError::xml_error(&e.to_string()))?;
            self.define(&d.to_inactive_xml())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEF: &str = "<domain type='kvm'><name>d</name><devices>\
        <disk type='file' device='disk'><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
        <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/></interface>\
        </devices></domain>";

    fn edit(e: DeviceEdit, dev: &str) -> Result<String, RemoteError> {
        let mut root = xml::parse(DEF).unwrap();
        apply(&mut root, e, parse_device(dev)?)?;
        Ok(document(&root))
    }

    #[test]
    fn devices_found_as_libvirt_finds_them() {
        let disk = "<disk type='file' device='disk'><source file='/b'/><target dev='vdb' bus='virtio'/></disk>";
        assert!(edit(DeviceEdit::Attach, disk).unwrap().contains("/b"));
        let dup = disk.replace("vdb", "vda");
        assert_eq!(
            edit(DeviceEdit::Attach, &dup).unwrap_err().to_string(),
            "Requested operation is not valid: target vda already exists"
        );
        let out = edit(DeviceEdit::Detach, &dup).unwrap();
        assert!(!out.contains("vda"), "{out}");
        assert_eq!(
            edit(DeviceEdit::Detach, disk).unwrap_err().to_string(),
            "device not found: no target device vdb"
        );
        let out = edit(DeviceEdit::Update, &dup).unwrap();
        assert!(out.contains("/b") && !out.contains("/a"), "{out}");
        let nic = "<interface type='bridge'><mac address='52:54:00:00:00:01'/></interface>";
        assert!(!edit(DeviceEdit::Detach, nic).unwrap().contains("interface"));
        assert_eq!(
            edit(DeviceEdit::Detach, &nic.replace(":01", ":02"))
                .unwrap_err()
                .code,
            code::DEVICE_MISSING
        );
        assert_eq!(
            edit(DeviceEdit::Attach, "<frobnicator/>").unwrap_err().code,
            code::XML_ERROR
        );
        assert_eq!(
            edit(DeviceEdit::Attach, "<disk").unwrap_err().code,
            code::XML_ERROR
        );
    }

    #[test]
    fn impact_as_libvirt_resolves_it() {
        assert_eq!(impact(0, true, true).unwrap(), (true, false));
        assert_eq!(impact(0, false, true).unwrap(), (false, true));
        assert_eq!(impact(3, true, true).unwrap(), (true, true));
        assert!(impact(affect::LIVE, false, true).is_err());
        assert!(impact(affect::CONFIG, true, false).is_err());
    }
}
