//! `list`: the table's domains and their states in one
//! CONNECT_GET_ALL_DOMAIN_STATS call (the state group, the daemon
//! filtering with virsh's flags) where the filter is one that call knows;
//! otherwise one CONNECT_LIST_ALL_DOMAINS, then one DOMAIN_GET_STATE per
//! row, pipelined. virsh makes the list call and then waits for each
//! state in turn: 1 + N round trips, which over 1,000 domains cost far
//! more than the work; a pipeline still costs the daemon N calls.
//! Sorted as virsh sorts.

use std::cmp::Ordering;

use rvirt_remote::calls::{
    ConnectGetAllDomainStatsArgs, ConnectListAllDomainsArgs, DomainFlagsArgs, DomainGetMetadataArgs,
};
use rvirt_remote::consts::{list_flags as lf, stats};
use rvirt_remote::event::DomainState;
use rvirt_remote::{procs, NonnullDomain, TypedParamValue};

use crate::cli::ListOpts;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::Session;
use crate::table::Table;

/// `VIR_CONNECT_LIST_DOMAINS_HAS_CHECKPOINT` / `_NO_CHECKPOINT`.
const HAS_CHECKPOINT: u32 = 1 << 14;
const NO_CHECKPOINT: u32 = 1 << 15;

/// `VIR_DOMAIN_METADATA_TITLE`.
const METADATA_TITLE: i32 = 1;

/// The CONNECT_LIST_ALL_DOMAINS flags virsh sends for these options.
pub fn list_flags(o: &ListOpts) -> u32 {
    let mut flags = if o.all {
        lf::ACTIVE | lf::INACTIVE
    } else if o.inactive {
        lf::INACTIVE
    } else {
        lf::ACTIVE
    };
    for (on, f) in [
        (o.persistent, lf::PERSISTENT),
        (o.transient, lf::TRANSIENT),
        (o.with_managed_save, lf::MANAGEDSAVE),
        (o.without_managed_save, lf::NO_MANAGEDSAVE),
        (o.autostart, lf::AUTOSTART),
        (o.no_autostart, lf::NO_AUTOSTART),
        (o.with_snapshot, lf::HAS_SNAPSHOT),
        (o.without_snapshot, lf::NO_SNAPSHOT),
        (o.with_checkpoint, HAS_CHECKPOINT),
        (o.without_checkpoint, NO_CHECKPOINT),
        (o.state_running, lf::RUNNING),
        (o.state_paused, lf::PAUSED),
        (o.state_shutoff, lf::SHUTOFF),
        (o.state_other, lf::OTHER),
    ] {
        if on {
            flags |= f;
        }
    }
    flags
}

/// virsh's order: running domains by id, then inactive ones by name,
/// ignoring case.
pub fn virsh_order(a: &NonnullDomain, b: &NonnullDomain) -> Ordering {
    match (a.id == -1, b.id == -1) {
        (true, true) => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        (false, false) => a.id.cmp(&b.id),
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
    }
}

/// One line of `list --uuid/--id/--name`: the chosen columns in virsh's
/// order (uuid, id, name); `--id` alone leaves inactive domains out.
pub fn short_line(d: &NonnullDomain, uuid: bool, id: bool, name: bool) -> Option<String> {
    let id_word = if d.id == -1 {
        "-".to_string()
    } else {
        d.id.to_string()
    };
    if id && !uuid && !name && d.id == -1 {
        return None;
    }
    let mut cols = Vec::new();
    if uuid {
        cols.push(d.uuid.to_string());
    }
    if id {
        cols.push(id_word);
    }
    if name {
        cols.push(d.name.clone());
    }
    Some(format!("{}\n", cols.join(" ")))
}

/// The word for a DOMAIN_GET_STATE answer (`no state` when it failed).
pub fn state_word(state: Option<i32>) -> &'static str {
    state
        .and_then(DomainState::from_i32)
        .unwrap_or(DomainState::NoState)
        .virsh_name()
}

/// Each domain's DOMAIN_GET_STATE answer (`None` when it failed), with
/// the calls pipelined on the session's connection.
fn states(s: &mut Session, doms: &[NonnullDomain]) -> Vec<Option<i32>> {
    let args: Vec<DomainFlagsArgs> = doms
        .iter()
        .map(|d| DomainFlagsArgs {
            dom: d.clone(),
            flags: 0,
        })
        .collect();
    match s.client.call_many::<procs::DomainGetState>(&args) {
        Ok(r) => r.into_iter().map(|r| r.ok().map(|r| r.state)).collect(),
        // As virsh, a state it cannot get is "no state".
        Err(_) => vec![None; doms.len()],
    }
}

/// The list filters CONNECT_GET_ALL_DOMAIN_STATS applies as
/// CONNECT_LIST_ALL_DOMAINS does (`VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE`
/// to `_OTHER` are the list's first eight bits).
const STATS_FILTERS: u32 = 0xff;

/// The domains `flags` selects with their states, from one
/// CONNECT_GET_ALL_DOMAIN_STATS of the state group; `None` when the
/// filter needs the list call or the daemon refuses (the caller then lists
/// as virsh does).
fn listed_with_states(s: &mut Session, flags: u32) -> Option<Vec<(NonnullDomain, Option<i32>)>> {
    if flags & !STATS_FILTERS != 0 {
        return None;
    }
    let records = s
        .call::<procs::ConnectGetAllDomainStats>(&ConnectGetAllDomainStatsArgs {
            doms: Vec::new(),
            stats: stats::STATE,
            flags,
        })
        .ok()?
        .ret_stats;
    Some(
        records
            .into_iter()
            .map(|r| {
                let state = r.params.iter().find_map(|p| match (&*p.field, &p.value) {
                    ("state.state", TypedParamValue::Int(v)) => Some(*v),
                    _ => None,
                });
                (r.dom, state)
            })
            .collect(),
    )
}

