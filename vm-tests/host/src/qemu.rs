//! Booting the kernels under QEMU and collecting what the guest says.
//!
//! The accelerator is KVM only when a probe boot under KVM reports within
//! 8 s (`/dev/kvm` may exist while guests hang on it); the verdict is
//! cached per host boot (`cache/kvm-probe`). Else TCG, multi-threaded when
//! the guest has more than one CPU.
//!
//! Each boot runs with a wall-clock timeout; its console is read line by
//! line and every line is kept, the guest's lines ([`GuestLine`]) parsed
//! into a [`Boot`].

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use nsapply_harness::vm::{Begin, CaseLine, Done, GuestLine, Probe};

use crate::error::Error;
use crate::fetch::Kernel;

/// The guest's command line. Besides the serial console and `panic=-1`
/// (a panic reboots at once, which `-no-reboot` turns into QEMU's exit),
/// each option cuts boot time under TCG, measured with `initcall_debug`
/// (the guest's own clock, read from /dev/kmsg, not over the console):
/// `cryptomgr.notests` skips the crypto self-tests (0.7 s); `mitigations=off`,
/// `tsc=reliable` and `no_timer_check` spare work a test VM does not need.
///
/// ACPI stays on: it is how the kernel finds the second CPU (the MADT).
/// With `acpi=off` the PVH-booted kernel finds no local APIC ("smpboot:
/// Allowing 1 CPUs") and runs every scenario on one CPU whatever `-smp`
/// says. The CPUs come from the tables parsed early in boot; the ACPI
/// interpreter (`acpi_init`, 0.19 s) is not needed for that and is left
/// out, like other initcalls nothing here uses: kprobe trace events
/// (`init_kprobe_trace`, 0.2 s), the KDF self-test, the built-in
/// module-signing certificates (no module is loaded), IMA, encrypted
/// keys, the PS/2 controller, the jitter-entropy crypto RNG (the kernel's
/// own RNG does not need it), and three of the four legacy serial ports.
/// Unknown names are ignored, so the list holds for every pinned series.
/// Boots to /init alternated 6 times on 6.1-cloud: 2.16 s without the
/// list, 1.66 s with it; the whole corpus 4.9 s -> 4.5 s host time.
/// (`nolapic_timer` would save another 0.4 s of APIC timer calibration,
/// but a guest hung with it during the scenarios: not used.)
pub const KERNEL_ARGS: &str = concat!(
    "console=ttyS0 panic=-1 cryptomgr.notests mitigations=off tsc=reliable no_timer_check",
    " 8250.nr_uarts=1 initcall_blacklist=acpi_init,init_kprobe_trace,crypto_kdf108_init,",
    "load_system_certificate_list,init_ima,init_encrypted,i8042_init,jent_mod_init"
);

/// How long a KVM probe boot may take: a working KVM guest reports in
/// about a second; where KVM is broken it hangs.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// The accelerator asked for on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when the probe boots a guest with it, else TCG.
    Auto,
    /// Always TCG (emulation).
    Tcg,
    /// Always KVM.
    Kvm,
}

/// The accelerator the boots use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// QEMU's emulator.
    Tcg,
    /// The host's KVM.
    Kvm,
}

impl Accel {
    /// QEMU's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// The accelerator for `choice`: under `auto`, KVM only when a probe
    /// boot of `k` reports under it ([`kvm_works`]).
    pub fn choose(choice: AccelChoice, k: &Kernel, initramfs: &Path, cache: &Path) -> Accel {
        match choice {
            AccelChoice::Tcg => Accel::Tcg,
            AccelChoice::Kvm => Accel::Kvm,
            AccelChoice::Auto if kvm_works(k, initramfs, cache) => Accel::Kvm,
            AccelChoice::Auto => Accel::Tcg,
        }
    }
}

