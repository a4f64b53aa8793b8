//! Times parse + validate + fill-in + derive over every `*.xml` in a
//! directory (files are read into memory first). Used by bench/domain/run.sh.
//!
//! Usage: bench_domains DIR [PASSES]
//!
//! Prints the fastest and the median pass: on a shared machine the fastest
//! pass is the best estimate of the uncontended cost.

use std::time::{Duration, Instant};

use rvirt_domain::{derive_argv, Domain, RuntimePaths};

/// Runs `f` `passes` times; returns (fastest, median) per item in µs.
fn time(passes: usize, items: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<Duration> = (0..passes)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    t.sort();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / items as f64;
    (per(t[0]), per(t[passes / 2]))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: bench_domains DIR [PASSES]");
    let passes: usize = args
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(21)
        .max(1);
    let mut docs: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| std::fs::read_to_string(p).expect("read file"))
        .collect();
    docs.sort();
    let n = docs.len();
    let paths = RuntimePaths::in_dir("/run/rvirt/bench");

    let (mut derived, mut refused, mut invalid) = (0, 0, 0);
    for doc in &docs {
        match Domain::from_xml(doc) {
            Ok(mut d) => {
                d.fill_in();
                match derive_argv(&d, &paths) {
                    Ok(_) => derived += 1,
                    Err(_) => refused += 1,
                }
            }
            Err(_) => invalid += 1,
        }
    }

    let (best, median) = time(passes, n, || {
        for doc in &docs {
            if let Ok(mut d) = Domain::from_xml(doc) {
                d.fill_in();
                let _ = std::hint::black_box(derive_argv(&d, &paths));
            }
        }
    });

    let (tree_us, _) = time(passes, n, || {
        for doc in &docs {
            let _ = std::hint::black_box(rvirt_domain::xml::parse(doc));
        }
    });
    let parsed: Vec<Domain> = docs
        .iter()
        .filter_map(|d| Domain::from_xml(d).ok())
        .collect();
    let (parse_us, _) = time(passes, n, || {
        for doc in &docs {
            let _ = std::hint::black_box(Domain::from_xml(doc));
        }
    });
    let mut filled = parsed.clone();
    for d in &mut filled {
        d.fill_in();
    }
    let (derive_us, _) = time(passes, n, || {
        for d in &filled {
            let _ = std::hint::black_box(derive_argv(d, &paths));
        }
    });
    let (write_us, _) = time(passes, n, || {
        for d in &filled {
            std::hint::black_box(d.to_xml());
        }
    });

    println!(
        "rvirt: {n} definitions ({derived} derived, {refused} refused as unsupported, {invalid} invalid), {passes} passes"
    );
    println!(
        "rvirt: parse+validate+fill-in+derive: fastest pass {best:.1} us, median {median:.1} us per definition"
    );
    println!(
        "rvirt stages (fastest pass): parse+validate {parse_us:.1} us (of which the XML tree {tree_us:.1} us), derive {derive_us:.1} us; to_xml {write_us:.1} us"
    );
    println!("rvirt_us_per_def={best:.2}");
}
