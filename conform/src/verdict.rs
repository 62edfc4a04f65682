//! Comparing what a runtime did with nsapply's reference for one case.
//!
//! A valid case passes when the runtime created exactly the kinds the plan
//! creates, joined exactly the planned paths, each with its type, created
//! the user namespace before (or in the same call as) every other new
//! namespace, joined the non-user namespaces before creating the user
//! namespace, opened every namespace path close-on-exec, wrote the planned
//! id maps and time offsets, and the container ended up in the planned
//! namespaces (inodes) with no namespace fd open. A bad input is rejected
//! correctly when the runtime refused it; the stage (before touching any
//! namespace, as nsapply does, or only after) is part of the verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::case::{Reference, Stage};
use super::observe::{Activity, ContainerView};
use nsapply::config::id_map_text;
use nsapply::kind::{Kind, KindSet};
use nsapply::plan::{Plan, Step};
use nsapply::syscall::linux::time_offsets_text;

/// What the container's namespace of one kind should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// The namespace at a joined path, with this inode.
    Joined(u64),
    /// A new one: not the runtime's own.
    New,
    /// The runtime's own (not in the config).
    Inherited,
}

/// One way a runtime's behaviour differs from the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// A valid config was refused.
    RejectedValid {
        /// The runtime's error line.
        message: String,
    },
    /// The runtime did not finish within the time limit (it was killed).
    TimedOut,
    /// The container ran but printed no namespace inodes.
    NoContainerView,
    /// The kinds created differ from the plan's.
    Created {
        /// The plan's.
        expected: KindSet,
        /// The runtime's.
        got: KindSet,
    },
    /// A planned join was not made.
    JoinMissing {
        /// The kind.
        kind: Kind,
        /// The path.
        path: String,
    },
    /// A join the plan does not make.
    JoinExtra {
        /// The path.
        path: String,
    },
    /// setns(2) with `nstype` 0: any namespace type accepted.
    JoinUntyped {
        /// The path.
        path: String,
    },
    /// setns(2) with a type other than the config's.
    JoinWrongType {
        /// The path.
        path: String,
        /// The config's kind.
        expected: Kind,
        /// The nstype given.
        got: Kind,
    },
    /// Namespaces created in calls before the user namespace's.
    UserNotFirst {
        /// Those kinds.
        before: KindSet,
    },
    /// A non-user namespace joined only after the user namespace was created.
    JoinAfterUser {
        /// The path.
        path: String,
    },
    /// A namespace file opened without `O_CLOEXEC`.
    NotCloexec {
        /// The path.
        path: String,
    },
    /// The container is in the wrong namespace of a kind.
    WrongNamespace {
        /// The kind.
        kind: Kind,
        /// What it should be.
        want: Want,
        /// The inode it is in (`None`: not printed).
        got: Option<u64>,
    },
    /// The container has a namespace fd open.
    FdLeak {
        /// The fd number in the container.
        fd: i32,
        /// Its target.
        target: String,
    },
    /// An exec differs from nsapply's exec plan ([`crate::exec`]).
    Exec(crate::exec::ExecDifference),
    /// An id map or the time offsets were not written as configured.
    Written {
        /// `uid_map`, `gid_map` or `timens_offsets`.
        file: &'static str,
        /// The configured text.
        expected: String,
        /// What was written last (`None`: nothing).
        got: Option<String>,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oneline = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            Difference::RejectedValid { message } if message.trim().is_empty() => {
                f.write_str("rejected a valid config (no error message)")
            }
            Difference::RejectedValid { message } => {
                write!(f, "rejected a valid config: {}", oneline(message))
            }
            Difference::TimedOut => f.write_str("timed out (killed)"),
            Difference::NoContainerView => f.write_str("the container printed no namespaces"),
            Difference::Created { expected, got } => {
                write!(f, "created [{got}], the plan creates [{expected}]")
            }
            Difference::JoinMissing { kind, path } => write!(f, "did not join {kind} {path}"),
            Difference::JoinExtra { path } => write!(f, "joined {path}, not in the plan"),
            Difference::JoinUntyped { path } => {
                write!(f, "setns({path}, 0): namespace type not checked")
            }
            Difference::JoinWrongType {
                path,
                expected,
                got,
            } => write!(f, "joined {path} as {got}, config says {expected}"),
            Difference::UserNotFirst { before } => {
                write!(f, "created [{before}] before the user namespace")
            }
            Difference::JoinAfterUser { path } => {
                write!(f, "joined {path} after creating the user namespace")
            }
            Difference::NotCloexec { path } => write!(f, "opened {path} without O_CLOEXEC"),
            Difference::WrongNamespace { kind, want, got } => {
                // Inodes change from run to run: the report names the roles.
                let want = match want {
                    Want::Joined(_) => "the joined one",
                    Want::New => "a new one",
                    Want::Inherited => "the runtime's own",
                };
                match got {
                    Some(_) => write!(f, "container's {kind} namespace is not {want}"),
                    None => write!(f, "container's {kind} namespace unknown, wanted {want}"),
                }
            }
            Difference::Exec(d) => d.fmt(f),
            Difference::FdLeak { fd, target } => {
                write!(f, "container has fd {fd} open on {target}")
            }
            Difference::Written {
                file,
                expected,
                got,
            } => match got {
                Some(g) => write!(
                    f,
                    "{file} written {:?}, config {:?}",
                    oneline(g),
                    oneline(expected)
                ),
                None => write!(f, "{file} not written (config {:?})", oneline(expected)),
            },
        }
    }
}