/// What one boot gave.
#[derive(Debug)]
pub struct Boot {
    /// The kernel booted.
    pub kernel: Kernel,
    /// From QEMU's start to the guest's `DONE` (or `PROBE-OK`) line.
    pub verdict_after: Option<Duration>,
    /// The whole boot, up to QEMU's exit.
    pub wall: Duration,
    /// Whether the boot was killed at its timeout.
    pub timed_out: bool,
    /// The guest's `CASE` lines, by (mode, case): root before rootless,
    /// then by name.
    pub cases: BTreeMap<(&'static str, String), CaseLine>,
    /// The guest's `BEGIN` line.
    pub begin: Option<Begin>,
    /// The guest's `DONE` line.
    pub done: Option<Done>,
    /// The guest's `PROBE-OK` line (a KVM probe boot).
    pub probe: Option<Probe>,
    /// Lines that hold the guest's marker but do not parse: why, each.
    pub garbled: Vec<String>,
    /// The console, the guest's lines shortened (for the tail shown on a
    /// failure).
    pub console: Vec<String>,
    /// Every console line, unshortened, with its time since the start.
    pub full: Vec<String>,
    /// Why QEMU could not be started.
    pub error: Option<Error>,
    /// This kernel's first boot, when it was [to be taken
    /// again](Boot::boot_again_because) and the kernel was booted once
    /// more: this boot is the second.
    pub first: Option<Box<Boot>>,
}

impl Boot {
    /// A boot of `kernel` that has seen nothing yet.
    pub fn new(kernel: Kernel) -> Boot {
        Boot {
            kernel,
            verdict_after: None,
            wall: Duration::ZERO,
            timed_out: false,
            cases: BTreeMap::new(),
            begin: None,
            done: None,
            probe: None,
            first: None,
            garbled: Vec::new(),
            console: Vec::new(),
            full: Vec::new(),
            error: None,
        }
    }

    /// Whether QEMU ended on its own before the guest harness printed
    /// anything (no BEGIN, no probe, no case, no garbled line; not an error
    /// starting QEMU, not the timeout): the guest kernel died while booting,
    /// before any nsapply code ran. Seen once under TCG (trixie's 6.12, an
    /// `int3` Oops in `sched_clock_cpu` 1.4 s into the boot; the same
    /// kernel passed on the runs before and after). Such a boot says
    /// nothing about nsapply or the model, so [`boot_all`] boots the kernel
    /// once more, and the report names it. A guest that dies after its
    /// BEGIN line is not booted again.
    pub fn ended_before_the_guest(&self) -> bool {
        self.error.is_none()
            && !self.timed_out
            && self.begin.is_none()
            && self.probe.is_none()
            && self.cases.is_empty()
            && self.garbled.is_empty()
            && self.done.is_none()
    }

    /// Whether the guest kernel died of an `int3` Oops before the guest's
    /// DONE line (not an error starting QEMU, not the timeout), whatever
    /// the harness had printed. An `int3` the kernel does not expect is
    /// the breakpoint its live text patching (`text_poke_bp`) plants and
    /// removes; under TCG a vCPU can run a stale translation of the
    /// patched text after the patching ended. Seen twice here: trixie's
    /// 6.12 in `sched_clock_cpu` while booting, and sid's 7.2 (cloud) in
    /// `ktime_get` 2.2 s in, after the guest's BEGIN line, with the byte
    /// at RIP already back to a `nop` (`<90>` in the Oops's Code line);
    /// both kernels passed on the runs before and after. Such a crash says
    /// nothing about nsapply or the model; any other crash after BEGIN
    /// still fails the run.
    pub fn died_of_an_int3_oops(&self) -> bool {
        self.error.is_none()
            && !self.timed_out
            && self.done.is_none()
            && self.probe.is_none()
            && self.console.iter().any(|l| l.contains("Oops: int3:"))
    }

