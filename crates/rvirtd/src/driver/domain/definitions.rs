//! Defining, undefining and creating domains from XML, and autostart.

use std::sync::{Arc, PoisonError};

use rvirt_domain::Domain;
use rvirt_remote::error::{code, from};
use rvirt_remote::event::{defined_detail, undefined_detail, LifecycleEvent};
use rvirt_remote::{NonnullDomain, RemoteError};

use super::registry::{wire_uuid, Entry, Registry, StoredDef};
use super::DomainDriver;

/// Parses and validates a document with the domain model; rejected
/// documents change nothing.
pub fn parse(xml: &str) -> Result<Domain, RemoteError> {
    let mut def = Domain::from_xml(xml).map_err(|e| RemoteError::xml_error(&e.to_string()))?;
    check_name(&def.name)?;
    def.forget_generated_names();
    Ok(def)
}

/// Names become file names: refuse what could escape the directory.
fn check_name(name: &str) -> Result<(), RemoteError> {
    if name.contains('/') {
        return Err(RemoteError::xml_error(&format!(
            "name {name} cannot contain '/'"
        )));
    }
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.starts_with('.')
        || name.contains('\0')
    {
        return Err(RemoteError::xml_error(&format!(
            "invalid domain name '{name}'"
        )));
    }
    Ok(())
}

