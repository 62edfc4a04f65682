//! Model throughput: validate + plan + simulate, in configs per second on
//! one core (issue 7, benchmark 1), JSON parsing on its own, and the
//! scaling curves (benchmark 5). `benches/compare` runs this and writes
//! the figures into `benches/RESULTS.md`.
//!
//! * `model/<example>`: from the parsed `linux` section of
//!   `examples/<example>.json` to a finished simulation: `validate`, `plan`,
//!   `Model::new` of the world, `simulate`. A fresh model per config, as a
//!   fuzz target or a conformance check makes one.
//! * `model/large`: every kind, four joins, 64-line id maps, in a world of
//!   1000 extra namespaces.
//! * `parse/<example>`: `NsConfig::from_json` of the whole document
//!   (JSON parse, validation, and the full OCI runtime-spec parse).
//! * `scaling/kinds/<n>`, `scaling/joins/<n>`, `scaling/world/<n>`: model
//!   time against plan size and world size.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nsapply::config::{validate, RawLinux};
use nsapply::model::{Model, World};
use nsapply::simulate::simulate;
use nsapply::{plan, NsConfig};

/// validate + plan + simulate on a fresh model of `world`; returns whether
/// the run succeeded, so nothing of it can be optimized away.
fn pipeline(raw: &RawLinux, world: &World) -> bool {
    let Ok(cfg) = validate(raw) else { return false };
    let p = plan(&cfg);
    let Ok(mut model) = Model::new(world) else {
        return false;
    };
    simulate(&p, &mut model).result.is_ok()
}

fn model(c: &mut Criterion) {
    let mut g = c.benchmark_group("model");
    g.throughput(Throughput::Elements(1));
    for (name, json) in common::examples() {
        let raw = common::raw_of(&json);
        let world = common::world_for_example(&name);
        assert!(pipeline(&raw, &world), "{name} must simulate cleanly");
        g.bench_function(&name, |b| b.iter(|| pipeline(black_box(&raw), &world)));
    }
    let (raw, world) = (common::large(), common::world(1000));
    assert!(
        pipeline(&raw, &world),
        "the large config must simulate cleanly"
    );
    g.bench_function("large", |b| b.iter(|| pipeline(black_box(&raw), &world)));
    g.finish();
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, json) in common::examples() {
        assert!(NsConfig::from_json(&json).is_ok());
        g.bench_function(&name, |b| b.iter(|| NsConfig::from_json(black_box(&json))));
    }
    g.finish();
}

fn scaling(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling");
    let world = common::world(0);
    for kinds in 1..=8 {
        let raw = common::generated(kinds, 0, 1);
        assert!(pipeline(&raw, &world));
        g.bench_with_input(BenchmarkId::new("kinds", kinds), &raw, |b, raw| {
            b.iter(|| pipeline(black_box(raw), &world))
        });
    }
    for joins in 0..=8 {
        let raw = common::generated(8, joins, 1);
        assert!(pipeline(&raw, &world), "8 kinds, {joins} joins");
        g.bench_with_input(BenchmarkId::new("joins", joins), &raw, |b, raw| {
            b.iter(|| pipeline(black_box(raw), &world))
        });
    }
    let raw = common::generated(8, 4, 1);
    for extra in [0, 10, 100, 1000, 4000] {
        let world = common::world(extra);
        assert!(pipeline(&raw, &world));
        g.bench_with_input(BenchmarkId::new("world", extra + 16), &world, |b, w| {
            b.iter(|| pipeline(black_box(&raw), w))
        });
    }
    g.finish();
}

criterion_group!(benches, model, parse, scaling);
criterion_main!(benches);
