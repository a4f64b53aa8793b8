//! `help`, `help GROUP` and `help COMMAND` in virsh's layout, built from
//! the clap definitions so that they cannot drift from what is parsed.

use clap::CommandFactory;

use crate::cli::Cli;

/// virsh's command groups, restricted to the commands rvirsh has.
const GROUPS: &[(&str, &str, &[&str])] = &[
    (
        "Domain Management",
        "domain",
        &[
            "autostart",
            "console",
            "create",
            "define",
            "destroy",
            "domdisplay",
            "domid",
            "domname",
            "domuuid",
            "domxml-to-native",
            "dumpxml",
            "edit",
            "inject-nmi",
            "reboot",
            "resume",
            "screenshot",
            "shutdown",
            "start",
            "suspend",
            "undefine",
            "vcpuinfo",
            "vncdisplay",
        ],
    ),
    (
        "Domain Monitoring",
        "monitor",
        &[
            "domblklist",
            "domifaddr",
            "domiflist",
            "dominfo",
            "domstate",
            "list",
        ],
    ),
    ("Domain Events", "events", &["event"]),
    (
        "Host and Hypervisor",
        "host",
        &["hostname", "nodeinfo", "uri", "version"],
    ),
    (
        "Networking",
        "network",
        &[
            "net-autostart",
            "net-create",
            "net-define",
            "net-destroy",
            "net-dhcp-leases",
            "net-dumpxml",
            "net-event",
            "net-info",
            "net-list",
            "net-name",
            "net-start",
            "net-undefine",
            "net-update",
            "net-uuid",
        ],
    ),
    (
        "Storage Pool",
        "pool",
        &[
            "pool-autostart",
            "pool-build",
            "pool-create-as",
            "pool-create",
            "pool-define-as",
            "pool-define",
            "pool-delete",
            "pool-destroy",
            "pool-dumpxml",
            "pool-info",
            "pool-list",
            "pool-name",
            "pool-refresh",
            "pool-start",
            "pool-undefine",
            "pool-uuid",
        ],
    ),
    (
        "Storage Volume",
        "volume",
        &[
            "vol-clone",
            "vol-create-as",
            "vol-create",
            "vol-create-from",
            "vol-delete",
            "vol-download",
            "vol-dumpxml",
            "vol-info",
            "vol-key",
            "vol-list",
            "vol-name",
            "vol-path",
            "vol-pool",
            "vol-resize",
            "vol-upload",
            "vol-wipe",
        ],
    ),
    ("Virsh itself", "virsh", &["help"]),
];

/// Positional arguments virsh requires (`<domain>`); other positionals
/// are optional (`[--xml <string>]`).
const REQUIRED: &[&str] = &[
    "domain", "file", "format", "network", "pool", "vol", "name", "type", "capacity", "newname",
];

/// Positionals virsh requires in one command only (`domxml-to-native`'s
/// `--xml` is optional, `net-update`'s `<xml>` is not).
const REQUIRED_IN: &[(&str, &str)] = &[
    ("net-update", "command"),
    ("net-update", "section"),
    ("net-update", "xml"),
];

/// The domain argument's help where virsh words it for the command.
fn domain_help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "start" => "name of the inactive domain",
        "domid" => "domain name or uuid",
        "domname" => "domain id or uuid",
        "domuuid" => "domain id or name",
        _ => return None,
    })
}

/// The network argument's help where virsh words it for the command.
fn network_help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "net-uuid" => "network name",
        "net-name" => "network uuid",
        _ => return None,
    })
}