/// Gives `def` the UUID of the domain of the same name, and refuses a
/// clash of names and UUIDs as libvirt does.
fn reconcile(reg: &Registry, def: &mut Domain) -> Result<(), RemoteError> {
    if let Some(e) = reg.domains.get(&def.name) {
        match def.uuid {
            None => def.uuid = Some(uuid::Uuid::from_bytes(e.uuid.0)),
            Some(u) if wire_uuid(&u) != e.uuid => {
                return Err(RemoteError::operation_failed(&format!(
                    "domain '{}' is already defined with uuid {}",
                    def.name, e.uuid
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(u) = def.uuid {
        let w = wire_uuid(&u);
        if let Some(other) = reg
            .domains
            .values()
            .find(|e| e.uuid == w && e.name != def.name)
        {
            return Err(RemoteError::operation_failed(&format!(
                "domain '{}' already exists with uuid {}",
                other.name, w
            )));
        }
    }
    Ok(())
}

impl DomainDriver {
    /// Names rvirt-vmm as the emulator when the XML names none, as
    /// libvirt writes its default emulator into definitions: clients
    /// show it and pass it back to CONNECT_GET_DOMAIN_CAPABILITIES.
    fn fill_in_emulator(&self, def: &mut Domain) {
        if def.devices.emulator.is_none() {
            def.devices.emulator = Some(self.vmm.to_string_lossy().into_owned());
        }
    }

    /// DOMAIN_DEFINE_XML(_FLAGS): validates, fills in, writes the file
    /// atomically, and makes it the definition for the next start.
    pub fn define(&self, xml: &str) -> Result<NonnullDomain, RemoteError> {
        let mut def = parse(xml)?;
        let (handle, updated) = {
            let mut reg = self.reg();
            reconcile(&reg, &mut def)?;
            def.fill_in();
            self.fill_in_emulator(&mut def);
            let uuid = def
                .uuid
                .map(|u| wire_uuid(&u))
                .ok_or_else(|| RemoteError::internal("the definition has no UUID"))?;
            self.store.save(&def).map_err(|e| {
                RemoteError::new(
                    code::WRITE_FAILED,
                    from::QEMU,
                    Some(&crate::error_chain(&e)),
                )
            })?;
            let name = def.name.clone();
            let def = StoredDef::new(&def);
            let updated = match reg.domains.get_mut(&name) {
                Some(e) => {
                    e.config = Some(def);
                    true
                }
                None => {
                    reg.domains
                        .insert(name.clone(), Entry::new(name.clone(), uuid, Some(def)));
                    false
                }
            };
            (reg.by_name(&name)?.handle(), updated)
        };
        tracing::info!(domain = %handle.name, updated, "domain defined");
        let detail = if updated {
            defined_detail::UPDATED
        } else {
            defined_detail::ADDED
        };
        self.events
            .lifecycle(&handle, LifecycleEvent::Defined as i32, detail);
        Ok(handle)
    }

    /// DOMAIN_UNDEFINE(_FLAGS): removes the definition; a running domain
    /// becomes transient and disappears when it stops.
    pub fn undefine(&self, dom: &NonnullDomain) -> Result<(), RemoteError> {
        // Not while a start of this domain is under way.
        let (job, _) = self.job_of(dom)?;
        let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = {
            let mut reg = self.reg();
            let e = reg.resolve_mut(dom)?;
            if !e.is_persistent() {
                return Err(RemoteError::operation_invalid(
                    "cannot undefine transient domain",
                ));
            }
            self.store.remove(&e.name).map_err(|err| {
                RemoteError::operation_failed(&format!("cannot remove the definition: {err}"))
            })?;
            e.config = None;
            e.autostart = false;
            let handle = e.handle();
            if !e.is_active() {
                let name = e.name.clone();
                reg.domains.remove(&name);
            }
            handle
        };
        tracing::info!(domain = %handle.name, "domain undefined");
        self.events.lifecycle(
            &handle,
            LifecycleEvent::Undefined as i32,
            undefined_detail::REMOVED,
        );
        Ok(())
    }

    /// DOMAIN_CREATE_XML: starts a domain from a document without
    /// defining it (transient), or an inactive persistent domain of the
    /// same name with this definition for this run.
    pub fn create_xml(
        self: &Arc<Self>,
        xml: &str,
        paused: bool,
    ) -> Result<NonnullDomain, RemoteError> {
        let mut def = parse(xml)?;
        let (job, name, added) = {
            let mut reg = self.reg();
            reconcile(&reg, &mut def)?;
            def.fill_in();
            self.fill_in_emulator(&mut def);
            let uuid = def
                .uuid
                .map(|u| wire_uuid(&u))
                .ok_or_else(|| RemoteError::internal("the definition has no UUID"))?;
            let name = def.name.clone();
            let added = !reg.domains.contains_key(&name);
            if added {
                reg.domains
                    .insert(name.clone(), Entry::new(name.clone(), uuid, None));
            }
            let e = reg.by_name(&name)?;
            if e.is_active() {
                return Err(RemoteError::operation_invalid(&format!(
                    "domain '{name}' is already active"
                )));
            }
            (e.job.clone(), name, added)
        };
        let result = {
            let _job = job.lock().unwrap_or_else(PoisonError::into_inner);
            let active = self.reg().by_name(&name).map(|e| e.is_active());
            match active {
                Ok(false) => self.launch(&name, Arc::new(def), paused),
                Ok(true) => Err(RemoteError::operation_invalid(&format!(
                    "domain '{name}' is already active"
                ))),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            if added {
                let mut reg = self.reg();
                if reg
                    .domains
                    .get(&name)
                    .is_some_and(|e| !e.is_active() && !e.is_persistent())
                {
                    reg.domains.remove(&name);
                }
            }
            return Err(e);
        }
        Ok(self.reg().by_name(&name)?.handle())
    }

    /// DOMAIN_SET_AUTOSTART.
    pub fn set_autostart(&self, dom: &NonnullDomain, on: bool) -> Result<(), RemoteError> {
        let mut reg = self.reg();
        let e = reg.resolve_mut(dom)?;
        if !e.is_persistent() {
            return Err(RemoteError::operation_invalid(
                "cannot set autostart for transient domain",
            ));
        }
        self.store.set_autostart(&e.name, on).map_err(|err| {
            RemoteError::operation_failed(&format!("cannot change autostart: {err}"))
        })?;
        e.autostart = on;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_escape_are_refused() {
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("demo-1").is_ok());
    }
}