    /// Why this boot is taken again ([`boot_all`]): it
    /// [ended before the guest](Boot::ended_before_the_guest), or
    /// [died of an `int3` Oops](Boot::died_of_an_int3_oops).
    pub fn boot_again_because(&self) -> Option<&'static str> {
        if self.ended_before_the_guest() {
            Some("it ended before the guest harness started")
        } else if self.died_of_an_int3_oops() {
            Some("its guest kernel died of an int3 Oops (TCG ran stale patched kernel text)")
        } else {
            None
        }
    }

    /// Takes one console line, read `at` after QEMU's start.
    pub fn take_line(&mut self, line: &str, at: Duration) {
        self.full.push(format!("{:7.3} {line}", at.as_secs_f64()));
        let guest = match GuestLine::parse_line(line) {
            Ok(None) => {
                self.console.push(line.to_owned());
                return;
            }
            Ok(Some(guest)) => guest,
            Err(e) => {
                self.garbled.push(e.to_string());
                self.console.push(shorten(line));
                return;
            }
        };
        self.console.push(shorten(line));
        match guest {
            GuestLine::Case(c) => {
                let key = (c.report.mode.as_str(), c.report.case.clone());
                self.cases.insert(key, *c);
            }
            GuestLine::Begin(b) => self.begin = Some(b),
            GuestLine::Done(d) => {
                self.done = Some(d);
                self.verdict_after = Some(at);
            }
            GuestLine::Probe(p) => {
                self.probe = Some(p);
                self.verdict_after = Some(at);
            }
        }
    }
}

/// `line` cut to 300 bytes (on a character boundary), `...` marking a cut.
fn shorten(line: &str) -> String {
    if line.len() > 300 {
        let mut end = 300;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &line[..end])
    } else {
        line.to_owned()
    }
}

/// The QEMU command that boots `k` with `initramfs`.
fn qemu_command(k: &Kernel, initramfs: &Path, accel: Accel, smp: usize, append: &str) -> Command {
    let accel = match accel {
        Accel::Tcg if smp > 1 => "tcg,thread=multi",
        other => other.as_str(),
    };
    let smp = smp.to_string();
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", accel, "-M", "pc", "-m", "256", "-smp", &smp])
        .args(["-no-reboot", "-nodefaults", "-display", "none"])
        .args(["-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&k.vmlinux)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Boots `k` and collects its console until QEMU exits or `timeout`.
pub fn boot(
    k: &Kernel,
    initramfs: &Path,
    accel: Accel,
    smp: usize,
    append: &str,
    timeout: Duration,
) -> Boot {
    let mut b = Boot::new(k.clone());
    let start = Instant::now();
    let mut cmd = qemu_command(k, initramfs, accel, smp, append);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            b.error = Some(Error::Spawn {
                command: "qemu-system-x86_64".to_owned(),
                source,
            });
            return b;
        }
    };
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        if let Some(out) = stdout {
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
            }
        }
    });
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let deadline = start + timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            b.timed_out = true;
            let _ = child.kill();
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok((at, line)) => b.take_line(&line, at.duration_since(start)),
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.wait();
    let _ = reader.join();
    // Lines still queued after a kill.
    while let Ok((at, line)) = rx.try_recv() {
        b.take_line(&line, at.duration_since(start));
    }
    b.wall = start.elapsed();
    let stderr = err_reader.join().unwrap_or_default();
    if !stderr.trim().is_empty() {
        b.console.push(format!("[qemu stderr] {}", stderr.trim()));
    }
    b
}