/// The table's rows: each domain with its state (`None`: unknown).
fn rows(s: &mut Session, o: &ListOpts) -> Result<Vec<(NonnullDomain, Option<i32>)>, CmdError> {
    let flags = list_flags(o);
    if let Some(mut rows) = listed_with_states(s, flags) {
        rows.sort_by(|a, b| virsh_order(&a.0, &b.0));
        return Ok(rows);
    }
    let mut doms = s
        .call::<procs::ConnectListAllDomains>(&ConnectListAllDomainsArgs {
            need_results: 1,
            flags,
        })
        .map_err(|e| CmdError::from(e).context("Failed to list domains"))?
        .domains;
    doms.sort_by(virsh_order);
    let states = states(s, &doms);
    Ok(doms.into_iter().zip(states).collect())
}

pub fn list(s: &mut Session, out: &Out, o: &ListOpts) -> Result<(), CmdError> {
    for (on, opt) in [(o.name, "--name"), (o.uuid, "--uuid"), (o.id, "--id")] {
        if on && o.table {
            return Err(CmdError::msg(format!(
                "Options --table and {opt} are mutually exclusive"
            )));
        }
    }
    if o.name || o.uuid || o.id {
        let mut doms = s
            .call::<procs::ConnectListAllDomains>(&ConnectListAllDomainsArgs {
                need_results: 1,
                flags: list_flags(o),
            })
            .map_err(|e| CmdError::from(e).context("Failed to list domains"))?
            .domains;
        doms.sort_by(virsh_order);
        for d in &doms {
            if let Some(line) = short_line(d, o.uuid, o.id, o.name) {
                out.print(&line);
            }
        }
        return Ok(());
    }
    let mut header = vec!["Id", "Name", "State"];
    if o.title {
        header.push("Title");
    }
    let mut t = Table::new(&header);
    for (d, state) in rows(s, o)? {
        let id = if d.id == -1 {
            "-".to_string()
        } else {
            d.id.to_string()
        };
        let mut word = state_word(state);
        if o.managed_save && d.id == -1 {
            let saved = s
                .call::<procs::DomainHasManagedSaveImage>(&DomainFlagsArgs {
                    dom: d.clone(),
                    flags: 0,
                })
                .is_ok_and(|r| r.result > 0);
            if saved {
                word = "saved";
            }
        }
        let mut row = vec![id, d.name.clone(), word.to_string()];
        if o.title {
            let title = s
                .call::<procs::DomainGetMetadata>(&DomainGetMetadataArgs {
                    dom: d,
                    type_: METADATA_TITLE,
                    uri: None,
                    flags: 0,
                })
                .map(|r| r.metadata)
                .unwrap_or_default();
            row.push(title);
        }
        t.row(&row);
    }
    out.print(&t.render(!out.quiet));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(name: &str, id: i32) -> NonnullDomain {
        NonnullDomain {
            name: name.into(),
            uuid: Default::default(),
            id,
        }
    }

    #[test]
    fn flags_as_virsh_sends_them() {
        let mut o = ListOpts::default();
        assert_eq!(list_flags(&o), 1);
        o.all = true;
        assert_eq!(list_flags(&o), 3);
        o.all = false;
        o.inactive = true;
        assert_eq!(list_flags(&o), 2);
        let o = ListOpts {
            all: true,
            state_running: true,
            autostart: true,
            ..Default::default()
        };
        assert_eq!(list_flags(&o), 3 | 16 | 1024);
    }

    #[test]
    fn running_first_by_id_then_names_ignoring_case() {
        let mut v = [
            dom("zeta", -1),
            dom("b", 7),
            dom("Alpha", -1),
            dom("a", 2),
            dom("beta", -1),
        ];
        v.sort_by(virsh_order);
        let names: Vec<&str> = v.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "Alpha", "beta", "zeta"]);
    }

    #[test]
    fn short_lines_as_virsh() {
        let on = NonnullDomain {
            name: "test".into(),
            uuid: "6695eb01-f6a4-8304-79aa-97f2502e193f".parse().unwrap(),
            id: 1,
        };
        let off = dom("rvx1", -1);
        assert_eq!(short_line(&on, false, true, false).as_deref(), Some("1\n"));
        assert_eq!(short_line(&off, false, true, false), None);
        assert_eq!(
            short_line(&off, false, true, true).as_deref(),
            Some("- rvx1\n")
        );
        assert_eq!(
            short_line(&on, true, true, true).as_deref(),
            Some("6695eb01-f6a4-8304-79aa-97f2502e193f 1 test\n")
        );
        assert_eq!(
            short_line(&off, false, false, true).as_deref(),
            Some("rvx1\n")
        );
    }

    #[test]
    fn state_words() {
        assert_eq!(state_word(Some(5)), "shut off");
        assert_eq!(state_word(Some(3)), "paused");
        assert_eq!(state_word(None), "no state");
        assert_eq!(state_word(Some(42)), "no state");
    }
}
