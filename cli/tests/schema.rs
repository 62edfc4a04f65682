//! `trace.schema.json` describes the traces nsapply writes: every trace that
//! `plan` and `simulate` produce for the examples and the bad inputs, a
//! trace carrying each error code, and the model's traces of many fault
//! scripts validate; broken traces do not. The enums of the schema are
//! checked against the crate's own lists so neither can drift.

use std::path::{Path, PathBuf};
use std::process::Command;

use jsonschema::Validator;
use nsapply::model::{FaultScript, Model, World};
use nsapply::simulate::simulate;
use nsapply::{plan, Errno, ErrorCode, Kind, NsConfig, Trace, TraceError, TraceStep, Unjoined};
use serde_json::{json, Value};

/// The repository root (this crate is one level below it).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn schema() -> Value {
    let text =
        std::fs::read_to_string(path("trace.schema.json")).expect("trace.schema.json exists");
    serde_json::from_str(&text).expect("trace.schema.json is JSON")
}

fn validator() -> Validator {
    jsonschema::draft202012::new(&schema()).expect("trace.schema.json is a valid 2020-12 schema")
}

#[track_caller]
fn assert_valid(v: &Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the trace breaks the schema: {errors:#?}\n{doc:#}"
    );
}

fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(path(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

fn nsapply(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_nsapply"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "nsapply {args:?} prints a JSON trace ({e}); stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn world_for(config: &Path) -> Option<String> {
    let stem = config.file_stem()?.to_str()?;
    let w = path(&format!("tests/data/worlds/{stem}.json"));
    w.exists().then(|| w.display().to_string())
}

#[test]
fn schema_is_draft_2020_12_and_valid() {
    let s = schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(
        jsonschema::meta::is_valid(&s),
        "trace.schema.json breaks the 2020-12 meta-schema"
    );
    validator();
}

#[test]
fn schema_enums_match_the_crate() {
    let s = schema();
    let codes: Vec<&str> = s["$defs"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let want: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, want, "error codes");
    let kinds: Vec<&str> = s["$defs"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let want: Vec<&str> = Kind::ALL.iter().map(|k| k.spec_name()).collect();
    assert_eq!(kinds, want, "namespace types");
}

/// One step of every kind of trace step. The exhaustive match makes a new
/// kind of step without a sample here a compile error, so the schema is
/// checked against every op the crate can write.
fn one_step_of_each_op() -> Vec<TraceStep> {
    use nsapply::config::Propagation;
    use nsapply::{Clock, Outcome, SyncPoint, TimeOffset};
    let p = || PathBuf::from("/run/netns/a");
    let steps = vec![
        TraceStep::Open {
            kind: Kind::Network,
            path: p(),
            result: Outcome::Ok,
            found: Some("ipc".into()),
        },
        TraceStep::Setns {
            kind: Kind::Network,
            path: p(),
            result: Outcome::Err(nsapply::Errno::EPERM),
            deferred: true,
        },
        TraceStep::Unshare {
            kind: Kind::User,
            result: Outcome::Ok,
        },
        TraceStep::Sync {
            point: SyncPoint::IdMapping,
        },
        TraceStep::Setid {
            kind: Kind::User,
            result: Outcome::Ok,
        },
        TraceStep::DeferredJoins {
            kind: Kind::User,
            retried: vec![Kind::Network, Kind::Ipc],
        },
        TraceStep::Propagation {
            kind: Kind::Mount,
            propagation: Propagation::DEFAULT,
            result: Outcome::Ok,
        },
        TraceStep::TimeOffsets {
            kind: Kind::Time,
            offsets: vec![TimeOffset {
                clock: Clock::Boottime,
                secs: -7,
                nanosecs: 9,
            }],
            result: Outcome::Ok,
        },
        TraceStep::Close {
            kind: Kind::Network,
            path: p(),
        },
        TraceStep::PidfdJoin {
            pid: 4242,
            kinds: "user,network".parse().unwrap(),
            result: Outcome::Err(nsapply::Errno::EINVAL),
            call: Some(nsapply::trace::PidfdCall::Setns),
            fallback: true,
        },
        TraceStep::Fork {
            result: Outcome::Err(nsapply::Errno::EAGAIN),
        },
    ];
    for s in &steps {
        match s {
            TraceStep::Open { .. }
            | TraceStep::Setns { .. }
            | TraceStep::Unshare { .. }
            | TraceStep::Sync { .. }
            | TraceStep::Setid { .. }
            | TraceStep::DeferredJoins { .. }
            | TraceStep::Propagation { .. }
            | TraceStep::TimeOffsets { .. }
            | TraceStep::Close { .. }
            | TraceStep::PidfdJoin { .. }
            | TraceStep::Fork { .. } => {}
        }
    }
    steps
}

#[test]
fn every_kind_of_step_matches_the_schema_and_its_op_is_listed() {
    let v = validator();
    let s = schema();
    let ops: Vec<&str> = s["$defs"]["step"]["properties"]["op"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    let steps = one_step_of_each_op();
    let mut seen = Vec::new();
    for step in &steps {
        let doc = serde_json::to_value(Trace {
            steps: vec![step.clone()],
            ..Trace::default()
        })
        .unwrap();
        let op = doc["steps"][0]["op"].as_str().unwrap().to_owned();
        assert!(
            ops.contains(&op.as_str()),
            "op {op} is not in the schema's list"
        );
        assert_valid(&v, &doc, &format!("a trace with one {op} step"));
        seen.push(op);
    }
    assert_eq!(
        seen, ops,
        "the schema lists exactly the crate's ops, in order"
    );
}

#[test]
fn plan_and_simulate_traces_of_every_example_match_the_schema() {
    let v = validator();
    let mut n = 0;
    for config in json_files("examples")
        .into_iter()
        .chain(json_files("tests/data/ok"))
    {
        let c = config.to_str().unwrap();
        assert_valid(&v, &nsapply(&["plan", c, "--format", "json"]), c);
        assert_valid(
            &v,
            &nsapply(&["plan", c, "--format", "json", "--only", "user,pid,time"]),
            c,
        );
        let mut args = vec!["simulate", c, "--format", "json"];
        let world = world_for(&config);
        if let Some(w) = &world {
            args.extend(["--world", w.as_str()]);
        }
        assert_valid(&v, &nsapply(&args), c);
        n += 1;
    }
    assert!(n >= 5, "examples found: {n}");
}

#[test]
fn traces_of_every_bad_input_match_the_schema() {
    let v = validator();
    for config in json_files("tests/data/bad") {
        let c = config.to_str().unwrap();
        let mut args = vec!["simulate", c, "--format", "json"];
        let world = world_for(&config);
        if let Some(w) = &world {
            args.extend(["--world", w.as_str()]);
        }
        let doc = nsapply(&args);
        assert_valid(&v, &doc, c);
        let stem = config.file_stem().unwrap().to_str().unwrap();
        assert_eq!(doc["error"]["code"], stem, "{c}");
    }
}

/// A trace error of `code` shaped as the engine fills it.
fn error_of(code: ErrorCode) -> TraceError {
    let (kind, path, errno) = match code {
        c if c.is_input_error() => (Some(Kind::User), Some("run/user".into()), None),
        ErrorCode::WrongNamespaceType => (Some(Kind::Network), Some("/n".into()), None),
        ErrorCode::SyncFailed => (Some(Kind::User), None, None),
        ErrorCode::Multithreaded => (Some(Kind::Mount), None, None),
        ErrorCode::ForkFailed => (None, None, Some(Errno::EAGAIN)),
        _ => (
            Some(Kind::Network),
            Some("/run/netns/a".into()),
            Some(Errno::EPERM),
        ),
    };
    TraceError {
        code,
        kind,
        path,
        errno,
        message: format!("a {code} error"),
        index: code.is_input_error().then_some(2),
        unjoined: if code == ErrorCode::JoinFailed {
            vec![Unjoined {
                kind: Kind::Network,
                path: "/run/netns/a".into(),
            }]
        } else {
            Vec::new()
        },
    }
}

#[test]
fn a_trace_with_each_error_code_matches_the_schema() {
    let v = validator();
    for code in ErrorCode::ALL {
        let t = Trace {
            error: Some(error_of(code)),
            ..Trace::default()
        };
        let doc: Value = serde_json::from_str(&t.to_json_pretty()).unwrap();
        assert_valid(&v, &doc, code.as_str());
    }
}

#[test]
fn model_traces_under_faults_match_the_schema() {
    // Every fallible call of a rich plan, failed in turn with a few errnos,
    // plus worlds that make the engine defer, refuse and report.
    let v = validator();
    let cfg =
        NsConfig::from_json(&std::fs::read_to_string(path("examples/all-kinds.json")).unwrap())
            .unwrap();
    let p = plan(&cfg);
    let mut codes = std::collections::BTreeSet::new();
    for position in 1..=16 {
        for errno in ["EPERM", "EINVAL", "ENOSPC"] {
            let mut model = Model::new(&World::default()).unwrap();
            let mut faults = FaultScript::new();
            faults.push(FaultScript::parse_rule(&format!("{position}={errno}")).unwrap());
            model.set_faults(faults);
            let run = simulate(&p, &mut model);
            if let Some(e) = &run.error() {
                codes.insert(e.code);
            }
            let doc: Value = serde_json::from_str(&run.trace().to_json_pretty()).unwrap();
            assert_valid(&v, &doc, &format!("{position}={errno}"));
        }
    }
    assert!(
        codes.len() >= 4,
        "faults reach several error paths: {codes:?}"
    );

    let threads = World::from_json(r#"{"caller":{"threads":2}}"#).unwrap();
    let mut model = Model::new(&threads).unwrap();
    let run = simulate(&p, &mut model);
    assert_eq!(
        run.error().as_ref().map(|e| e.code),
        Some(ErrorCode::Multithreaded)
    );
    assert_valid(
        &v,
        &serde_json::to_value(run.trace()).unwrap(),
        "multithreaded",
    );
}

/// One way to break a valid trace document.
type Breaker = Box<dyn Fn(&mut Value)>;

#[test]
fn broken_traces_fail_the_schema() {
    let v = validator();
    let good = json!({
        "version": 1,
        "steps": [
            {"op": "open", "type": "network", "path": "/run/netns/a", "result": "ok"},
            {"op": "setns", "type": "network", "path": "/run/netns/a", "result": "EPERM", "deferred": true},
            {"op": "unshare", "type": "user", "result": "ok"},
            {"op": "sync", "point": "id-mapping"},
            {"op": "setid", "type": "user", "result": "ok"},
            {"op": "setns", "type": "network", "path": "/run/netns/a", "result": "ok"},
            {"op": "unshare", "type": "time", "result": "ok"},
            {"op": "time-offsets", "type": "time", "offsets": [{"clock": "monotonic", "secs": -5, "nanosecs": 0}], "result": "ok"},
            {"op": "close", "type": "network", "path": "/run/netns/a"},
            {"op": "fork"}
        ],
        "error": null
    });
    assert_valid(&v, &good, "the reference trace");
    // The crate reads it too.
    Trace::from_json(&good.to_string()).unwrap();

    let broken: Vec<(&str, Breaker)> = vec![
        (
            "no version",
            Box::new(|d| drop(d.as_object_mut().unwrap().remove("version"))),
        ),
        ("version 2", Box::new(|d| d["version"] = json!(2))),
        (
            "no error field",
            Box::new(|d| drop(d.as_object_mut().unwrap().remove("error"))),
        ),
        ("extra top-level field", Box::new(|d| d["extra"] = json!(1))),
        (
            "unknown op",
            Box::new(|d| d["steps"][0]["op"] = json!("clone")),
        ),
        (
            "net is not a spec type",
            Box::new(|d| d["steps"][0]["type"] = json!("net")),
        ),
        (
            "lowercase errno",
            Box::new(|d| d["steps"][1]["result"] = json!("eperm")),
        ),
        (
            "result missing",
            Box::new(|d| drop(d["steps"][2].as_object_mut().unwrap().remove("result"))),
        ),
        (
            "relative step path",
            Box::new(|d| d["steps"][0]["path"] = json!("run/netns/a")),
        ),
        (
            "unknown sync point",
            Box::new(|d| d["steps"][3]["point"] = json!("ready")),
        ),
        (
            "setid of another type",
            Box::new(|d| d["steps"][4]["type"] = json!("pid")),
        ),
        (
            "nanosecs out of range",
            Box::new(|d| d["steps"][7]["offsets"][0]["nanosecs"] = json!(1_000_000_000)),
        ),
        (
            "unknown clock",
            Box::new(|d| d["steps"][7]["offsets"][0]["clock"] = json!("realtime")),
        ),
        (
            "field of another op",
            Box::new(|d| d["steps"][9]["type"] = json!("pid")),
        ),
        (
            "deferred is a string",
            Box::new(|d| d["steps"][1]["deferred"] = json!("yes")),
        ),
        (
            "unknown error code",
            Box::new(|d| {
                d["error"] = json!({"code": "oops", "type": null, "path": null, "errno": null, "message": "m"})
            }),
        ),
        (
            "error without message",
            Box::new(|d| {
                d["error"] =
                    json!({"code": "fork-failed", "type": null, "path": null, "errno": "EAGAIN"})
            }),
        ),
    ];
    for (what, breaks) in broken {
        let mut doc = good.clone();
        breaks(&mut doc);
        assert!(
            !v.is_valid(&doc),
            "{what}: the schema must reject it:\n{doc:#}"
        );
    }
}
