//! The drafting benchmark: per persona and N, draft from N observations,
//! then score the drafted Cedar policy on held-out legitimate calls and on
//! out-of-scope calls. Prints a Markdown table (and `--json` lines).
//!
//! `drafting-bench [--n 100,1000,10000] [--held-out 2000] [--oos 600]
//! [--seeds 3] [--write-drafts DIR] [--json]`

use std::collections::BTreeMap;
use std::time::Instant;

use remit_bench_drafting::{held_out, observations, out_of_scope, Persona};
use remit_draft::{draft, DraftOptions, DraftPolicy, HashKey};

struct Args {
    ns: Vec<usize>,
    held_out: usize,
    oos: usize,
    seeds: u64,
    write: Option<std::path::PathBuf>,
    json: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        ns: vec![100, 1000, 10_000],
        held_out: 2000,
        oos: 600,
        seeds: 3,
        write: None,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => {
                a.ns = val()?
                    .split(',')
                    .map(|s| s.parse().map_err(|e| format!("--n: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--held-out" => a.held_out = val()?.parse().map_err(|e| format!("{e}"))?,
            "--oos" => a.oos = val()?.parse().map_err(|e| format!("{e}"))?,
            "--seeds" => a.seeds = val()?.parse().map_err(|e| format!("{e}"))?,
            "--write-drafts" => a.write = Some(val()?.into()),
            "--json" => a.json = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

#[derive(Default)]
struct Score {
    legit: usize,
    legit_allowed: usize,
    oos: usize,
    oos_allowed: usize,
    rules: usize,
    flagged: usize,
    draft_ms: f64,
    leaks: BTreeMap<&'static str, (usize, usize)>,
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drafting-bench: {e}");
            std::process::exit(2);
        }
    };
    let key = match HashKey::new(b"drafting-bench key, 32 bytes...!") {
        Ok(k) => k,
        Err(e) => {
            eprintln!("drafting-bench: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "| N | persona | rules (flagged) | drafting ms | legit allowed | out-of-scope allowed |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for &n in &args.ns {
        let mut total = Score::default();
        for persona in Persona::ALL {
            let mut s = Score::default();
            for seed in 0..args.seeds {
                run(persona, n, seed, &args, &key, &mut s);
            }
            let seeds = args.seeds as usize;
            println!(
                "| {n} | {} | {:.1} ({:.1}) | {:.1} | {:.2} % | {:.2} % |",
                persona.agent(),
                s.rules as f64 / seeds as f64,
                s.flagged as f64 / seeds as f64,
                s.draft_ms / seeds as f64,
                pct(s.legit_allowed, s.legit),
                pct(s.oos_allowed, s.oos),
            );
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"n": n, "persona": persona.agent(), "rules": s.rules as f64 / seeds as f64,
                        "draft_ms": s.draft_ms / seeds as f64, "legit_allowed": pct(s.legit_allowed, s.legit),
                        "oos_allowed": pct(s.oos_allowed, s.oos),
                        "oos_by_category": s.leaks.iter().map(|(k, (a, t))| (k.to_string(), pct(*a, *t))).collect::<BTreeMap<_, _>>()})
                );
            }
            total.legit += s.legit;
            total.legit_allowed += s.legit_allowed;
            total.oos += s.oos;
            total.oos_allowed += s.oos_allowed;
            total.rules += s.rules;
            total.draft_ms += s.draft_ms;
            for (k, (a, t)) in s.leaks {
                let e = total.leaks.entry(k).or_default();
                e.0 += a;
                e.1 += t;
            }
        }
        let seeds = args.seeds as usize;
        println!(
            "| {n} | **all** | {:.1} | {:.1} | **{:.2} %** | **{:.2} %** |",
            total.rules as f64 / seeds as f64,
            total.draft_ms / seeds as f64,
            pct(total.legit_allowed, total.legit),
            pct(total.oos_allowed, total.oos),
        );
        let leaks: Vec<String> = total
            .leaks
            .iter()
            .filter(|(_, (a, _))| *a > 0)
            .map(|(k, (a, t))| format!("{k} {:.1} %", pct(*a, *t)))
            .collect();
        if !leaks.is_empty() {
            println!(
                "|  | out-of-scope allowed by category: {} | | | | |",
                leaks.join(", ")
            );
        }
    }
}

fn pct(a: usize, t: usize) -> f64 {
    if t == 0 {
        0.0
    } else {
        100.0 * a as f64 / t as f64
    }
}

fn run(persona: Persona, n: usize, seed: u64, args: &Args, key: &HashKey, s: &mut Score) {
    let seed = seed * 1_000_003 + n as u64;
    let train = observations(persona, n, seed, key);
    let options = DraftOptions {
        agent: persona.agent().into(),
        ..Default::default()
    };
    let started = Instant::now();
    let d = draft(&train, &options);
    let text = d.to_cedar();
    let policy = match DraftPolicy::compile(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "drafting-bench: the draft for {} does not compile: {e}",
                persona.agent()
            );
            std::process::exit(1);
        }
    };
    s.draft_ms += started.elapsed().as_secs_f64() * 1000.0;
    s.rules += d.rules.len();
    s.flagged += d.rules.iter().filter(|r| r.flagged()).count();
    if let Some(dir) = &args.write {
        let path = dir.join(format!("{}-{n}.cedar", persona.agent()));
        let boundary = dir.join(format!("{}-{n}.boundary.cedar", persona.agent()));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, &text))
            .and_then(|()| std::fs::write(&boundary, d.to_boundary_cedar()));
        if let Err(e) = written {
            eprintln!("drafting-bench: {}: {e}", path.display());
        }
    }
    for call in held_out(persona, args.held_out, seed, key) {
        s.legit += 1;
        s.legit_allowed += usize::from(policy.allows(&call));
    }
    for (category, call) in out_of_scope(persona, args.oos, seed, key) {
        let allowed = policy.allows(&call);
        s.oos += 1;
        s.oos_allowed += usize::from(allowed);
        let e = s.leaks.entry(category).or_default();
        e.0 += usize::from(allowed);
        e.1 += 1;
    }
}
