//! One engine path run N times, for instruction counting under
//! `valgrind --tool=callgrind` (reproducible on a shared, noisy machine,
//! unlike wall time). `benches/compare` runs each path with N = 0 and
//! N = 2000 and reports the difference per iteration in `RESULTS.md`.
//!
//! ```text
//! paths <path> <N>
//! ```
//!
//! Paths: `from_json` (examples/default.json), `from_json_small`, `validate`,
//! `plan`, `model_new` (the default world), `simulate` (a fresh default
//! model, then the default config's plan), `pipeline_default`,
//! `pipeline_all_kinds`, `pipeline_large` (validate + plan + `Model::new` +
//! simulate), `fuzz_config_json`, `fuzz_apply_model`,
//! `fuzz_differential_plan` (the fuzz oracles over their seed corpus; N
//! counts passes over the corpus).

mod common;

use std::hint::black_box;
use std::path::Path;

use nsapply::config::validate;
use nsapply::model::{Model, World};
use nsapply::simulate::simulate;
use nsapply::{plan, NsConfig};
use nsapply_harness::fuzzing::FuzzTarget;

const SMALL: &str =
    r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"pid"},{"type":"network"}]}}"#;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the seed corpus is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("a seed is readable"))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do.
    if args.len() != 3 {
        eprintln!("usage: paths <path> <iterations> (run by benches/compare)");
        return;
    }
    let n: usize = args[2].parse().expect("iterations is a number");
    let examples = common::examples();
    let text = |name: &str| {
        examples
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .expect("example exists")
    };
    let default = text("default");
    let raw = common::raw_of(&default);
    let cfg = validate(&raw).expect("default validates");
    let p = plan(&cfg);
    let world = World::default();
    let pipeline = |raw, world: &World| {
        let cfg = validate(raw).expect("valid");
        let p = plan(&cfg);
        let mut model = Model::new(world).expect("valid world");
        simulate(&p, &mut model).result.is_ok()
    };
    let mut ok = 0usize;
    match args[1].as_str() {
        "from_json" => {
            (0..n).for_each(|_| ok += NsConfig::from_json(black_box(&default)).is_ok() as usize)
        }
        "from_json_small" => {
            (0..n).for_each(|_| ok += NsConfig::from_json(black_box(SMALL)).is_ok() as usize)
        }
        "validate" => (0..n).for_each(|_| ok += validate(black_box(&raw)).is_ok() as usize),
        "plan" => (0..n).for_each(|_| ok += plan(black_box(&cfg)).steps().len()),
        "model_new" => (0..n).for_each(|_| ok += Model::new(black_box(&world)).is_ok() as usize),
        "simulate" => (0..n).for_each(|_| {
            let mut model = Model::new(black_box(&world)).expect("valid world");
            ok += simulate(black_box(&p), &mut model).result.is_ok() as usize;
        }),
        "pipeline_default" => (0..n).for_each(|_| ok += pipeline(black_box(&raw), &world) as usize),
        "pipeline_all_kinds" => {
            let raw = common::raw_of(&text("all-kinds"));
            (0..n).for_each(|_| ok += pipeline(black_box(&raw), &world) as usize)
        }
        "pipeline_large" => {
            let (raw, world) = (common::large(), common::world(1000));
            (0..n).for_each(|_| ok += pipeline(black_box(&raw), &world) as usize)
        }
        "fuzz_config_json" | "fuzz_apply_model" | "fuzz_differential_plan" => {
            let target = FuzzTarget::from_name(&args[1]["fuzz_".len()..]).expect("a target");
            let seeds = corpus(target.name());
            for _ in 0..n {
                for s in &seeds {
                    ok += target.check(black_box(s)).is_ok() as usize;
                }
            }
        }
        other => panic!("unknown path {other}"),
    }
    println!("{ok}");
}
