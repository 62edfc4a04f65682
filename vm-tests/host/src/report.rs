//! The verdict: the table scenario × kernel, one line of counts and times
//! per kernel, the run's figures, the console tail of each boot that went
//! wrong, the failures, and whether the run passed.
//!
//! A cell is `pass`, `FAIL` (the detail follows the table), `not
//! supported`, `n/a`, or `MISSING` (the guest did not report it). A boot
//! goes wrong when QEMU could not start, at its timeout, without a `DONE`
//! line, with a garbled guest line, or with fewer reports than its `BEGIN`
//! line announced.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use nsapply_harness::differential::Status;

use crate::qemu::{Accel, Boot};

/// How the run was made, for its figures and its verdict.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The accelerator used.
    pub accel: Accel,
    /// Boots at a time.
    pub jobs: usize,
    /// Guest CPUs per boot.
    pub smp: usize,
    /// The timeout per boot.
    pub timeout: Duration,
    /// The planted check: pass only when some model trace differs from
    /// the kernel's.
    pub expect_mismatch: bool,
    /// Fetching, extracting and building the initramfs took this long.
    pub prepared: Duration,
    /// The boots took this long, wall clock.
    pub matrix: Duration,
}

/// What the run prints on standard output, and whether it passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The report, newline-terminated.
    pub text: String,
    /// Whether the run passed (exit status 0).
    pub ok: bool,
}

/// The row label of a scenario: its name for root, `<mode>::<name>` else.
fn label(mode: &str, case: &str) -> String {
    if mode == "root" {
        case.to_owned()
    } else {
        format!("{mode}::{case}")
    }
}