/// The verdict on one case for one runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A valid config, handled as the reference handles it.
    Pass,
    /// A valid config, handled differently.
    Differs(Vec<Difference>),
    /// A bad input, refused.
    RejectedCorrectly {
        /// The namespaces created or joined before refusing it (nsapply
        /// touches none); empty when refused before any.
        late: Vec<String>,
        /// The runtime's error line.
        message: String,
    },
    /// A bad input, accepted: the container ran.
    AcceptedWrongly {
        /// The code nsapply refuses it with.
        code: String,
        /// What the runtime did with it.
        did: Vec<String>,
    },
}

impl Verdict {
    /// The exec differences of a [`Verdict::Differs`] (none for another
    /// verdict), in order.
    pub fn exec_differences(&self) -> Vec<crate::exec::ExecDifference> {
        match self {
            Verdict::Differs(d) => d
                .iter()
                .filter_map(|d| match d {
                    Difference::Exec(e) => Some(e.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The short name of the verdict (`pass`, `differs`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Differs(_) => "differs",
            Verdict::RejectedCorrectly { .. } => "rejected-correctly",
            Verdict::AcceptedWrongly { .. } => "accepted-wrongly",
        }
    }

    /// One line: the name and, when it matters, how.
    pub fn summary(&self) -> String {
        match self {
            Verdict::Pass => "pass".to_owned(),
            Verdict::Differs(d) => format!(
                "differs: {}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Verdict::RejectedCorrectly { late, .. } if late.is_empty() => {
                "rejected-correctly".to_owned()
            }
            Verdict::RejectedCorrectly { late, .. } => {
                format!("rejected-correctly, late: after {}", late.join(", "))
            }
            Verdict::AcceptedWrongly { code, did } if did.is_empty() => {
                format!("accepted-wrongly (nsapply: {code})")
            }
            Verdict::AcceptedWrongly { code, did } => {
                format!("accepted-wrongly (nsapply: {code}): {}", did.join(", "))
            }
        }
    }
}

/// What the runner observed of one run.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The runtime's namespace activity (from the trace).
    pub activity: Activity,
    /// What the container printed, when it ran.
    pub view: Option<ContainerView>,
    /// Whether the runtime exited 0.
    pub success: bool,
    /// Whether it hit the time limit and was killed.
    pub timed_out: bool,
    /// The runtime's error line (last non-empty stderr line).
    pub message: String,
    /// The runtime's own namespaces (inode per kind).
    pub host: BTreeMap<Kind, u64>,
    /// The inode of the namespace at each path the config names.
    pub path_inodes: BTreeMap<String, u64>,
}

/// Compares one run with the reference.
pub fn judge(reference: &Reference, seen: &Observed) -> Verdict {
    if seen.timed_out {
        // Neither a rejection nor an acceptance.
        return Verdict::Differs(vec![Difference::TimedOut]);
    }
    match reference {
        Reference::Accept(plan) => judge_valid(plan, seen),
        Reference::Reject { code, stage, .. } => judge_invalid(code, *stage, seen),
    }
}

/// What the activity shows, one item per call: `created user,pid`,
/// `joined /x as network`.
fn describe(a: &Activity) -> Vec<String> {
    let mut items: Vec<(usize, String)> = a
        .creations
        .iter()
        .map(|(s, c)| (*s, format!("created {}", c.kinds)))
        .collect();
    items.extend(a.joins.iter().filter(|j| j.ret.is_ok()).map(|j| {
        let t = j.nstype.map_or("any type".to_owned(), |k| k.to_string());
        (j.seq, format!("joined {} as {t}", j.path))
    }));
    items.sort();
    items.into_iter().map(|(_, s)| s).collect()
}

fn judge_invalid(code: &str, _stage: Stage, seen: &Observed) -> Verdict {
    if seen.success && seen.view.is_some() {
        return Verdict::AcceptedWrongly {
            code: code.to_owned(),
            did: describe(&seen.activity),
        };
    }
    // Both of nsapply's stages (validation, open) come before any
    // namespace is joined or created.
    Verdict::RejectedCorrectly {
        late: describe(&seen.activity),
        message: seen.message.clone(),
    }
}

fn judge_valid(plan: &Plan, seen: &Observed) -> Verdict {
    let a = &seen.activity;
    let mut diffs = Vec::new();
    let Some(view) = seen.view.as_ref().filter(|_| seen.success) else {
        diffs.push(if seen.success {
            Difference::NoContainerView
        } else {
            Difference::RejectedValid {
                message: seen.message.clone(),
            }
        });
        return Verdict::Differs(diffs);
    };
    let planned_joins: Vec<(Kind, String)> = plan
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::Setns { kind, path } => Some((*kind, path.as_path().display().to_string())),
            _ => None,
        })
        .collect();
    let creates: KindSet = plan
        .steps()
        .iter()
        .filter_map(|s| match s {
            Step::Unshare { kind } => Some(*kind),
            _ => None,
        })
        .collect();

    if a.created() != creates {
        diffs.push(Difference::Created {
            expected: creates,
            got: a.created(),
        });
    }
    let ok_joins: Vec<_> = a.joins.iter().filter(|j| j.ret.is_ok()).collect();
    for (kind, path) in &planned_joins {
        match ok_joins.iter().find(|j| &j.path == path) {
            None => diffs.push(Difference::JoinMissing {
                kind: *kind,
                path: path.clone(),
            }),
            Some(j) => match j.nstype {
                None => diffs.push(Difference::JoinUntyped { path: path.clone() }),
                Some(t) if t != *kind => diffs.push(Difference::JoinWrongType {
                    path: path.clone(),
                    expected: *kind,
                    got: t,
                }),
                Some(_) => {}
            },
        }
    }
    for j in &ok_joins {
        if !planned_joins.iter().any(|(_, p)| p == &j.path) {
            diffs.push(Difference::JoinExtra {
                path: j.path.clone(),
            });
        }
    }
    if let Some(user_at) = a.user_created_at() {
        let before: KindSet = a
            .creations
            .iter()
            .filter(|(s, _)| *s < user_at)
            .flat_map(|(_, c)| c.kinds.iter())
            .collect();
        if !before.is_empty() {
            diffs.push(Difference::UserNotFirst { before });
        }
        for j in &ok_joins {
            if j.seq > user_at && j.nstype != Some(Kind::User) {
                let planned_non_user = planned_joins
                    .iter()
                    .any(|(k, p)| p == &j.path && *k != Kind::User);
                if planned_non_user {
                    diffs.push(Difference::JoinAfterUser {
                        path: j.path.clone(),
                    });
                }
            }
        }
    }
    let mut reported = BTreeSet::new();
    for o in &a.ns_opens {
        if o.ret.is_ok() && !o.cloexec && reported.insert(o.path.clone()) {
            diffs.push(Difference::NotCloexec {
                path: o.path.clone(),
            });
        }
    }
    for kind in Kind::ALL {
        let want = match planned_joins.iter().find(|(k, _)| *k == kind) {
            Some((_, path)) => match seen.path_inodes.get(path) {
                Some(i) => Want::Joined(*i),
                None => continue,
            },
            None if creates.contains(kind) => Want::New,
            None => Want::Inherited,
        };
        let got = view.inodes.get(&kind).copied();
        let host = seen.host.get(&kind).copied();
        let ok = match (want, got) {
            (_, None) => false,
            (Want::Joined(i), Some(g)) => g == i,
            (Want::New, Some(g)) => Some(g) != host,
            (Want::Inherited, Some(g)) => Some(g) == host,
        };
        if !ok {
            diffs.push(Difference::WrongNamespace { kind, want, got });
        }
    }
    for (fd, target) in &view.fds {
        let is_ns = target.contains(":[")
            && Kind::ALL
                .iter()
                .any(|k| target.starts_with(&format!("{}:[", k.proc_name())))
            || seen.path_inodes.contains_key(target);
        if is_ns {
            diffs.push(Difference::FdLeak {
                fd: *fd,
                target: target.clone(),
            });
        }
    }
    if creates.contains(Kind::User) {
        for (file, lines) in [
            ("uid_map", plan.uid_mappings()),
            ("gid_map", plan.gid_mappings()),
        ] {
            let expected = id_map_text(lines);
            let got = a.written(file);
            if got.map(normalize) != Some(normalize(&expected)) {
                diffs.push(Difference::Written {
                    file,
                    expected,
                    got: got.map(str::to_owned),
                });
            }
        }
    }
    let offsets = plan.steps().iter().find_map(|s| match s {
        Step::TimeOffsets { offsets } => Some(offsets.clone()),
        _ => None,
    });
    if let Some(offsets) = offsets {
        let expected = time_offsets_text(&offsets);
        let got: Vec<&str> = a
            .writes
            .iter()
            .filter(|w| w.file == "timens_offsets" && w.ret.is_ok())
            .map(|w| w.text.as_str())
            .collect();
        let got_text = got.join("\n");
        if normalize(&got_text) != normalize(&expected) {
            diffs.push(Difference::Written {
                file: "timens_offsets",
                expected,
                got: (!got.is_empty()).then_some(got_text),
            });
        }
    }
    if diffs.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Differs(diffs)
    }
}

