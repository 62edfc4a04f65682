//! The line protocol of the VM tests: what the guest (`vm-tests/guest`,
//! the `/init` of a QEMU boot) prints on the serial console and the host
//! (`vm-tests/host`) reads back.
//!
//! Every line the guest prints is one [`GuestLine`]: the marker
//! [`MARKER`], the kind of line, a space and a JSON object, written whole
//! and ended by a newline:
//!
//! ```text
//! NSAPPLY-VM-PROBE-OK {"kernel":"6.1.0-50-cloud-amd64"}
//! NSAPPLY-VM-BEGIN {"kernel":"6.1.0-50-cloud-amd64","cases":100,"problems":[]}
//! NSAPPLY-VM-CASE {"kernel":"6.1.0-50-cloud-amd64","ms":21,"case":"creates_user","mode":"root","status":"pass","equal":true,...}
//! NSAPPLY-VM-DONE {"kernel":"6.1.0-50-cloud-amd64","pass":100,"fail":0,"unsupported":0,"uptime":2.1,"cases_ms":1300,"console_ms":180,"cpu_ms":{"user":700,...}}
//! ```
//!
//! The guest prints only through [`GuestLine::to_line`] and the host reads
//! only through [`GuestLine::parse_line`], so the two cannot drift apart.
//! On the console a line may follow kernel output that had no newline of
//! its own: [`GuestLine::parse_line`] looks for the marker anywhere in the
//! line.
//!
//! The enum's serde form is the protocol's: externally tagged by the kind
//! (`{"CASE": {...}}`); a console line is that object with the braces of
//! the tag taken off and the marker put before the kind.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::differential::CaseReport;

/// What starts every guest line (after any kernel output on the same
/// console line), followed by the kind (`PROBE-OK`, `BEGIN`, `CASE`,
/// `DONE`).
pub const MARKER: &str = "NSAPPLY-VM-";

/// One line the guest prints on the serial console.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GuestLine {
    /// The guest booted with `nsapply.probe` (the host's KVM probe): it
    /// prints this and reboots without running anything.
    #[serde(rename = "PROBE-OK")]
    Probe(Probe),
    /// The guest mounted what it needs and is about to run its scenarios.
    #[serde(rename = "BEGIN")]
    Begin(Begin),
    /// One scenario's report (boxed: a report holds two traces).
    #[serde(rename = "CASE")]
    Case(Box<CaseLine>),
    /// Every scenario has reported; the guest reboots next.
    #[serde(rename = "DONE")]
    Done(Done),
}

/// The payload of [`GuestLine::Probe`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
}

/// The payload of [`GuestLine::Begin`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    /// The kernel release.
    pub kernel: String,
    /// How many scenario runs follow (root and rootless variants).
    pub cases: usize,
    /// What went wrong while setting up (a mount that failed); the
    /// scenarios run anyway.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// The payload of [`GuestLine::Case`]: a scenario's report, with the
/// kernel and the time it took. On the wire the report's fields sit beside
/// `kernel` and `ms` (one flat object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseLine {
    /// The kernel release.
    pub kernel: String,
    /// Milliseconds from the scenario's fork to its report.
    pub ms: u64,
    /// The report of [`run_case`](crate::differential::run_case) (its
    /// `detail` cleared on a pass: it repeats the model trace).
    #[serde(flatten)]
    pub report: CaseReport,
}

/// The payload of [`GuestLine::Done`]: the counts and where the time went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// The kernel release.
    pub kernel: String,
    /// Scenario runs that passed.
    pub pass: usize,
    /// Scenario runs that failed.
    pub fail: usize,
    /// Scenario runs the kernel does not support (or that do not apply).
    pub unsupported: usize,
    /// The guest's uptime in seconds (`/proc/uptime`), `None` when it could
    /// not be read.
    pub uptime: Option<f64>,
    /// Milliseconds from the first scenario's start to the last report.
    pub cases_ms: u64,
    /// The part of `cases_ms` pid 1 spent writing lines to the console.
    pub console_ms: u64,
    /// What the CPUs did during the scenarios; `None` when `/proc/stat`
    /// could not be read.
    pub cpu_ms: Option<CpuMs>,
}

