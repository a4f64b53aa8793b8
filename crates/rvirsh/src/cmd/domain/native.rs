//! `domxml-to-native`: the daemon derives the native configuration (for
//! rvirtd, the rvirt-vmm command line) from a domain's XML.

use rvirt_remote::calls::ConnectDomainXmlToNativeArgs;
use rvirt_remote::procs;

use crate::cmd::read_file;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::{By, Session};

pub fn domxml_to_native(
    s: &mut Session,
    out: &Out,
    format: Option<&str>,
    domain: Option<&str>,
    xml_file: Option<&str>,
) -> Result<(), CmdError> {
    let format = format
        .ok_or_else(|| CmdError::msg("command 'domxml-to-native' requires <format> option"))?;
    let domain_xml = match (domain, xml_file) {
        (Some(_), Some(_)) => {
            return Err(CmdError::msg(
                "Options --domain and --xml are mutually exclusive",
            ))
        }
        (Some(d), None) => {
            let dom = s.lookup(d, By::ANY)?;
            s.xml(&dom, 0)?
        }
        (None, Some(f)) => read_file(f)?,
        (None, None) => return Err(CmdError::msg("need either --domain or --xml")),
    };
    let native = s
        .call::<procs::ConnectDomainXmlToNative>(&ConnectDomainXmlToNativeArgs {
            native_format: format.to_string(),
            domain_xml,
            flags: 0,
        })?
        .native_config;
    out.print(&native);
    Ok(())
}
