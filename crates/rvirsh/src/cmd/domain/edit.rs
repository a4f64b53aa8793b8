//! `edit`: the inactive XML in `$VISUAL`/`$EDITOR` (default `vi`), then a
//! define with validation; on failure, virsh's question whether to edit
//! again.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command as Process;

use rvirt_remote::calls::{DomainDefineXmlArgs, DomainDefineXmlFlagsArgs};
use rvirt_remote::consts::xml_flags;
use rvirt_remote::procs;

use super::lifecycle::DEFINE_VALIDATE;
use crate::error::CmdError;
use crate::out::Out;
use crate::session::{By, Session};
use crate::term::{stdin_is_tty, RawMode};

/// What the user answered to "Try again?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Start the editor again.
    Reedit,
    /// Throw the changes away.
    Abort,
    /// Define again as it is.
    Force,
    /// Define again without validation.
    Relax,
}

/// The editor command: `$VISUAL`, `$EDITOR`, else `vi`.
pub fn editor(env: impl Fn(&str) -> Option<String>) -> String {
    env("VISUAL")
        .filter(|s| !s.is_empty())
        .or_else(|| env("EDITOR").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "vi".to_string())
}

/// Characters that let virsh run the editor without a shell.
fn plain_command(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:@/".contains(c))
}

/// How virsh shows the editor's command line in its error, and the
/// process to run: directly when the editor is a plain word, else
/// through `sh -c` (so `EDITOR="code -w"` works).
fn editor_command(ed: &str, path: &Path) -> (String, Process) {
    let file = path.display().to_string();
    if plain_command(ed) {
        let mut p = Process::new(ed);
        p.arg(path);
        (format!("{ed} {file}"), p)
    } else {
        let mut p = Process::new("sh");
        p.arg("-c").arg(format!("{ed} {file}"));
        (format!("sh -c '{ed} {file}'"), p)
    }
}

/// Runs the editor on the file, failing with virsh's wording.
fn run_editor(path: &Path) -> Result<(), CmdError> {
    use std::os::unix::process::ExitStatusExt;
    let ed = editor(|k| std::env::var(k).ok());
    let (shown, mut p) = editor_command(&ed, path);
    let status = p.status().map_err(|e| {
        CmdError::msg(format!(
            "Cannot find '{ed}' in path: {}",
            crate::error::strerror(&e)
        ))
    })?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(CmdError::msg(format!(
            "internal error: Child process ({shown}) unexpected exit status {c}"
        ))),
        (None, Some(sig)) => Err(CmdError::msg(format!(
            "internal error: Child process ({shown}) unexpected fatal signal {sig}"
        ))),
        (None, None) => Err(CmdError::msg(format!(
            "internal error: Child process ({shown}) unexpected exit status"
        ))),
    }
}

/// Interprets one typed key; `None` for keys that ask again.
pub fn answer_for(key: u8, relax_available: bool) -> Option<Answer> {
    match key.to_ascii_lowercase() {
        b'y' => Some(Answer::Reedit),
        b'n' => Some(Answer::Abort),
        b'f' => Some(Answer::Force),
        b'i' if relax_available => Some(Answer::Relax),
        _ => None,
    }
}

/// virsh's question after a failed define; `Abort` without a terminal.
fn ask(out: &Out, relax_available: bool) -> Answer {
    if !stdin_is_tty() {
        return Answer::Abort;
    }
    let choices = if relax_available {
        "[y,n,i,f,?]"
    } else {
        "[y,n,f,?]"
    };
    let raw = RawMode::stdin();
    let mut stdin = std::io::stdin();
    let answer = loop {
        out.print(&format!("\rFailed. Try again? {choices}: "));
        let mut key = [0u8; 1];
        match stdin.read(&mut key) {
            Ok(1) => {}
            _ => break Answer::Abort,
        }
        if key[0] == b'?' {
            let mut help = String::from(
                "\r\ny - yes, start editor again\r\nn - no, throw away my changes\r\n",
            );
            if relax_available {
                help.push_str("i - turn off validation and try to redefine again\r\n");
            }
            help.push_str("f - force, try to redefine again\r\n? - print this help\r\n");
            out.print(&help);
            continue;
        }
        if let Some(a) = answer_for(key[0], relax_available) {
            break a;
        }
    };
    drop(raw);
    out.print("\r\n");
    answer
}

