//! Inputs shared by the benchmarks: the example configs, generated configs
//! of a chosen size, and worlds of a chosen size.
//!
//! Every benchmark starts from a *parsed* config: the `linux` section as
//! [`RawLinux`] (what `config.json` holds before validation). Turning JSON
//! text into it is measured on its own (`parse/*`), so the model figures
//! are not dominated by serde.

// Each bench target uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use nsapply::config::{RawLinux, RawNamespace, RawTimeOffset};
use nsapply::model::{NsSpec, World};
use nsapply::{IdMapping, Kind};

/// The example configs, by file stem, with their text.
pub fn examples() -> Vec<(String, String)> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&p).expect("example is readable"),
            )
        })
        .collect();
    out.sort();
    out
}

#[derive(serde::Deserialize)]
struct Document {
    #[serde(default)]
    linux: Option<RawLinux>,
}

/// The `linux` section of a config.json text, parsed.
pub fn raw_of(json: &str) -> RawLinux {
    serde_json::from_str::<Document>(json)
        .expect("example parses")
        .linux
        .unwrap_or_default()
}

/// The path a generated config joins `kind` at.
pub fn join_path(kind: Kind) -> PathBuf {
    PathBuf::from(format!("/run/bench/{}", kind.spec_name()))
}

/// The order in which generated configs turn kinds from created to joined:
/// the kinds a root caller can join without further setup first.
const JOIN_ORDER: [Kind; 8] = [
    Kind::Network,
    Kind::Ipc,
    Kind::Uts,
    Kind::Cgroup,
    Kind::Mount,
    Kind::Time,
    Kind::Pid,
    Kind::User,
];

fn mapping(lines: u32) -> Vec<IdMapping> {
    (0..lines)
        .map(|i| IdMapping {
            container_id: i * 1000,
            host_id: 100_000 + i * 1000,
            size: 1000,
        })
        .collect()
}

/// A config naming the first `kinds` kinds of [`Kind::ALL`]; of those,
/// the first `joins` of `JOIN_ORDER` that it names are joined by path, the
/// rest created. A created user namespace gets `map_lines` lines per map;
/// a created time namespace gets both offsets.
pub fn generated(kinds: usize, joins: usize, map_lines: u32) -> RawLinux {
    let named: Vec<Kind> = Kind::ALL[..kinds].to_vec();
    let joined: Vec<Kind> = JOIN_ORDER
        .into_iter()
        .filter(|k| named.contains(k))
        .take(joins)
        .collect();
    let namespaces = named
        .iter()
        .map(|&k| RawNamespace {
            type_name: k.spec_name().to_owned(),
            path: joined.contains(&k).then(|| join_path(k)),
        })
        .collect();
    let creates_user = named.contains(&Kind::User) && !joined.contains(&Kind::User);
    let creates_time = named.contains(&Kind::Time) && !joined.contains(&Kind::Time);
    RawLinux {
        namespaces,
        uid_mappings: creates_user.then(|| mapping(map_lines)),
        gid_mappings: creates_user.then(|| mapping(map_lines)),
        time_offsets: creates_time.then(|| {
            [("boottime", 7), ("monotonic", 86_400)]
                .into_iter()
                .map(|(c, secs)| {
                    let off = RawTimeOffset {
                        secs,
                        nanosecs: 500,
                    };
                    (c.to_owned(), off)
                })
                .collect()
        }),
        rootfs_propagation: None,
    }
}

/// The largest config: every kind, four joined (network, ipc, uts,
/// cgroup), four created, 64 lines per id map, both time offsets.
pub fn large() -> RawLinux {
    generated(8, 4, 64)
}

/// A world with a root caller, a namespace at [`join_path`] for every
/// kind (so any generated config applies cleanly), and `extra` more
/// namespaces of every kind, each at its own path, none of them used.
pub fn world(extra: usize) -> World {
    let identity = vec![IdMapping {
        container_id: 0,
        host_id: 0,
        size: 1 << 20,
    }];
    let mut w = World::new();
    for k in Kind::ALL {
        let spec = NsSpec::new(format!("bench-{}", k.spec_name()), k).at(join_path(k));
        let spec = match k {
            Kind::User => spec.maps(identity.clone(), identity.clone()),
            _ => spec,
        };
        w = w.namespace(spec);
    }
    for i in 0..extra {
        let k = Kind::ALL[i % 8];
        let spec = NsSpec::new(format!("extra-{i}"), k).at(format!("/run/extra/{i}"));
        let spec = match k {
            Kind::User => spec.maps(identity.clone(), identity.clone()),
            _ => spec,
        };
        w = w.namespace(spec);
    }
    w
}

/// The world an example config runs in: the default world, plus the
/// network namespace that `join-netns` joins.
pub fn world_for_example(name: &str) -> World {
    match name {
        "join-netns" => World::new()
            .namespace(NsSpec::new("example", Kind::Network).at("/run/netns/nsapply-example")),
        _ => World::default(),
    }
}