/// Time all CPUs spent in each state, in milliseconds: the fields of the
/// first line of `/proc/stat` (proc(5)), in its order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMs {
    /// Normal processes in user mode.
    pub user: u64,
    /// Niced processes in user mode.
    pub nice: u64,
    /// Kernel mode.
    pub system: u64,
    /// Idle.
    pub idle: u64,
    /// Waiting for I/O.
    pub iowait: u64,
    /// Serving interrupts.
    pub irq: u64,
    /// Serving softirqs.
    pub softirq: u64,
}

impl CpuMs {
    /// Milliseconds of USER_HZ clock ticks (100 on x86).
    const MS_PER_TICK: u64 = 10;

    /// The time between two readings of the first line of `/proc/stat`
    /// (its first seven numbers, in clock ticks); `None` unless both have
    /// all seven.
    pub fn between(before: &[u64], after: &[u64]) -> Option<CpuMs> {
        let d = |i: usize| -> Option<u64> {
            let (b, a) = (before.get(i)?, after.get(i)?);
            Some(a.saturating_sub(*b) * Self::MS_PER_TICK)
        };
        Some(CpuMs {
            user: d(0)?,
            nice: d(1)?,
            system: d(2)?,
            idle: d(3)?,
            iowait: d(4)?,
            irq: d(5)?,
            softirq: d(6)?,
        })
    }
}

/// Why a console line that holds [`MARKER`] is not a [`GuestLine`].
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The marker is not followed by a kind and a payload.
    #[error("{MARKER} without a kind and a payload: {0:?}")]
    NoPayload(String),
    /// The payload is not JSON (cut off, or mixed with other output).
    #[error("{MARKER}{kind}: the payload is not JSON: {source}")]
    Json {
        /// The kind of line.
        kind: String,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The payload is JSON but not an object.
    #[error("{MARKER}{kind}: the payload is not a JSON object")]
    NotAnObject {
        /// The kind of line.
        kind: String,
    },
    /// The kind is unknown, or the payload does not have its fields.
    #[error("{MARKER}{kind}: {source}")]
    Shape {
        /// The kind of line.
        kind: String,
        /// What the deserializer said.
        source: serde_json::Error,
    },
}