/// Lines of whitespace-separated fields, sorted: the kernel reads each line
/// alone, so order and spacing do not matter.
fn normalize(text: &str) -> Vec<Vec<String>> {
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Creation, Join, NsWrite};
    use crate::strace::Ret;
    use nsapply::NsConfig;

    /// A run of `{user, pid, network at /w/net}` where the runtime made
    /// its calls in `order` (`"pid"`, `"user"`, `"join"`).
    fn run(order: &[&str]) -> Verdict {
        let cfg = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"user"},{"type":"pid"},{"type":"network","path":"/w/net"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
            "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        )
        .unwrap();
        let plan = nsapply::plan(&cfg);
        let mut activity = Activity::default();
        for (seq, what) in order.iter().enumerate() {
            let creation = |k: Kind, call| {
                (
                    seq,
                    Creation {
                        kinds: KindSet::one(k),
                        call,
                    },
                )
            };
            match *what {
                "pid" => activity.creations.push(creation(Kind::Pid, "unshare")),
                "user" => activity.creations.push(creation(Kind::User, "unshare")),
                _ => activity.joins.push(Join {
                    pid: 1,
                    path: "/w/net".into(),
                    nstype: Some(Kind::Network),
                    fd_kind: Some(Kind::Network),
                    cloexec: Some(true),
                    ret: Ret::Ok(0),
                    seq,
                }),
            }
        }
        for file in ["uid_map", "gid_map"] {
            activity.writes.push(NsWrite {
                file: file.into(),
                text: "0 1000 1\n".into(),
                ret: Ret::Ok(9),
            });
        }
        let host: BTreeMap<Kind, u64> = Kind::ALL.into_iter().map(|k| (k, 1)).collect();
        let mut inodes = host.clone();
        inodes.insert(Kind::User, 10);
        inodes.insert(Kind::Pid, 11);
        inodes.insert(Kind::Network, 12);
        let seen = Observed {
            activity,
            view: Some(ContainerView {
                inodes,
                fds: vec![],
                proc_self: None,
            }),
            success: true,
            timed_out: false,
            message: String::new(),
            host,
            path_inodes: [("/w/net".to_owned(), 12)].into(),
        };
        judge(&Reference::Accept(plan), &seen)
    }

    #[test]
    fn joins_then_user_then_the_rest_passes() {
        assert_eq!(run(&["join", "user", "pid"]), Verdict::Pass);
    }

    #[test]
    fn a_namespace_created_before_user_is_reported() {
        assert_eq!(
            run(&["join", "pid", "user"]),
            Verdict::Differs(vec![Difference::UserNotFirst {
                before: KindSet::one(Kind::Pid)
            }])
        );
    }

    #[test]
    fn a_join_after_creating_user_is_reported() {
        assert_eq!(
            run(&["user", "join", "pid"]),
            Verdict::Differs(vec![Difference::JoinAfterUser {
                path: "/w/net".into()
            }])
        );
    }

    #[test]
    fn a_missing_join_is_reported() {
        let Verdict::Differs(d) = run(&["user", "pid"]) else {
            panic!("not a difference");
        };
        assert!(d.contains(&Difference::JoinMissing {
            kind: Kind::Network,
            path: "/w/net".into()
        }));
    }
}
