//! `rvirt-xml`: validate, format and convert libvirt domain XML with rvirt's
//! domain model, in the spirit of libvirt's `virt-xml-validate`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rvirt_domain::{derive_argv, DeriveError, Domain, Error, RuntimePaths};

#[derive(Parser)]
#[command(
    name = "rvirt-xml",
    version,
    about = "Check and convert libvirt domain XML"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check each definition; print every problem as FILE:LINE: message.
    Validate {
        /// Domain XML files; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print the filled-in definition as `virsh dumpxml` would.
    Format {
        /// Domain XML file; `-` reads standard input.
        file: String,
        /// Leave out device aliases, as `virsh dumpxml --inactive` does.
        #[arg(long)]
        inactive: bool,
    },
    /// Print the rvirt-vmm command line, one argument per line.
    ToArgv {
        /// Domain XML file; `-` reads standard input.
        file: String,
        /// Directory for the monitor socket, pidfile and log
        /// [default: /run/rvirt/NAME].
        #[arg(long)]
        runtime_dir: Option<PathBuf>,
    },
}

fn read(file: &str) -> Result<String, String> {
    let mut text = String::new();
    let res = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    res.map(|()| text)
        .map_err(|e| format!("{file}: cannot read: {e}"))
}

/// Reads and validates one file, printing its problems on failure.
fn load(file: &str) -> Option<Domain> {
    let text = match read(file) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("{msg}");
            return None;
        }
    };
    match Domain::from_xml(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            report(file, &e);
            None
        }
    }
}

fn report(file: &str, e: &Error) {
    for p in e.problems() {
        eprintln!("{file}:{}: {p}", p.line);
    }
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { files } => {
            let mut ok = true;
            for f in &files {
                if load(f).is_some() {
                    println!("{f}: valid");
                } else {
                    ok = false;
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Format { file, inactive } => {
            let Some(mut d) = load(&file) else {
                return ExitCode::FAILURE;
            };
            d.fill_in();
            if inactive {
                print!("{}", d.to_inactive_xml());
            } else {
                print!("{}", d.to_xml());
            }
            ExitCode::SUCCESS
        }
        Command::ToArgv { file, runtime_dir } => {
            let Some(mut d) = load(&file) else {
                return ExitCode::FAILURE;
            };
            d.fill_in();
            let dir = runtime_dir.unwrap_or_else(|| PathBuf::from("/run/rvirt").join(&d.name));
            match derive_argv(&d, &RuntimePaths::in_dir(dir)) {
                Ok(argv) => {
                    for w in &argv.warnings {
                        eprintln!("{file}: warning: {w}");
                    }
                    for a in &argv.args {
                        println!("{a}");
                    }
                    ExitCode::SUCCESS
                }
                Err(DeriveError::Unsupported(list)) => {
                    for u in list {
                        eprintln!("{file}:{}: {}: {}", u.line, u.device, u.reason);
                    }
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("{file}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn main() -> ExitCode {
    run(Cli::parse())
}
