//! Generators for property tests, fuzzing and other crates (feature `testing`).
//!
//! The strategies produce *raw* inputs (type names as strings, paths as
//! written) so that every rule of DESIGN §3 can be broken, not just the
//! shapes validation lets through.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::select;

use crate::config::{IdMapping, RawLinux, RawNamespace, RawTimeOffset};
use crate::kind::{Kind, KindSet};

/// The join path the generators use for `kind` (absolute).
pub fn join_path(kind: Kind) -> PathBuf {
    PathBuf::from(format!("/run/nsapply/{}", kind.spec_name()))
}

/// What a generated entry does with its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    Absent,
    Create,
    Join,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![2 => Just(Pick::Absent), 3 => Just(Pick::Create), 2 => Just(Pick::Join)]
}

/// Type names that are not one of the eight (aliases other tools accept
/// included: the spec enum is the contract).
pub const UNKNOWN_TYPES: [&str; 6] = ["net", "mnt", "bogus", "", "User", "time_for_children"];

fn mappings() -> impl Strategy<Value = Option<Vec<IdMapping>>> {
    let line = (
        0u32..2,
        prop_oneof![Just(0u32), Just(1000), Just(100_000), Just(65534)],
        1u32..70_000,
    )
        .prop_map(|(c, h, size)| IdMapping {
            container_id: c * 1000,
            host_id: h,
            size,
        });
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Vec::new())),
        3 => proptest::collection::vec(line, 1..3).prop_map(Some),
    ]
}

fn time_offsets() -> impl Strategy<Value = Option<BTreeMap<String, RawTimeOffset>>> {
    let clock = prop_oneof![
        4 => Just("monotonic".to_owned()),
        4 => Just("boottime".to_owned()),
        1 => Just("realtime".to_owned()),
        1 => Just("MONOTONIC".to_owned()),
    ];
    let nanos = prop_oneof![
        4 => 0u32..=999_999_999,
        1 => Just(999_999_999u32),
        1 => Just(1_000_000_000u32),
        1 => Just(u32::MAX),
    ];
    let secs = prop_oneof![Just(0i64), -86_400i64..86_400, Just(i64::MAX)];
    let offset = (secs, nanos).prop_map(|(secs, nanosecs)| RawTimeOffset { secs, nanosecs });
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(BTreeMap::new())),
        3 => proptest::collection::btree_map(clock, offset, 1..3).prop_map(Some),
    ]
}

/// Mutations that break one rule of DESIGN §3 in the namespaces array.
#[derive(Clone, Debug)]
enum Breakage {
    None,
    Duplicate { from: usize, join: bool },
    Relative { at: usize },
    Unknown { at: usize, name: &'static str },
}

fn breakage() -> impl Strategy<Value = Breakage> {
    prop_oneof![
        6 => Just(Breakage::None),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(from, join)| Breakage::Duplicate { from, join }),
        1 => any::<usize>().prop_map(|at| Breakage::Relative { at }),
        1 => (any::<usize>(), select(UNKNOWN_TYPES.to_vec())).prop_map(|(at, name)| Breakage::Unknown { at, name }),
    ]
}

/// Arbitrary `linux` sections: any subset of the eight kinds, each created
/// or joined by path, in any array order, sometimes with duplicates,
/// relative paths, unknown types, uid/gid mappings present or not, time
/// offsets valid or not, the user namespace joined or created.
pub fn raw_linux() -> impl Strategy<Value = RawLinux> {
    (
        proptest::array::uniform8(pick()),
        any::<u64>(),
        breakage(),
        mappings(),
        mappings(),
        time_offsets(),
    )
        .prop_map(|(picks, shuffle_seed, breakage, uid, gid, offsets)| {
            let mut namespaces: Vec<RawNamespace> = Kind::ALL
                .into_iter()
                .zip(picks)
                .filter(|(_, p)| *p != Pick::Absent)
                .map(|(k, p)| RawNamespace {
                    type_name: k.spec_name().to_owned(),
                    path: (p == Pick::Join).then(|| join_path(k)),
                })
                .collect();
            shuffle(&mut namespaces, shuffle_seed);
            let n = namespaces.len();
            match breakage {
                Breakage::None => {}
                Breakage::Duplicate { from, join } if n > 0 => {
                    let mut dup = namespaces[from % n].clone();
                    if let Ok(k) = dup.type_name.parse::<Kind>() {
                        dup.path = join.then(|| join_path(k));
                    }
                    let at = (from / 7) % (n + 1);
                    namespaces.insert(at, dup);
                }
                Breakage::Relative { at } if n > 0 => {
                    let e = &mut namespaces[at % n];
                    e.path = Some(PathBuf::from(format!("run/nsapply/{}", e.type_name)));
                }
                Breakage::Unknown { at, name } => {
                    namespaces.insert(
                        at % (n + 1),
                        RawNamespace {
                            type_name: name.to_owned(),
                            path: None,
                        },
                    );
                }
                _ => {}
            }
            RawLinux {
                namespaces,
                uid_mappings: uid,
                gid_mappings: gid,
                time_offsets: offsets,
            }
        })
}

/// Arbitrary `linux` sections that pass validation: like [`raw_linux`], with
/// the rules of DESIGN §3 repaired (mappings exactly when a user namespace
/// is created, offsets only with a new time namespace).
pub fn valid_raw_linux() -> impl Strategy<Value = RawLinux> {
    raw_linux().prop_map(|mut raw| {
        let mut seen = KindSet::EMPTY;
        raw.namespaces
            .retain(|ns| match ns.type_name.parse::<Kind>() {
                Ok(k) if !seen.contains(k) && ns.path.as_ref().is_none_or(|p| p.is_absolute()) => {
                    seen.insert(k);
                    true
                }
                _ => false,
            });
        let find = |k: Kind| {
            raw.namespaces
                .iter()
                .find(|ns| ns.type_name == k.spec_name())
        };
        let user_created = find(Kind::User).is_some_and(|ns| ns.path.is_none());
        let time_created = find(Kind::Time).is_some_and(|ns| ns.path.is_none());
        let line = |h| {
            vec![IdMapping {
                container_id: 0,
                host_id: h,
                size: 65536,
            }]
        };
        if user_created {
            raw.uid_mappings = raw
                .uid_mappings
                .filter(|v| !v.is_empty())
                .or_else(|| Some(line(100_000)));
            raw.gid_mappings = raw
                .gid_mappings
                .filter(|v| !v.is_empty())
                .or_else(|| Some(line(100_000)));
        } else {
            raw.uid_mappings = None;
            raw.gid_mappings = None;
        }
        raw.time_offsets = raw.time_offsets.filter(|_| time_created).map(|m| {
            m.into_iter()
                .filter(|(c, o)| (c == "monotonic" || c == "boottime") && o.nanosecs <= 999_999_999)
                .collect()
        });
        raw
    })
}

/// Arbitrary phase splits: any set of kinds.
pub fn kind_set() -> impl Strategy<Value = KindSet> {
    any::<u8>().prop_map(KindSet::from_bits)
}

/// Fisher–Yates with a small deterministic generator, so the order is part
/// of the proptest value (and shrinks with it).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