/// The median of `times` (sorted here); NaN when empty.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n == 0 {
        f64::NAN
    } else if !n.is_multiple_of(2) {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

/// Why a boot went wrong, if it did.
fn boot_problem(b: &Boot, timeout: Duration) -> Option<String> {
    if let Some(e) = &b.error {
        return Some(e.to_string());
    }
    if b.timed_out {
        return Some(format!("timed out after {}s", timeout.as_secs()));
    }
    if b.done.is_none() {
        return Some("the guest did not report (no DONE line)".to_owned());
    }
    if let Some(first) = b.garbled.first() {
        return Some(format!(
            "the guest printed {} garbled line(s), the first: {first}",
            b.garbled.len()
        ));
    }
    b.begin
        .as_ref()
        .map(|v| v.cases)
        .filter(|n| *n != b.cases.len())
        .map(|n| {
            format!(
                "the guest announced {n} scenario runs and reported {}",
                b.cases.len()
            )
        })
}

/// The report of `boots` (see the module docs).
pub fn render(boots: &[Boot], s: &Settings) -> Verdict {
    let mut rows: BTreeSet<(&str, String)> = BTreeSet::new();
    for b in boots {
        rows.extend(b.cases.keys().cloned());
    }
    let width = rows
        .iter()
        .map(|(m, c)| label(m, c).len())
        .max()
        .unwrap_or(8)
        .max(8);
    let colw = boots
        .iter()
        .map(|b| b.kernel.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = write!(out, "{:<width$}", "scenario");
    for b in boots {
        let _ = write!(out, "  {:<colw$}", b.kernel.name);
    }
    out.push('\n');
    let mut mismatches = Vec::new();
    let mut failures = Vec::new();
    for (mode, case) in &rows {
        let row = label(mode, case);
        let _ = write!(out, "{row:<width$}");
        for b in boots {
            let cell = match b.cases.get(&(*mode, case.clone())) {
                None => {
                    failures.push(format!("{}: {row}: no report", b.kernel.name));
                    "MISSING"
                }
                Some(line) => {
                    let r = &line.report;
                    if r.equal == Some(false) {
                        mismatches.push(format!("{}: {row}", b.kernel.name));
                    }
                    match r.status {
                        Status::Pass => "pass",
                        Status::Unsupported => "not supported",
                        Status::NotApplicable => "n/a",
                        Status::Fail => {
                            failures.push(format!("{}: {row}: {}", b.kernel.name, r.detail));
                            "FAIL"
                        }
                    }
                }
            };
            let _ = write!(out, "  {cell:<colw$}");
        }
        out.push('\n');
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<14} {:<26} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8}",
        "kernel", "release", "pass", "fail", "n/s", "verdict_s", "uptime_s", "wall_s"
    );
    let mut bad_boots = Vec::new();
    let mut times = Vec::new();
    for b in boots {
        let d = b.done.as_ref();
        let count = |f: fn(&nsapply_harness::vm::Done) -> usize| {
            d.map_or("-".to_owned(), |d| f(d).to_string())
        };
        let verdict = b
            .verdict_after
            .map_or("-".to_owned(), |t| format!("{:.2}", t.as_secs_f64()));
        let uptime = d
            .and_then(|d| d.uptime)
            .map_or("-".to_owned(), |u| format!("{u:.2}"));
        let release = b
            .begin
            .as_ref()
            .map_or(b.kernel.release.as_str(), |v| v.kernel.as_str());
        let _ = writeln!(
            out,
            "{:<14} {:<26} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8.2}",
            b.kernel.name,
            release,
            count(|d| d.pass),
            count(|d| d.fail),
            count(|d| d.unsupported),
            verdict,
            uptime,
            b.wall.as_secs_f64()
        );
        if let Some(t) = b.verdict_after {
            times.push(t.as_secs_f64());
        }
        if let Some(why) = boot_problem(b, s.timeout) {
            bad_boots.push((b, why));
        }
    }
    let timed = times.len();
    let _ = writeln!(
        out,
        "\naccel {}, jobs {}, smp {}: boot-to-verdict median {:.2}s over {timed} kernels; matrix {:.1}s wall; preparation {:.1}s",
        s.accel.as_str(),
        s.jobs,
        s.smp,
        median(times),
        s.matrix.as_secs_f64(),
        s.prepared.as_secs_f64()
    );
    for (b, why) in &bad_boots {
        let _ = writeln!(out, "\n{}: {why}; console tail:", b.kernel.name);
        let from = b.console.len().saturating_sub(40);
        for l in &b.console[from..] {
            let _ = writeln!(out, "  | {l}");
        }
    }
    // Each kernel booted twice, with why its first boot was taken again.
    let booted_twice: Vec<String> = boots
        .iter()
        .filter_map(|b| {
            let why = b.first.as_ref()?.boot_again_because().unwrap_or("?");
            Some(format!("{} ({why})", b.kernel.name))
        })
        .collect();
    for b in boots {
        if let Some(first) = &b.first {
            let _ = writeln!(
                out,
                "\n{}: the first boot ended after {:.1}s: {}; this is the second boot. The first's console tail:",
                b.kernel.name,
                first.wall.as_secs_f64(),
                first.boot_again_because().unwrap_or("?")
            );
            let from = first.console.len().saturating_sub(12);
            for l in &first.console[from..] {
                let _ = writeln!(out, "  | {l}");
            }
        }
    }
    for f in &failures {
        let _ = writeln!(out, "\nFAIL {f}");
    }
    if s.expect_mismatch {
        let ok = !mismatches.is_empty() && bad_boots.is_empty();
        if ok {
            let _ = writeln!(
                out,
                "\nexpected mismatch found ({}): {}",
                mismatches.len(),
                mismatches.join(", ")
            );
        } else {
            let _ = writeln!(
                out,
                "\nEXPECTED A MISMATCH between the model and the kernel, found none"
            );
        }
        return Verdict { text: out, ok };
    }
    let ok = failures.is_empty() && bad_boots.is_empty() && !boots.is_empty();
    let _ = writeln!(
        out,
        "\n{}: {} scenario runs, {} failed, {} kernels without a verdict",
        if ok { "vm-tests ok" } else { "vm-tests FAILED" },
        boots.iter().map(|b| b.cases.len()).sum::<usize>(),
        failures.len(),
        bad_boots.len()
    );
    if !booted_twice.is_empty() {
        // A line of its own: .ci/run puts it on the stage's summary line.
        let _ = writeln!(out, "booted twice: {}", booted_twice.join(", "));
    }
    Verdict { text: out, ok }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::Kernel;
    use nsapply_harness::differential::{CaseReport, Mode};
    use nsapply_harness::vm::{Begin, CaseLine, Done, GuestLine};
    use std::path::PathBuf;

    const RELEASE: &str = "6.1.0-50-cloud-amd64";

    fn settings() -> Settings {
        Settings {
            accel: Accel::Tcg,
            jobs: 1,
            smp: 2,
            timeout: Duration::from_secs(120),
            expect_mismatch: false,
            prepared: Duration::from_millis(40),
            matrix: Duration::from_millis(5700),
        }
    }

    fn case(name: &str, mode: Mode, status: Status, equal: Option<bool>) -> GuestLine {
        GuestLine::Case(Box::new(CaseLine {
            kernel: RELEASE.to_owned(),
            ms: 10,
            report: CaseReport {
                case: name.to_owned(),
                mode,
                status,
                equal,
                checks_passed: status == Status::Pass,
                model_trace: None,
                kernel_trace: None,
                detail: if status == Status::Fail {
                    "traces differ".to_owned()
                } else {
                    String::new()
                },
            },
        }))
    }

    /// A boot of `name` that printed `lines` between its BEGIN (announcing
    /// as many cases) and its DONE line, the DONE line `verdict` seconds
    /// after the start.
    fn boot(name: &str, lines: &[GuestLine], verdict: f64) -> Boot {
        let mut b = Boot::new(Kernel {
            name: name.to_owned(),
            vmlinux: PathBuf::from("/vmlinux"),
            release: "from-the-package".to_owned(),
        });
        let at = Duration::from_secs_f64;
        let begin = GuestLine::Begin(Begin {
            kernel: RELEASE.to_owned(),
            cases: lines.len(),
            problems: Vec::new(),
        });
        b.take_line(&begin.to_line(), at(1.0));
        let count = |s: Status| {
            lines
                .iter()
                .filter(|l| matches!(l, GuestLine::Case(c) if c.report.status == s))
                .count()
        };
        for l in lines {
            b.take_line(&l.to_line(), at(1.5));
        }
        let done = GuestLine::Done(Done {
            kernel: RELEASE.to_owned(),
            pass: count(Status::Pass),
            fail: count(Status::Fail),
            unsupported: count(Status::Unsupported) + count(Status::NotApplicable),
            uptime: Some(verdict - 0.5),
            cases_ms: 400,
            console_ms: 30,
            cpu_ms: None,
        });
        b.take_line(&done.to_line(), at(verdict));
        b.wall = at(verdict + 0.01);
        b
    }

    #[test]
    fn an_all_pass_run_gives_the_table_and_passes() {
        let lines = [
            case("creates_user", Mode::Root, Status::Pass, Some(true)),
            case("creates_user", Mode::Rootless, Status::Pass, Some(true)),
            case("bad_x", Mode::Root, Status::Pass, None),
        ];
        let v = render(&[boot("6.1-cloud", &lines, 2.74)], &settings());
        assert!(v.ok, "{}", v.text);
        let expected = "\
scenario                6.1-cloud
bad_x                   pass     
creates_user            pass     
rootless::creates_user  pass     

kernel         release                      pass   fail    n/s  verdict_s uptime_s   wall_s
6.1-cloud      6.1.0-50-cloud-amd64            3      0      0       2.74     2.24     2.75

accel tcg, jobs 1, smp 2: boot-to-verdict median 2.74s over 1 kernels; matrix 5.7s wall; preparation 0.0s

vm-tests ok: 3 scenario runs, 0 failed, 0 kernels without a verdict
";
        assert_eq!(v.text, expected);
    }

    #[test]
    fn failures_missing_reports_and_bad_boots_fail_the_run() {
        let a = boot(
            "6.1-generic",
            &[
                case("creates_user", Mode::Root, Status::Fail, Some(false)),
                case("time_offsets", Mode::Root, Status::Unsupported, None),
                case("joins", Mode::Rootless, Status::NotApplicable, None),
            ],
            3.0,
        );
        let mut b = boot(
            "6.1-cloud",
            &[case("creates_user", Mode::Root, Status::Pass, Some(true))],
            5.0,
        );
        b.done = None;
        b.timed_out = true;
        let v = render(&[a, b], &settings());
        assert!(!v.ok);
        let row = |name: &str| {
            v.text
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| {
                    l.split("  ")
                        .filter(|c| !c.trim().is_empty())
                        .map(str::trim)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        assert_eq!(row("creates_user"), ["creates_user", "FAIL", "pass"]);
        assert_eq!(
            row("time_offsets"),
            ["time_offsets", "not supported", "MISSING"]
        );
        assert_eq!(
            row("rootless::joins"),
            ["rootless::joins", "n/a", "MISSING"]
        );
        assert!(v
            .text
            .contains("\nFAIL 6.1-generic: creates_user: traces differ\n"));
        assert!(v
            .text
            .contains("\nFAIL 6.1-cloud: time_offsets: no report\n"));
        assert!(v
            .text
            .contains("\n6.1-cloud: timed out after 120s; console tail:\n  | NSAPPLY-VM-BEGIN "));
        assert!(v
            .text
            .contains("6.1-cloud      6.1.0-50-cloud-amd64            -      -      -"));
        assert!(v
            .text
            .contains("boot-to-verdict median 4.00s over 2 kernels"));
        assert!(v.text.ends_with(
            "\nvm-tests FAILED: 4 scenario runs, 3 failed, 1 kernels without a verdict\n"
        ));
    }

    #[test]
    fn a_short_or_garbled_boot_fails_the_run() {
        let lines = [case("creates_user", Mode::Root, Status::Pass, Some(true))];
        let mut short = boot("6.1-cloud", &lines, 2.0);
        if let Some(begin) = short.begin.as_mut() {
            begin.cases = 2;
        }
        let v = render(&[short], &settings());
        assert!(!v.ok);
        assert!(v.text.contains(
            "6.1-cloud: the guest announced 2 scenario runs and reported 1; console tail:"
        ));
        let mut garbled = boot("6.1-cloud", &lines, 2.0);
        garbled.take_line("NSAPPLY-VM-CASE {\"kernel\":", Duration::from_secs(2));
        let v = render(&[garbled], &settings());
        assert!(!v.ok);
        assert!(v.text.contains(
            "6.1-cloud: the guest printed 1 garbled line(s), the first: NSAPPLY-VM-CASE: "
        ));
        assert!(!render(&[], &settings()).ok);
    }

    #[test]
    fn a_kernel_booted_twice_is_named_and_its_second_boot_decides() {
        let lines = [case("creates_user", Mode::Root, Status::Pass, Some(true))];
        let died = || {
            let mut d = boot("6.12t-generic", &[], 0.0);
            d.begin = None;
            d.done = None;
            d.verdict_after = None;
            d.console = vec![
                "[    1.40] Kernel panic - not syncing: Attempted to kill the idle task!"
                    .to_owned(),
            ];
            d.wall = Duration::from_millis(1450);
            Box::new(d)
        };
        let mut second = boot("6.12t-generic", &lines, 3.0);
        second.first = Some(died());
        let v = render(&[boot("6.1-cloud", &lines, 2.0), second], &settings());
        assert!(v.ok, "{}", v.text);
        assert!(v.text.contains(
            "\n6.12t-generic: the first boot ended after 1.4s: it ended before the guest harness started; this is the second boot. The first's console tail:\n  | [    1.40] Kernel panic"
        ));
        assert!(v.text.ends_with(
            "vm-tests ok: 2 scenario runs, 0 failed, 0 kernels without a verdict\nbooted twice: 6.12t-generic (it ended before the guest harness started)\n"
        ));
        // A second boot that dies too fails the run.
        let mut again = *died();
        again.first = Some(died());
        let v = render(&[again], &settings());
        assert!(!v.ok);
        assert!(v
            .text
            .contains("6.12t-generic: the guest did not report (no DONE line)"));
        // No line when every kernel booted once.
        let v = render(&[boot("6.1-cloud", &lines, 2.0)], &settings());
        assert!(!v.text.contains("booted twice"));
    }

    #[test]
    fn the_planted_check_passes_only_on_a_mismatch() {
        let s = Settings {
            expect_mismatch: true,
            ..settings()
        };
        let caught = boot(
            "6.1-cloud",
            &[
                case("joining_own", Mode::Root, Status::Fail, Some(false)),
                case("joining_own", Mode::Rootless, Status::Fail, Some(false)),
                case("creates_user", Mode::Root, Status::Pass, Some(true)),
            ],
            2.0,
        );
        let v = render(&[caught], &s);
        assert!(v.ok, "{}", v.text);
        assert!(v.text.ends_with(
            "\nexpected mismatch found (2): 6.1-cloud: joining_own, 6.1-cloud: rootless::joining_own\n"
        ));
        let clean = boot(
            "6.1-cloud",
            &[case("creates_user", Mode::Root, Status::Pass, Some(true))],
            2.0,
        );
        let v = render(&[clean], &s);
        assert!(!v.ok);
        assert!(v
            .text
            .ends_with("\nEXPECTED A MISMATCH between the model and the kernel, found none\n"));
    }

    #[test]
    fn median_of_even_odd_and_no_times() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