/// virsh's DESCRIPTION paragraph: the command's `long_about`.
fn description(cmd: &str) -> String {
    Cli::command()
        .find_subcommand(cmd)
        .and_then(|c| c.get_long_about().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn about(cmd: &str) -> String {
    if cmd == "help" {
        return "print help".to_string();
    }
    Cli::command()
        .find_subcommand(cmd)
        .and_then(|c| c.get_about().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn group_text(name: &str, keyword: &str, cmds: &[&str]) -> String {
    let mut s = format!(" {name} (help keyword '{keyword}'):\n");
    for c in cmds {
        s.push_str(&format!("    {c:<30} {}\n", about(c)));
    }
    s
}

/// One option of a command as virsh shows it: the synopsis word and the
/// OPTIONS line.
fn options(name: &str, cmd: &clap::Command) -> Vec<(String, String)> {
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        // Hidden: a second spelling of an option virsh lists once.
        .filter(|a| a.get_id() != "help" && !a.is_hide_set())
        .collect();
    let positional: Vec<String> = args
        .iter()
        .filter(|a| a.is_positional())
        .map(|a| a.get_id().to_string())
        .collect();
    let mut out = Vec::new();
    for a in args {
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let id = a.get_id().to_string();
        let required =
            REQUIRED.contains(&id.as_str()) || REQUIRED_IN.contains(&(name, id.as_str()));
        if a.is_positional() && required {
            let help = domain_help(name)
                .filter(|_| id == "domain")
                .or_else(|| network_help(name).filter(|_| id == "network"))
                .unwrap_or(&help);
            out.push((format!("<{id}>"), format!("[--{id}] <string>  {help}")));
            continue;
        }
        if a.is_positional() {
            // Optional, so virsh shows it as an option taking a value.
            let opt = format!("--{id} <string>");
            out.push((format!("[{opt}]"), format!("{opt:<15}  {help}")));
            continue;
        }
        let Some(long) = a.get_long() else { continue };
        // `--domain` twin of a positional `domain`: shown once, above.
        if positional.iter().any(|p| p == long) {
            continue;
        }
        if a.get_action().takes_values() {
            let number = a
                .get_value_names()
                .is_some_and(|v| v.iter().any(|n| n == "number"));
            let kind = if matches!(long, "timeout" | "offset" | "length") || number {
                "number"
            } else {
                "string"
            };
            let opt = format!("--{long} <{kind}>");
            out.push((format!("[{opt}]"), format!("{opt:<15}  {help}")));
        } else {
            out.push((
                format!("[--{long}]"),
                format!("{:<15}  {help}", format!("--{long}")),
            ));
        }
    }
    out
}

fn command_text(name: &str, cmd: &clap::Command) -> String {
    let opts = options(name, cmd);
    let mut synopsis = name.to_string();
    for (word, _) in &opts {
        synopsis.push(' ');
        synopsis.push_str(word);
    }
    let mut s = format!(
        "  NAME\n    {name} - {}\n\n  SYNOPSIS\n    {synopsis}\n",
        about(name)
    );
    let desc = description(name);
    if !desc.is_empty() {
        s.push_str(&format!("\n  DESCRIPTION\n    {desc}\n"));
    }
    if !opts.is_empty() {
        s.push_str("\n  OPTIONS\n");
        for (_, line) in &opts {
            s.push_str(&format!("    {line}\n"));
        }
    }
    s.push('\n');
    s
}

/// The text of `help [topic]`, or virsh's complaint about the topic.
pub fn help(topic: Option<&str>) -> Result<String, String> {
    let Some(t) = topic else {
        let mut s = String::from("Grouped commands:\n\n");
        for (name, keyword, cmds) in GROUPS {
            s.push_str(&group_text(name, keyword, cmds));
            s.push('\n');
        }
        return Ok(s);
    };
    if let Some((name, keyword, cmds)) = GROUPS.iter().find(|(_, k, _)| *k == t) {
        return Ok(group_text(name, keyword, cmds));
    }
    let root = Cli::command();
    match root.find_subcommand(t) {
        Some(c) => Ok(command_text(t, c)),
        None => Err(format!("command or command group '{t}' doesn't exist")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominfo_as_virsh_shows_it() {
        assert_eq!(
            help(Some("dominfo")).unwrap(),
            "  NAME\n    dominfo - domain information\n\n  SYNOPSIS\n    dominfo <domain>\n\n  \
             DESCRIPTION\n    Returns basic information about the domain.\n\n  OPTIONS\n    \
             [--domain] <string>  domain name, id or uuid\n\n"
        );
        assert_eq!(
            help(Some("uri")).unwrap(),
            "  NAME\n    uri - print the hypervisor canonical URI\n\n  SYNOPSIS\n    uri\n\n"
        );
    }

    #[test]
    fn define_options() {
        let t = help(Some("define")).unwrap();
        assert!(t.contains("    define <file> [--validate]\n"), "{t}");
        assert!(t.contains("    [--file] <string>  file containing an XML domain description\n"));
        assert!(t.contains("    --validate       validate the XML against the schema\n"));
    }

    #[test]
    fn groups() {
        let all = help(None).unwrap();
        assert!(
            all.starts_with("Grouped commands:\n\n Domain Management (help keyword 'domain'):\n")
        );
        assert!(all.contains("    list                           list domains\n"));
        let mon = help(Some("monitor")).unwrap();
        assert!(mon.starts_with(" Domain Monitoring (help keyword 'monitor'):\n    domblklist "));
        assert_eq!(
            help(Some("nosuch")).unwrap_err(),
            "command or command group 'nosuch' doesn't exist"
        );
        // Every command rvirsh parses is in a group.
        for c in Cli::command().get_subcommands() {
            let n = c.get_name();
            assert!(
                GROUPS.iter().any(|(_, _, cmds)| cmds.contains(&n)),
                "{n} is in no help group"
            );
        }
    }
}