impl GuestLine {
    /// The line as the guest prints it (without the newline): [`MARKER`],
    /// the kind, a space and the payload as compact JSON.
    ///
    /// Serializing these types cannot fail (plain data, string keys); if it
    /// ever did, the line says so in a kind the host does not know, so the
    /// host reports it instead of missing it.
    pub fn to_line(&self) -> String {
        let why = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => {
                let mut entries = map.into_iter();
                match (entries.next(), entries.next()) {
                    (Some((kind, payload)), None) => return format!("{MARKER}{kind} {payload}"),
                    _ => "not one tagged object".to_owned(),
                }
            }
            Ok(other) => format!("not an object: {other}"),
            Err(e) => e.to_string(),
        };
        format!("{MARKER}UNPRINTABLE {}", Value::String(why))
    }

    /// The guest line in a console line: `Ok(None)` when the line has no
    /// [`MARKER`] (kernel output), the line when it parses after the marker,
    /// an error when it has the marker but not a whole line after it.
    ///
    /// # Errors
    ///
    /// [`LineError`] when the marker is followed by no payload, by a
    /// payload that is not a JSON object, or by an unknown kind or a
    /// payload without the kind's fields.
    pub fn parse_line(line: &str) -> Result<Option<GuestLine>, LineError> {
        let Some(at) = line.find(MARKER) else {
            return Ok(None);
        };
        let rest = &line[at + MARKER.len()..];
        let Some((kind, payload)) = rest.split_once(' ') else {
            return Err(LineError::NoPayload(rest.to_owned()));
        };
        let payload: Value = serde_json::from_str(payload).map_err(|source| LineError::Json {
            kind: kind.to_owned(),
            source,
        })?;
        if !payload.is_object() {
            return Err(LineError::NotAnObject {
                kind: kind.to_owned(),
            });
        }
        let mut tagged = serde_json::Map::new();
        tagged.insert(kind.to_owned(), payload);
        serde_json::from_value(Value::Object(tagged))
            .map(Some)
            .map_err(|source| LineError::Shape {
                kind: kind.to_owned(),
                source,
            })
    }

    /// The kernel release the line names.
    pub fn kernel(&self) -> &str {
        match self {
            GuestLine::Probe(p) => &p.kernel,
            GuestLine::Begin(b) => &b.kernel,
            GuestLine::Case(c) => &c.kernel,
            GuestLine::Done(d) => &d.kernel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::differential::{Mode, Status};
    use nsapply::{Errno, Kind, Outcome, Trace, TraceStep};

    fn trace(last: Outcome) -> Trace {
        Trace {
            steps: vec![
                TraceStep::Unshare {
                    kind: Kind::User,
                    result: Outcome::Ok,
                },
                TraceStep::Setns {
                    kind: Kind::Network,
                    path: "/run/netns/a".into(),
                    result: last,
                    deferred: false,
                },
            ],
            ..Trace::default()
        }
    }

    fn case_line(status: Status) -> CaseLine {
        CaseLine {
            kernel: "6.1.0-50-cloud-amd64".to_owned(),
            ms: 21,
            report: CaseReport {
                case: "joins_net_by_path".to_owned(),
                mode: Mode::Rootless,
                status,
                equal: Some(status == Status::Pass),
                checks_passed: status == Status::Pass,
                model_trace: Some(trace(Outcome::Ok)),
                kernel_trace: Some(trace(Outcome::Err(Errno(libc::EPERM)))),
                detail: if status == Status::Pass {
                    String::new()
                } else {
                    "traces differ: \"quoted\"\nsecond line".to_owned()
                },
            },
        }
    }

    /// One line of every kind, with the values that could go wrong on the
    /// wire (absent fields, nested traces, quotes and newlines).
    fn every_kind() -> Vec<GuestLine> {
        vec![
            GuestLine::Probe(Probe {
                kernel: "6.1.0-50-amd64".to_owned(),
            }),
            GuestLine::Begin(Begin {
                kernel: "6.1.0-50-amd64".to_owned(),
                cases: 100,
                problems: vec!["mount tmpfs on /run: EBUSY".to_owned()],
            }),
            GuestLine::Begin(Begin {
                kernel: "5.10.0-32-cloud-amd64".to_owned(),
                cases: 0,
                problems: Vec::new(),
            }),
            GuestLine::Case(Box::new(case_line(Status::Pass))),
            GuestLine::Case(Box::new(case_line(Status::Fail))),
            GuestLine::Case(Box::new(CaseLine {
                kernel: "5.10.0-32-cloud-amd64".to_owned(),
                ms: 0,
                report: CaseReport {
                    case: "time_offsets_are_visible_in_the_child".to_owned(),
                    mode: Mode::Root,
                    status: Status::Unsupported,
                    equal: None,
                    checks_passed: false,
                    model_trace: None,
                    kernel_trace: None,
                    detail: "time namespace not supported".to_owned(),
                },
            })),
            GuestLine::Done(Done {
                kernel: "6.1.0-50-amd64".to_owned(),
                pass: 98,
                fail: 1,
                unsupported: 1,
                uptime: Some(2.5),
                cases_ms: 1300,
                console_ms: 180,
                cpu_ms: Some(CpuMs {
                    user: 700,
                    nice: 0,
                    system: 1800,
                    idle: 100,
                    iowait: 0,
                    irq: 10,
                    softirq: 20,
                }),
            }),
            GuestLine::Done(Done {
                kernel: "6.1.0-50-amd64".to_owned(),
                pass: 0,
                fail: 0,
                unsupported: 0,
                uptime: None,
                cases_ms: 0,
                console_ms: 0,
                cpu_ms: None,
            }),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for line in every_kind() {
            let text = line.to_line();
            assert!(!text.contains('\n'), "one console line: {text}");
            let back = GuestLine::parse_line(&text)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .unwrap_or_else(|| panic!("{text}: no guest line"));
            assert_eq!(back, line, "{text}");
        }
    }

    #[test]
    fn the_wire_format_is_marker_kind_space_json() {
        let probe = GuestLine::Probe(Probe {
            kernel: "6.1".to_owned(),
        });
        assert_eq!(probe.to_line(), r#"NSAPPLY-VM-PROBE-OK {"kernel":"6.1"}"#);
        let kinds: Vec<String> = every_kind()
            .iter()
            .map(|l| {
                let text = l.to_line();
                text[MARKER.len()..]
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            kinds,
            ["PROBE-OK", "BEGIN", "BEGIN", "CASE", "CASE", "CASE", "DONE", "DONE"]
        );
    }

    #[test]
    fn a_case_line_is_one_flat_object() {
        let text = GuestLine::Case(Box::new(case_line(Status::Pass))).to_line();
        let payload = text.split_once(' ').map(|(_, p)| p).unwrap_or("");
        let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
        for key in [
            "kernel",
            "ms",
            "case",
            "mode",
            "status",
            "equal",
            "checks_passed",
            "model_trace",
            "kernel_trace",
            "detail",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {text}");
        }
        assert_eq!(v["mode"], "rootless");
        assert_eq!(v["status"], "pass");
    }

    #[test]
    fn the_marker_may_follow_kernel_output() {
        let line = GuestLine::Probe(Probe {
            kernel: "6.1".to_owned(),
        });
        let console = format!("[    1.234567] random: crng init done{}", line.to_line());
        assert_eq!(GuestLine::parse_line(&console).ok().flatten(), Some(line));
    }

    #[test]
    fn a_line_without_the_marker_is_no_guest_line() {
        for text in [
            "",
            "[    0.000000] Linux version 6.1.0",
            "NSAPPLY-VM",
            "nsapply-vm-case {}",
        ] {
            assert!(matches!(GuestLine::parse_line(text), Ok(None)), "{text:?}");
        }
    }

    #[test]
    fn a_garbled_line_is_an_error() {
        let whole = GuestLine::Case(Box::new(case_line(Status::Fail))).to_line();
        let cut = &whole[..whole.len() / 2];
        assert!(matches!(
            GuestLine::parse_line(cut),
            Err(LineError::Json { .. })
        ));
        let mixed = whole.replacen(",\"ms\"", "[    2.1] oops,\"ms\"", 1);
        assert!(matches!(
            GuestLine::parse_line(&mixed),
            Err(LineError::Json { .. })
        ));
        for (text, what) in [
            ("NSAPPLY-VM-DONE", "no payload"),
            ("NSAPPLY-VM-", "no kind"),
            (r#"NSAPPLY-VM-LATER {"kernel":"6.1"}"#, "unknown kind"),
            (r#"NSAPPLY-VM-BEGIN {"kernel":"6.1"}"#, "missing field"),
            (
                r#"NSAPPLY-VM-DONE {"kernel":"6.1","pass":"all"}"#,
                "wrong type",
            ),
            (r#"NSAPPLY-VM-PROBE-OK ["6.1"]"#, "not an object"),
            ("NSAPPLY-VM-CASE {}", "empty object"),
        ] {
            let parsed = GuestLine::parse_line(text);
            assert!(parsed.is_err(), "{what}: {text:?} gave {parsed:?}");
        }
        let e = GuestLine::parse_line(r#"NSAPPLY-VM-LATER {"kernel":"6.1"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("NSAPPLY-VM-LATER: unknown variant"), "{e}");
    }

    #[test]
    fn cpu_ms_is_the_difference_in_milliseconds() {
        let before = [100, 0, 300, 50, 1, 2, 3, 99];
        let after = [170, 0, 480, 60, 1, 3, 5, 120];
        assert_eq!(
            CpuMs::between(&before, &after),
            Some(CpuMs {
                user: 700,
                nice: 0,
                system: 1800,
                idle: 100,
                iowait: 0,
                irq: 10,
                softirq: 20,
            })
        );
        assert_eq!(CpuMs::between(&before[..6], &after), None);
        assert_eq!(CpuMs::between(&[], &[]), None);
        // A counter that went backwards counts as nothing, not a panic.
        assert_eq!(CpuMs::between(&after, &before).map(|c| c.user), Some(0));
    }

    #[test]
    fn kernel_names_the_release_of_every_kind() {
        for line in every_kind() {
            assert!(line.kernel().contains('.'), "{line:?}");
        }
    }
}
