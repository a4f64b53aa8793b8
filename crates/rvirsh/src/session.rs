//! One connection to the daemon, and finding domains by name, id or UUID
//! the way virsh does (`virshLookupDomainBy`).

use rvirt_remote::calls::{
    DomainArgs, DomainFlagsArgs, DomainLookupByIdArgs, DomainLookupByNameArgs,
    DomainLookupByUuidArgs,
};
use rvirt_remote::{procs, Client, ClientError, NonnullDomain, RemoteProcedure, Uuid};

use crate::error::CmdError;
use crate::target::Target;

/// Which kinds of domain argument a command accepts (virsh's
/// `VIRSH_BYID | VIRSH_BYUUID | VIRSH_BYNAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct By {
    pub id: bool,
    pub uuid: bool,
    pub name: bool,
}

impl By {
    /// Most commands: id, UUID or name.
    pub const ANY: By = By {
        id: true,
        uuid: true,
        name: true,
    };
    /// Commands on inactive domains (`start`, `domid`): no ids.
    pub const NAME_UUID: By = By {
        id: false,
        uuid: true,
        name: true,
    };
    /// `domname`: an id or a UUID.
    pub const ID_UUID: By = By {
        id: true,
        uuid: true,
        name: false,
    };
    /// `domuuid`: an id or a name.
    pub const ID_NAME: By = By {
        id: true,
        uuid: false,
        name: true,
    };
}

/// An open connection.
pub struct Session {
    pub client: Client,
    pub target: Target,
}

impl Session {
    /// Connects and runs virsh's handshake, keepalive included: the
    /// client's reader thread answers the daemon's PINGs even while an
    /// editor is open, and PINGs a silent daemon as virsh does.
    pub fn open(target: Target) -> Result<Self, ClientError> {
        let client = Client::connect_path(&target.socket, &target.open_name)?;
        Ok(Session { client, target })
    }

    /// Calls a procedure.
    pub fn call<P: RemoteProcedure>(&mut self, args: &P::Args) -> Result<P::Ret, ClientError> {
        self.client.call::<P>(args)
    }

    /// Finds a domain as virsh does: see [`lookup_plan`]; any failure is
    /// reported only as `failed to get domain 'x'`.
    pub fn lookup(&mut self, arg: &str, by: By) -> Result<NonnullDomain, CmdError> {
        for step in lookup_plan(arg, by) {
            let found = match step {
                Step::Id(id) => self.call::<procs::DomainLookupById>(&DomainLookupByIdArgs { id }),
                Step::Uuid(uuid) => {
                    self.call::<procs::DomainLookupByUuid>(&DomainLookupByUuidArgs { uuid })
                }
                Step::Name(name) => {
                    self.call::<procs::DomainLookupByName>(&DomainLookupByNameArgs { name })
                }
            };
            if let Ok(r) = found {
                return Ok(r.dom);
            }
        }
        Err(CmdError::msg(format!("failed to get domain '{arg}'")))
    }

    /// The domain's XML description.
    pub fn xml(&mut self, dom: &NonnullDomain, flags: u32) -> Result<String, ClientError> {
        Ok(self
            .call::<procs::DomainGetXmlDesc>(&DomainFlagsArgs {
                dom: dom.clone(),
                flags,
            })?
            .xml)
    }

    /// `{ dom }` arguments.
    pub fn dom_args(dom: &NonnullDomain) -> DomainArgs {
        DomainArgs { dom: dom.clone() }
    }

    /// Ends the session as virsh does; errors at this point change nothing
    /// for the user.
    pub fn close(self) {
        let _ = self.client.close();
    }
}

/// One lookup virsh would try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Id(i32),
    Uuid(Uuid),
    Name(String),
}

/// The lookups virsh tries for a domain argument, in order: a whole
/// string that is a non-negative integer (`virStrToLong_i`) by id, a
/// 36-character UUID by UUID, then the string by name.
pub fn lookup_plan(arg: &str, by: By) -> Vec<Step> {
    let mut steps = Vec::new();
    if by.id {
        if let Some(id) = arg.parse::<i32>().ok().filter(|&i| i >= 0) {
            steps.push(Step::Id(id));
        }
    }
    if by.uuid && arg.len() == 36 {
        if let Ok(u) = arg.parse::<Uuid>() {
            steps.push(Step::Uuid(u));
        }
    }
    if by.name {
        steps.push(Step::Name(arg.to_string()));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_virsh() {
        assert_eq!(
            lookup_plan("3", By::ANY),
            vec![Step::Id(3), Step::Name("3".into())]
        );
        assert_eq!(lookup_plan("3", By::ID_UUID), vec![Step::Id(3)]);
        assert_eq!(lookup_plan("-1", By::ANY), vec![Step::Name("-1".into())]);
        assert_eq!(
            lookup_plan("3x", By::NAME_UUID),
            vec![Step::Name("3x".into())]
        );
        let u = "6695eb01-f6a4-8304-79aa-97f2502e193f";
        assert_eq!(
            lookup_plan(u, By::ANY),
            vec![Step::Uuid(u.parse().unwrap()), Step::Name(u.into())]
        );
        assert_eq!(lookup_plan(u, By::ID_NAME), vec![Step::Name(u.into())]);
        assert!(lookup_plan("demo", By::ID_UUID).is_empty());
    }
}