/// Whether a guest boots and reports under KVM here. Cached per host boot
/// in `cache/kvm-probe` (`<boot_id> works|broken`).
fn kvm_works(k: &Kernel, initramfs: &Path, cache: &Path) -> bool {
    if !Path::new("/dev/kvm").exists() {
        return false;
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let stamp = cache.join("kvm-probe");
    if let Ok(text) = fs::read_to_string(&stamp) {
        if let Some((id, verdict)) = text.trim().rsplit_once(' ') {
            if id == boot_id.trim() {
                return verdict == "works";
            }
        }
    }
    let b = boot(
        k,
        initramfs,
        Accel::Kvm,
        1,
        &format!("{KERNEL_ARGS} quiet nsapply.probe"),
        KVM_PROBE_TIMEOUT,
    );
    let works = b.probe.is_some() && !b.timed_out;
    let verdict = if works { "works" } else { "broken" };
    eprintln!(
        "vm-tests: KVM probe with {}: {verdict} ({:.1}s){}",
        k.name,
        b.wall.as_secs_f64(),
        if works { "" } else { "; using TCG" }
    );
    let _ = fs::write(&stamp, format!("{} {verdict}\n", boot_id.trim()));
    works
}

/// `boot()`, and once more when that boot is [to be taken
/// again](Boot::boot_again_because): the second boot, with the first in
/// [`Boot::first`].
fn once_more_if_needed(mut boot: impl FnMut() -> Boot) -> Boot {
    let first = boot();
    let Some(why) = first.boot_again_because() else {
        return first;
    };
    eprintln!(
        "vm-tests: {}: {why} ({:.1}s); booting it once more",
        first.kernel.name,
        first.wall.as_secs_f64()
    );
    let mut second = boot();
    second.first = Some(Box::new(first));
    second
}

/// Boots every kernel, `jobs` at a time, each with `smp` CPUs and
/// `timeout`; the boots in the order of `kernels`. A kernel whose boot
/// is [to be taken again](Boot::boot_again_because) is booted once
/// more, and the second boot is the one kept (with the first in
/// [`Boot::first`]).
pub fn boot_all(
    kernels: &[Kernel],
    initramfs: &Path,
    (accel, smp): (Accel, usize),
    append: &str,
    jobs: usize,
    timeout: Duration,
) -> Vec<Boot> {
    let queue: Arc<Mutex<VecDeque<(usize, Kernel)>>> =
        Arc::new(Mutex::new(kernels.iter().cloned().enumerate().collect()));
    let results: Arc<Mutex<Vec<(usize, Boot)>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..jobs.min(kernels.len()))
        .map(|_| {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            let initramfs = initramfs.to_path_buf();
            let append = append.to_owned();
            std::thread::spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((i, k)) = next else { break };
                let b = once_more_if_needed(|| boot(&k, &initramfs, accel, smp, &append, timeout));
                eprintln!(
                    "vm-tests: {} done: {}",
                    k.name,
                    match (b.verdict_after, b.timed_out) {
                        (Some(t), _) => format!("verdict after {:.1}s", t.as_secs_f64()),
                        (None, true) => "TIMEOUT".to_owned(),
                        (None, false) => "no verdict".to_owned(),
                    }
                );
                if let Ok(mut r) = results.lock() {
                    r.push((i, b));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut r = Arc::try_unwrap(results)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, b)| b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsapply_harness::differential::{CaseReport, Mode, Status};
    use std::path::PathBuf;

    fn kernel() -> Kernel {
        Kernel {
            name: "6.1-cloud".to_owned(),
            vmlinux: PathBuf::from("/cache/kernels/6.1-cloud/vmlinux"),
            release: "6.1.0-50-cloud-amd64".to_owned(),
        }
    }

    fn case(name: &str, mode: Mode) -> GuestLine {
        GuestLine::Case(Box::new(CaseLine {
            kernel: "6.1.0-50-cloud-amd64".to_owned(),
            ms: 12,
            report: CaseReport {
                case: name.to_owned(),
                mode,
                status: Status::Pass,
                equal: Some(true),
                checks_passed: true,
                model_trace: None,
                kernel_trace: None,
                detail: String::new(),
            },
        }))
    }

    #[test]
    fn the_guest_s_lines_fill_the_boot() {
        let mut b = Boot::new(kernel());
        let ms = Duration::from_millis;
        b.take_line("[    0.000000] Linux version 6.1.0-50-cloud-amd64", ms(300));
        let begin = GuestLine::Begin(Begin {
            kernel: "6.1.0-50-cloud-amd64".to_owned(),
            cases: 2,
            problems: Vec::new(),
        });
        b.take_line(&begin.to_line(), ms(1900));
        b.take_line(&case("creates_user", Mode::Rootless).to_line(), ms(2000));
        // After kernel output that had no newline of its own.
        let after = format!(
            "[    1.9] random: crng init done{}",
            case("creates_user", Mode::Root).to_line()
        );
        b.take_line(&after, ms(2100));
        let done = GuestLine::Done(Done {
            kernel: "6.1.0-50-cloud-amd64".to_owned(),
            pass: 2,
            fail: 0,
            unsupported: 0,
            uptime: Some(2.0),
            cases_ms: 200,
            console_ms: 10,
            cpu_ms: None,
        });
        b.take_line(&done.to_line(), ms(2500));
        assert_eq!(b.begin.as_ref().map(|x| x.cases), Some(2));
        assert_eq!(
            b.cases.keys().cloned().collect::<Vec<_>>(),
            [
                ("root", "creates_user".to_owned()),
                ("rootless", "creates_user".to_owned())
            ]
        );
        assert_eq!(b.done.as_ref().map(|d| d.pass), Some(2));
        assert_eq!(b.verdict_after, Some(ms(2500)));
        assert!(b.garbled.is_empty() && b.probe.is_none());
        assert_eq!(b.full.len(), 5);
        assert_eq!(
            b.full[0],
            "  0.300 [    0.000000] Linux version 6.1.0-50-cloud-amd64"
        );
        assert_eq!(b.console.len(), 5);
    }

    #[test]
    fn only_a_boot_that_died_outside_nsapply_is_booted_again() {
        let ms = Duration::from_millis;
        // A guest kernel that prints `oops` and panics, after the guest's
        // BEGIN line when `begun`.
        fn crashed(oops: &str, begun: bool) -> Boot {
            let ms = Duration::from_millis;
            let mut b = Boot::new(kernel());
            if begun {
                let begin = GuestLine::Begin(Begin {
                    kernel: "6.1.0-50-cloud-amd64".to_owned(),
                    cases: 1,
                    problems: Vec::new(),
                });
                b.take_line(&begin.to_line(), ms(1000));
            }
            b.take_line(&format!("[    1.39] Oops: {oops} [#1] SMP NOPTI"), ms(1390));
            b.take_line(
                "[    1.40] Kernel panic - not syncing: Fatal exception in interrupt",
                ms(1400),
            );
            b
        }
        let died = || crashed("int3: 0000", false);
        let int3_after_begin = || crashed("int3: 0000", true);
        let gpf_after_begin = || crashed("general protection fault: 0000", true);
        let timed_out = || Boot {
            timed_out: true,
            ..died()
        };
        let int3_after_done = || {
            let mut b = int3_after_begin();
            b.take_line(&case("creates_user", Mode::Root).to_line(), ms(1500));
            let done = GuestLine::Done(Done {
                kernel: "6.1.0-50-cloud-amd64".to_owned(),
                pass: 1,
                fail: 0,
                unsupported: 0,
                uptime: Some(1.5),
                cases_ms: 100,
                console_ms: 10,
                cpu_ms: None,
            });
            b.take_line(&done.to_line(), ms(1600));
            b.take_line("[    1.70] Oops: int3: 0000 [#1] SMP NOPTI", ms(1700));
            b
        };
        assert!(died().ended_before_the_guest());
        assert!(!int3_after_begin().ended_before_the_guest());
        assert!(int3_after_begin().died_of_an_int3_oops());
        assert!(!gpf_after_begin().died_of_an_int3_oops());
        assert!(!timed_out().ended_before_the_guest() && !timed_out().died_of_an_int3_oops());
        assert!(!int3_after_done().died_of_an_int3_oops());
        let mut garbled = crashed("general protection fault: 0000", false);
        garbled.take_line("NSAPPLY-VM-CASE {", ms(1500));
        assert!(!garbled.ended_before_the_guest());
        assert_eq!(
            died().boot_again_because(),
            Some("it ended before the guest harness started")
        );
        assert!(int3_after_begin()
            .boot_again_because()
            .is_some_and(|why| why.contains("int3 Oops")));

        // Booted again once (not twice), the second kept, the first in it.
        for make in [&died as &dyn Fn() -> Boot, &int3_after_begin] {
            let mut boots = 0;
            let b = once_more_if_needed(|| {
                boots += 1;
                make()
            });
            assert_eq!(boots, 2);
            let first = b.first.as_deref().map(|f| f.console.len());
            assert!(first.is_some_and(|n| n >= 2));
            assert!(b.first.as_ref().is_some_and(|f| f.first.is_none()));
        }
        // Any other crash after BEGIN, a timeout, or a crash after DONE:
        // kept as it is.
        for make in [
            &gpf_after_begin as &dyn Fn() -> Boot,
            &timed_out,
            &int3_after_done,
        ] {
            let mut boots = 0;
            let b = once_more_if_needed(|| {
                boots += 1;
                make()
            });
            assert_eq!(boots, 1);
            assert!(b.first.is_none());
        }
    }

    #[test]
    fn a_probe_line_is_a_verdict() {
        let mut b = Boot::new(kernel());
        let probe = GuestLine::Probe(Probe {
            kernel: "6.1.0-50-cloud-amd64".to_owned(),
        });
        b.take_line(&probe.to_line(), Duration::from_millis(900));
        assert!(b.probe.is_some() && b.done.is_none());
        assert_eq!(b.verdict_after, Some(Duration::from_millis(900)));
    }

    #[test]
    fn a_garbled_guest_line_is_kept_and_counted() {
        let mut b = Boot::new(kernel());
        let whole = case("creates_user", Mode::Root).to_line();
        b.take_line(&whole[..40], Duration::ZERO);
        assert!(b.cases.is_empty());
        assert_eq!(b.garbled.len(), 1);
        assert!(
            b.garbled[0].starts_with("NSAPPLY-VM-CASE: "),
            "{:?}",
            b.garbled
        );
        assert_eq!(b.console, [&whole[..40]]);
    }

    #[test]
    fn long_guest_lines_are_shortened_on_a_char_boundary() {
        let long = format!("{}é{}", "a".repeat(299), "b".repeat(10));
        let s = shorten(&long);
        assert_eq!(s, format!("{}...", "a".repeat(299)));
        assert_eq!(shorten("short"), "short");
    }

    #[test]
    fn tcg_is_multi_threaded_with_more_than_one_cpu() {
        let args = |accel, smp| {
            let c = qemu_command(&kernel(), Path::new("/i.cpio"), accel, smp, "console=ttyS0");
            c.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let a = args(Accel::Tcg, 2);
        assert_eq!(a[..2], ["-accel", "tcg,thread=multi"]);
        assert!(a.windows(2).any(|w| w == ["-smp", "2"]));
        assert_eq!(args(Accel::Tcg, 1)[1], "tcg");
        assert_eq!(args(Accel::Kvm, 2)[1], "kvm");
        assert_eq!(a[a.len() - 2..], ["-append", "console=ttyS0"]);
    }

    #[test]
    fn a_forced_accelerator_is_not_probed() {
        let k = kernel();
        let none = Path::new("/nonexistent");
        assert_eq!(Accel::choose(AccelChoice::Tcg, &k, none, none), Accel::Tcg);
        assert_eq!(Accel::choose(AccelChoice::Kvm, &k, none, none), Accel::Kvm);
    }
}
