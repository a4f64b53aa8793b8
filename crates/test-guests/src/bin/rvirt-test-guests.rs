//! Prints the path of a built test guest, for scripts and the README's demo:
//! `rvirt-test-guests hello` prints the `hello` guest's path;
//! `rvirt-test-guests` with no argument lists every guest as `name path`.

use std::process::ExitCode;

use rvirt_test_guests::Guest;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        for guest in Guest::ALL {
            println!("{} {}", guest.name(), guest.path().display());
        }
        return ExitCode::SUCCESS;
    }
    for name in &args {
        match name.parse::<Guest>() {
            Ok(guest) => println!("{}", guest.path().display()),
            Err(e) => {
                eprintln!("rvirt-test-guests: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
