//! Time-limited differential fuzzing of pgrw's classifier against PostgreSQL's
//! parser, for machines without a nightly toolchain (cargo-fuzz's libFuzzer
//! needs one). Mutates corpus statements (see `pgrw_oracle::mutate`) and
//! reports every text PostgreSQL parses and judges writing/locking/session-
//! changing while pgrw calls it replica-eligible, plus lexer disagreements.
//!
//! `cargo run -p pgrw-oracle --release --bin difffuzz -- --seconds 600 [--seed N] [--findings FILE]`
//! Exits 1 when it found an unsafe routing or a classifier panic.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pgrw_core::FunctionCatalog;
use pgrw_oracle::differential::{Outcome, check};
use pgrw_oracle::load_corpus;
use pgrw_oracle::mutate::{Rng, mutate};
use pgrw_oracle::tokens::compare_tokens;

/// Command-line settings.
struct Settings {
    seconds: u64,
    seed: u64,
    findings: Option<String>,
}

fn parse_settings() -> Result<Settings, String> {
    let mut settings = Settings {
        seconds: 60,
        seed: 0,
        findings: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => {
                settings.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--seed" => settings.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--findings" => settings.findings = Some(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other}; use --seconds N --seed N --findings FILE"
                ));
            }
        }
    }
    if settings.seed == 0 {
        settings.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
    }
    Ok(settings)
}

/// Counters and distinct findings of one run.
#[derive(Default)]
struct Tally {
    execs: u64,
    parsed: u64,
    judged_primary: u64,
    judged_read: u64,
    read_but_pgrw_primary: u64,
    unsafe_sql: BTreeSet<String>,
    panics: BTreeSet<String>,
    token_mismatches: BTreeSet<String>,
}

fn main() -> ExitCode {
    let settings = match parse_settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("difffuzz: {message}");
            return ExitCode::from(2);
        }
    };
    let corpus: Vec<String> = load_corpus().into_iter().map(|entry| entry.sql).collect();
    let catalog = FunctionCatalog::builtin();
    let mut rng = Rng::new(settings.seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(settings.seconds);
    let mut next_report = started + Duration::from_secs(60);
    println!(
        "difffuzz: seed {}, {} corpus statements, {} s",
        settings.seed,
        corpus.len(),
        settings.seconds
    );

    while Instant::now() < deadline {
        for _ in 0..256 {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            let mutant = mutate(&mut rng, base, other);
            run_one(&mutant, &catalog, &mut tally);
        }
        if Instant::now() >= next_report {
            println!(
                "  {:>5} s: {} execs, {} parsed, {} unsafe",
                started.elapsed().as_secs(),
                tally.execs,
                tally.parsed,
                tally.unsafe_sql.len()
            );
            next_report += Duration::from_secs(60);
        }
    }
    report(&settings, &tally, started.elapsed())
}

fn run_one(sql: &str, catalog: &FunctionCatalog, tally: &mut Tally) {
    tally.execs += 1;
    match check(sql.as_bytes(), catalog) {
        Outcome::NotSql => {}
        Outcome::Agree {
            effect,
            replica_eligible,
        } => {
            tally.parsed += 1;
            match effect {
                pgrw_oracle::Effect::Read => {
                    tally.judged_read += 1;
                    if !replica_eligible {
                        tally.read_but_pgrw_primary += 1;
                    }
                }
                pgrw_oracle::Effect::Primary(_) | pgrw_oracle::Effect::MaybeWrites(_) => {
                    tally.judged_primary += 1
                }
                pgrw_oracle::Effect::Neutral(_) => {}
            }
        }
        Outcome::Unsafe(finding) => {
            tally.parsed += 1;
            tally.judged_primary += 1;
            if tally.unsafe_sql.insert(finding.sql.clone()) && tally.unsafe_sql.len() <= 50 {
                println!("UNSAFE {finding}");
            }
        }
        Outcome::ClassifierPanicked => {
            if tally.panics.insert(sql.to_owned()) {
                println!("PANIC {sql:?}");
            }
        }
    }
    if let Ok(Some(mismatch)) = compare_tokens(sql)
        && tally.token_mismatches.len() < 10_000
        && tally.token_mismatches.insert(sql.to_owned())
        && tally.token_mismatches.len() <= 20
    {
        println!("TOKENS {sql:?}: {mismatch}");
    }
}

fn report(settings: &Settings, tally: &Tally, elapsed: Duration) -> ExitCode {
    println!(
        "difffuzz: {} execs in {:.0} s ({:.0}/s), {} parsed by PostgreSQL ({} judged primary, {} judged read, {} of those kept on the primary by pgrw); \
         {} unsafe replica routings, {} classifier panics, {} texts with token mismatches",
        tally.execs,
        elapsed.as_secs_f64(),
        tally.execs as f64 / elapsed.as_secs_f64().max(0.001),
        tally.parsed,
        tally.judged_primary,
        tally.judged_read,
        tally.read_but_pgrw_primary,
        tally.unsafe_sql.len(),
        tally.panics.len(),
        tally.token_mismatches.len(),
    );
    if let Some(path) = &settings.findings {
        let written = std::fs::File::create(path).and_then(|mut file| {
            for (kind, set) in [
                ("unsafe", &tally.unsafe_sql),
                ("panic", &tally.panics),
                ("tokens", &tally.token_mismatches),
            ] {
                for sql in set {
                    writeln!(file, "{}", serde_json::json!({ "kind": kind, "sql": sql }))?;
                }
            }
            Ok(())
        });
        if let Err(error) = written {
            eprintln!("difffuzz: writing {path}: {error}");
        }
    }
    if tally.unsafe_sql.is_empty() && tally.panics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
