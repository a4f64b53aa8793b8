//! Prints the path of a built test guest, for scripts and the README's demo:
//! `rvirt-test-guests hello` prints the `hello` guest's path;
//! `rvirt-test-guests` with no argument lists every guest as `name path`.
//!
//! `rvirt-test-guests grub-disk OUT KERNEL CFG` builds a GRUB disk with
//! [`rvirt_test_guests::grub::build_grub_disk`] (the one builder the
//! `grub` tests and bench/grub share): `KERNEL` as `/boot/vmlinuz`, the
//! file `CFG` as `/boot/grub/grub.cfg`.

use std::path::Path;
use std::process::ExitCode;

use rvirt_test_guests::grub::build_grub_disk;
use rvirt_test_guests::Guest;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        for guest in Guest::ALL {
            println!("{} {}", guest.name(), guest.path().display());
        }
        return ExitCode::SUCCESS;
    }
    if args[0] == "grub-disk" {
        return grub_disk(&args[1..]);
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

/// `grub-disk OUT KERNEL CFG`: the disk at OUT, built in a scratch
/// directory beside it (removed after).
fn grub_disk(args: &[String]) -> ExitCode {
    let [out, kernel, cfg] = args else {
        eprintln!("usage: rvirt-test-guests grub-disk OUT KERNEL CFG");
        return ExitCode::FAILURE;
    };
    let cfg = match std::fs::read_to_string(cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvirt-test-guests: cannot read {cfg}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = Path::new(out);
    let work = out.with_extension("work");
    let built = std::fs::create_dir_all(&work)
        .map_err(|e| format!("cannot make {}: {e}", work.display()))
        .and_then(|()| {
            build_grub_disk(Path::new(kernel), &cfg, &work, out).map_err(|e| {
                // The whole chain, once.
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                msg
            })
        });
    let _ = std::fs::remove_dir_all(&work);
    match built {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvirt-test-guests: grub-disk: {e}");
            ExitCode::FAILURE
        }
    }
}