fn print_error(e: &CmdError) {
    let mut err = std::io::stderr().lock();
    for l in e.lines() {
        let _ = writeln!(err, "error: {l}");
    }
}

pub fn edit(s: &mut Session, out: &Out, arg: &str, skip_validate: bool) -> Result<(), CmdError> {
    let dom = s.lookup(arg, By::ANY)?;
    let original = s.xml(&dom, xml_flags::SECURE | xml_flags::INACTIVE)?;
    let mut file = tempfile::Builder::new()
        .prefix("virsh")
        .suffix(".xml")
        .tempfile()
        .map_err(|e| CmdError::msg(format!("failed to create temporary file: {e}")))?;
    file.write_all(original.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| CmdError::msg(format!("failed to write temporary file: {e}")))?;
    let path = file.path().to_path_buf();
    let mut validate = !skip_validate;
    let mut relax_available = validate;
    let mut need_edit = true;
    loop {
        if need_edit {
            run_editor(&path)?;
        }
        let edited = std::fs::read_to_string(&path).map_err(|e| {
            CmdError::msg(format!(
                "Failed to open file '{}': {}",
                path.display(),
                crate::error::strerror(&e)
            ))
        })?;
        if edited == original {
            out.extra(&format!(
                "Domain '{}' XML configuration not changed.\n",
                dom.name
            ));
            return Ok(());
        }
        let defined = if validate {
            s.call::<procs::DomainDefineXmlFlags>(&DomainDefineXmlFlagsArgs {
                xml: edited,
                flags: DEFINE_VALIDATE,
            })
        } else {
            s.call::<procs::DomainDefineXml>(&DomainDefineXmlArgs { xml: edited })
        };
        let err = match defined {
            Ok(r) => {
                out.extra(&format!(
                    "Domain '{}' XML configuration edited.\n",
                    r.dom.name
                ));
                return Ok(());
            }
            Err(e) => CmdError::from(e),
        };
        if !stdin_is_tty() {
            return Err(err);
        }
        print_error(&err);
        match ask(out, relax_available) {
            Answer::Reedit => need_edit = true,
            Answer::Force => need_edit = false,
            Answer::Relax => {
                validate = false;
                relax_available = false;
                need_edit = false;
            }
            // The error was printed already; virsh fails with nothing more.
            Answer::Abort => {
                return Err(CmdError {
                    context: None,
                    cause: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_choice() {
        let env = |k: &str| match k {
            "VISUAL" => Some("nano".to_string()),
            "EDITOR" => Some("ed".to_string()),
            _ => None,
        };
        assert_eq!(editor(env), "nano");
        assert_eq!(editor(|k| (k == "EDITOR").then(|| "ed".into())), "ed");
        assert_eq!(editor(|_| None), "vi");
        assert_eq!(editor(|_| Some(String::new())), "vi");
    }

    #[test]
    fn editor_command_lines() {
        let p = Path::new("/tmp/virshX.xml");
        assert_eq!(editor_command("vi", p).0, "vi /tmp/virshX.xml");
        assert_eq!(
            editor_command("sed -i s/a/b/", p).0,
            "sh -c 'sed -i s/a/b/ /tmp/virshX.xml'"
        );
    }

    #[test]
    fn answers() {
        assert_eq!(answer_for(b'Y', true), Some(Answer::Reedit));
        assert_eq!(answer_for(b'n', true), Some(Answer::Abort));
        assert_eq!(answer_for(b'f', false), Some(Answer::Force));
        assert_eq!(answer_for(b'i', true), Some(Answer::Relax));
        assert_eq!(answer_for(b'i', false), None);
        assert_eq!(answer_for(b'x', true), None);
    }
}
