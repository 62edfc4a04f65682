//! The host side of nsapply's VM tests (`vm-tests/run` calls it):
//!
//! 1. reads the pins of `vm-tests/KERNELS` (apt sources and kernel
//!    packages);
//! 2. fetches each pinned kernel that is not cached, with `apt-get download`
//!    through a private apt configuration under the cache (the host's apt
//!    sources are not used nor changed) and `dpkg-deb -x`;
//! 3. extracts the uncompressed `vmlinux` from the bzImage (the payload
//!    the setup header points at, decompressed by `xz`, `lz4`, `zstd` or
//!    `gzip` after its magic; the result must be a complete x86-64 ELF), so
//!    QEMU boots it through the PVH entry point;
//! 4. writes the initramfs (cpio newc: the guest binary as `/init`,
//!    `/dev/console`, empty directories), cached per guest binary;
//! 5. probes KVM once per host boot (a guest must actually report under
//!    KVM), else uses TCG;
//! 6. boots every selected kernel (`--jobs` at a time) with a wall-clock
//!    timeout, reads the guest's lines from the serial console, and prints
//!    the table kernel × scenario and the boot-to-verdict time per kernel.
//!
//! Exit status: 0 when every scenario passed (or is not supported) on every
//! kernel; 1 on a mismatch, a failed check, a guest that did not report or
//! a timeout (with the console tail); 2 on a setup error. With
//! `--expect-mismatch` (the planted check) it is 0 only when some scenario's
//! model trace differs from the kernel's.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const USAGE: &str = "\
usage: vm-run --dir VM_TESTS_DIR --guest GUEST_BINARY [options]
  --kernel NAME[,NAME]  only these pins of KERNELS (default: all)
  --jobs N              boots at a time (default 1: one boot with every CPU)
  --timeout SECS        wall-clock limit per boot (default 120)
  --smp N               guest CPUs; the guest runs N cases at a time
                        (default: the CPUs left per boot, at least 1)
  --cases A[,B]         only these scenarios (default: the whole corpus)
  --guest-jobs N        scenarios the guest runs at once (default: its CPUs)
  --accel auto|tcg|kvm  auto: KVM only when the probe boots a guest (default)
  --expect-mismatch     succeed only if some model trace differs from the kernel's
  --initramfs-name N    cache the initramfs as N-<hash>.cpio (default guest)
  --fetch-only          fetch and extract the kernels, build the initramfs, boot nothing
  --list                print the pins and exit";

type Res<T> = Result<T, String>;

struct Args {
    dir: PathBuf,
    guest: PathBuf,
    kernels: Vec<String>,
    jobs: usize,
    smp: Option<usize>,
    timeout: Duration,
    cases: Option<String>,
    /// Scenarios the guest runs at once (default: one per guest CPU).
    guest_jobs: Option<usize>,
    accel: String,
    expect_mismatch: bool,
    fetch_only: bool,
    list: bool,
    initramfs_name: String,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        dir: PathBuf::new(),
        guest: PathBuf::new(),
        kernels: Vec::new(),
        // One boot at a time, with every host CPU as a guest CPU (the guest
        // runs one scenario per CPU): measured side by side on 2 cores, the
        // matrix takes the same wall time as two 1-CPU boots at a time
        // (32.8-33.7 s against 34.8-36.0 s for 4 kernels) and each kernel's
        // boot-to-verdict is half as long (8.0-8.7 s against 17.4-18.0 s).
        jobs: 1,
        smp: None,
        timeout: Duration::from_secs(120),
        cases: None,
        guest_jobs: None,
        accel: "auto".to_owned(),
        expect_mismatch: false,
        fetch_only: false,
        list: false,
        initramfs_name: "guest".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--dir" => a.dir = PathBuf::from(value("--dir")?),
            "--guest" => a.guest = PathBuf::from(value("--guest")?),
            "--kernel" => a
                .kernels
                .extend(value("--kernel")?.split(',').map(str::to_owned)),
            "--jobs" => {
                a.jobs = value("--jobs")?
                    .parse()
                    .map_err(|e| format!("--jobs: {e}"))?;
                a.jobs = a.jobs.max(1);
            }
            "--timeout" => {
                let s: u64 = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?;
                a.timeout = Duration::from_secs(s);
            }
            "--smp" => {
                let n: usize = value("--smp")?.parse().map_err(|e| format!("--smp: {e}"))?;
                a.smp = Some(n.max(1));
            }
            "--cases" => a.cases = Some(value("--cases")?),
            "--guest-jobs" => {
                let n: usize = value("--guest-jobs")?
                    .parse()
                    .map_err(|e| format!("--guest-jobs: {e}"))?;
                a.guest_jobs = Some(n.max(1));
            }
            "--accel" => a.accel = value("--accel")?,
            "--expect-mismatch" => a.expect_mismatch = true,
            "--fetch-only" => a.fetch_only = true,
            "--initramfs-name" => a.initramfs_name = value("--initramfs-name")?,
            "--list" => a.list = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.dir.as_os_str().is_empty() || (a.guest.as_os_str().is_empty() && !a.list) {
        return Err(format!("--dir and --guest are required\n{USAGE}"));
    }
    // apt and dpkg-deb run in other directories: absolute paths only.
    a.dir = fs::canonicalize(&a.dir).map_err(|e| format!("--dir {}: {e}", a.dir.display()))?;
    if !a.guest.as_os_str().is_empty() {
        a.guest = fs::canonicalize(&a.guest)
            .map_err(|e| format!("--guest {}: {e}", a.guest.display()))?;
    }
    if !["auto", "tcg", "kvm"].contains(&a.accel.as_str()) {
        return Err(format!("--accel {}: auto, tcg or kvm", a.accel));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vm-tests: {e}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// Pins.
// ---------------------------------------------------------------------------

/// One pinned kernel package.
#[derive(Clone, Debug)]
struct Pin {
    name: String,
    package: String,
    version: String,
}

struct Pins {
    sources: Vec<String>,
    kernels: Vec<Pin>,
}

fn read_pins(file: &Path) -> Res<Pins> {
    let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut p = Pins {
        sources: Vec::new(),
        kernels: Vec::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match word {
            "source" => p.sources.push(rest.trim().to_owned()),
            "kernel" => {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let [name, package, version] = f[..] else {
                    return Err(format!(
                        "{}:{}: expected `kernel NAME PACKAGE VERSION`",
                        file.display(),
                        n + 1
                    ));
                };
                p.kernels.push(Pin {
                    name: name.to_owned(),
                    package: package.to_owned(),
                    version: version.to_owned(),
                });
            }
            _ => {
                return Err(format!(
                    "{}:{}: unknown line {line:?} (source or kernel)",
                    file.display(),
                    n + 1
                ))
            }
        }
    }
    Ok(p)
}

// ---------------------------------------------------------------------------
// Fetching and extracting kernels.
// ---------------------------------------------------------------------------

/// A kernel ready to boot.
#[derive(Clone, Debug)]
struct Kernel {
    name: String,
    vmlinux: PathBuf,
    /// The release (`6.1.0-50-amd64`), from the package's `/boot/vmlinuz-*`.
    release: String,
}

struct Apt {
    dir: PathBuf,
    updated: bool,
}

impl Apt {
    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        vec![
            format!("-oDir::Etc::SourceList={d}/sources.list"),
            format!("-oDir::Etc::SourceParts={d}/sources.list.d"),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            "-oAPT::Sandbox::User=root".to_owned(),
            // The archive served here is a snapshot: sid's Release file has
            // a Valid-Until date that has passed. Its signature is still
            // checked (signed-by in KERNELS); only the date check is off.
            "-oAcquire::Check-Valid-Until=false".to_owned(),
            "-qq".to_owned(),
        ]
    }

    /// `apt-get update` of the private lists, once per run.
    fn update(&mut self, sources: &[String]) -> Res<()> {
        if self.updated {
            return Ok(());
        }
        for sub in ["sources.list.d", "lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(self.dir.join(sub)).map_err(|e| format!("{sub}: {e}"))?;
        }
        let list = sources.join("\n") + "\n";
        fs::write(self.dir.join("sources.list"), list).map_err(|e| format!("sources.list: {e}"))?;
        eprintln!(
            "vm-tests: apt-get update (private sources list in {})",
            self.dir.display()
        );
        run_cmd(Command::new("apt-get").args(self.options()).arg("update"))?;
        self.updated = true;
        Ok(())
    }
}

fn run_cmd(cmd: &mut Command) -> Res<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The cached kernel of `pin`, fetched and extracted when missing.
fn prepare_kernel(pin: &Pin, cache: &Path, apt: &mut Apt, sources: &[String]) -> Res<Kernel> {
    let dir = cache.join("kernels").join(&pin.name);
    let stamp = format!("{} {}", pin.package, pin.version);
    let vmlinux = dir.join("vmlinux");
    let read = |f: &str| fs::read_to_string(dir.join(f)).map(|s| s.trim().to_owned());
    if vmlinux.exists() && read("pin").is_ok_and(|s| s == stamp) {
        if let Ok(release) = read("release") {
            return Ok(Kernel {
                name: pin.name.clone(),
                vmlinux,
                release,
            });
        }
    }
    let _ = fs::remove_dir_all(&dir);
    let work = cache.join("work").join(&pin.name);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    apt.update(sources)?;
    eprintln!("vm-tests: fetching {}={}", pin.package, pin.version);
    run_cmd(
        Command::new("apt-get")
            .args(apt.options())
            .arg("download")
            .arg(format!("{}={}", pin.package, pin.version))
            .current_dir(&work),
    )?;
    let deb = fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download left no .deb in {}", work.display()))?;
    let root = work.join("root");
    run_cmd(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let boot = root.join("boot");
    let (vmlinuz, release) = find_vmlinuz(&root).ok_or_else(|| {
        format!(
            "{}: no boot/vmlinuz-* nor usr/lib/modules/*/vmlinuz*",
            deb.display()
        )
    })?;
    let image = fs::read(&vmlinuz).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    let elf = extract_vmlinux(&image).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = boot.join(format!("config-{release}"));
    if config.exists() {
        let _ = fs::copy(&config, dir.join("config"));
    }
    fs::write(dir.join("vmlinux.tmp"), &elf).map_err(|e| format!("vmlinux: {e}"))?;
    fs::rename(dir.join("vmlinux.tmp"), &vmlinux).map_err(|e| format!("vmlinux: {e}"))?;
    fs::write(dir.join("release"), format!("{release}\n")).map_err(|e| e.to_string())?;
    fs::write(dir.join("pin"), format!("{stamp}\n")).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&work);
    eprintln!(
        "vm-tests: {} ready: vmlinux {} MB ({release})",
        pin.name,
        elf.len() >> 20
    );
    Ok(Kernel {
        name: pin.name.clone(),
        vmlinux,
        release,
    })
}

/// The kernel image of an extracted package and its release:
/// `boot/vmlinuz-<release>` (Debian up to 6.x), or
/// `usr/lib/modules/<release>/vmlinuz*` (7.x: `linux-binary[-unsigned]-*`
/// holds `vmlinuz.unsigned` or `vmlinuz` there).
fn find_vmlinuz(root: &Path) -> Option<(PathBuf, String)> {
    let entries = |d: PathBuf| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(d)
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    for p in entries(root.join("boot")) {
        if let Some(release) = name(&p).and_then(|n| n.strip_prefix("vmlinuz-").map(str::to_owned))
        {
            return Some((p, release));
        }
    }
    for dir in entries(root.join("usr/lib/modules")) {
        let release = name(&dir)?;
        for p in entries(dir.clone()) {
            if name(&p).is_some_and(|n| n.starts_with("vmlinuz")) {
                return Some((p, release));
            }
        }
    }
    None
}

/// The compression formats a bzImage payload may use: magic, tool.
const FORMATS: [(&[u8], &str); 4] = [
    (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
    (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    (&[0x1f, 0x8b], "gzip"),
];

fn le32(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(s)).ok()
}

fn le16(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(usize::from(u16::from_le_bytes(s)))
}

fn le64(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(s)).ok()
}

/// The uncompressed vmlinux inside a bzImage: the compressed payload is
/// where the setup header says (x86 boot protocol 2.08+: setup sectors,
/// `payload_offset`, `payload_length`), else the first known magic; its
/// magic names the decompressor. The result must be a complete x86-64 ELF.
fn extract_vmlinux(image: &[u8]) -> Res<Vec<u8>> {
    let payload = if image.get(0x202..0x206) == Some(b"HdrS") {
        let sects = match image.get(0x1f1).copied() {
            Some(0) | None => 4,
            Some(n) => usize::from(n),
        };
        let off = le32(image, 0x248).ok_or("short setup header")?;
        let len = le32(image, 0x24c).ok_or("short setup header")?;
        let start = (sects + 1) * 512 + off;
        image
            .get(start..start + len)
            .ok_or("payload_offset/payload_length out of the image")?
    } else {
        image
    };
    let (at, tool) = FORMATS
        .iter()
        .filter_map(|(magic, tool)| {
            payload
                .windows(magic.len())
                .position(|w| w == *magic)
                .map(|at| (at, *tool))
        })
        .min_by_key(|(at, _)| *at)
        .ok_or("no xz, lz4, zstd or gzip magic in the payload")?;
    let out = decompress(tool, &payload[at..])?;
    check_elf(&out).map_err(|e| format!("{tool} payload at {at}: {e}"))?;
    Ok(out)
}

/// Runs `tool -dc` on `data`. Its exit status is not trusted (trailing
/// bytes after the stream make some tools complain); [`check_elf`] judges
/// the output.
fn decompress(tool: &str, data: &[u8]) -> Res<Vec<u8>> {
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{tool}: {e} (vm-tests/run installs it)"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .ok_or("no stdout")?
        .read_to_end(&mut out)
        .map_err(|e| format!("{tool}: {e}"))?;
    let _ = writer.join();
    let _ = child.wait();
    Ok(out)
}

/// An x86-64 ELF executable whose section headers fit in the file.
fn check_elf(b: &[u8]) -> Res<()> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("decompressed data is not ELF".to_owned());
    }
    if b.get(4) != Some(&2) || le16(b, 18) != Some(0x3e) {
        return Err("not a 64-bit x86 ELF".to_owned());
    }
    let shoff = le64(b, 0x28).ok_or("short ELF header")?;
    let shentsize = le16(b, 0x3a).ok_or("short ELF header")?;
    let shnum = le16(b, 0x3c).ok_or("short ELF header")?;
    let end = shoff + shentsize * shnum;
    if end > b.len() {
        return Err(format!(
            "truncated ELF: section headers end at {end}, file has {} bytes",
            b.len()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The initramfs.
// ---------------------------------------------------------------------------

/// The cached initramfs `<name>-<hash of guest>.cpio`, written when the
/// guest binary changed (older `<name>-*.cpio` are removed).
fn prepare_initramfs(guest: &Path, cache: &Path, name: &str) -> Res<PathBuf> {
    let bin = fs::read(guest).map_err(|e| format!("{}: {e}", guest.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bin.hash(&mut h);
    let key = format!("{:016x}", h.finish());
    let dir = cache.join("initramfs");
    let file = dir.join(format!("{name}-{key}.cpio"));
    if file.exists() {
        return Ok(file);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for old in fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
        let n = old.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("{name}-")) && n.ends_with(".cpio") {
            let _ = fs::remove_file(old.path());
        }
    }
    let mut w = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "run", "etc", "root"] {
        w.entry(d, 0o040_755, 0, &[]);
    }
    // /dev/console: the kernel opens it for /init's stdin, stdout, stderr.
    w.entry("dev/console", 0o020_600, (5 << 8) | 1, &[]);
    // Exists, so no case creates (and removes) it: the guest runs cases
    // in parallel, and bad_not_a_namespace joins it.
    w.entry("etc/hostname", 0o100_644, 0, b"nsapply-vm\n");
    w.entry("init", 0o100_755, 0, &bin);
    let data = w.finish();
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, &data).map_err(|e| e.to_string())?;
    fs::rename(&tmp, &file).map_err(|e| e.to_string())?;
    eprintln!(
        "vm-tests: initramfs {} ({} KB)",
        file.display(),
        data.len() >> 10
    );
    Ok(file)
}

/// A cpio archive in the "newc" format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// One entry; `rdev` is `major << 8 | minor` for a device.
    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.ino += 1;
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            len,
            0,
            0,
            rdev >> 8,
            rdev & 0xff,
            namesize,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.out
    }
}

// ---------------------------------------------------------------------------
// Booting.
// ---------------------------------------------------------------------------

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
const KERNEL_ARGS: &str = concat!(
    "console=ttyS0 panic=-1 cryptomgr.notests mitigations=off tsc=reliable no_timer_check",
    " 8250.nr_uarts=1 initcall_blacklist=acpi_init,init_kprobe_trace,crypto_kdf108_init,",
    "load_system_certificate_list,init_ima,init_encrypted,i8042_init,jent_mod_init"
);

/// What one boot gave.
struct Boot {
    kernel: Kernel,
    /// From start to the guest's DONE line.
    verdict_after: Option<Duration>,
    /// The whole boot, up to QEMU's exit.
    wall: Duration,
    timed_out: bool,
    /// The guest's CASE lines, by (mode, case).
    cases: BTreeMap<(String, String), Value>,
    begin: Option<Value>,
    done: Option<Value>,
    console: Vec<String>,
    /// Every console line, unshortened, with its time since the start.
    full: Vec<String>,
    error: Option<String>,
}

fn qemu_command(k: &Kernel, initramfs: &Path, accel: &str, smp: usize, append: &str) -> Command {
    let accel = if accel == "tcg" && smp > 1 {
        "tcg,thread=multi"
    } else {
        accel
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
fn boot(
    k: &Kernel,
    initramfs: &Path,
    accel: &str,
    smp: usize,
    append: &str,
    timeout: Duration,
) -> Boot {
    let mut b = Boot {
        kernel: k.clone(),
        verdict_after: None,
        wall: Duration::ZERO,
        timed_out: false,
        cases: BTreeMap::new(),
        begin: None,
        done: None,
        console: Vec::new(),
        full: Vec::new(),
        error: None,
    };
    let start = Instant::now();
    let mut child = match qemu_command(k, initramfs, accel, smp, append).spawn() {
        Ok(c) => c,
        Err(e) => {
            b.error = Some(format!("qemu-system-x86_64: {e}"));
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
            Ok((at, line)) => {
                take_line(&mut b, &line, at.duration_since(start));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.wait();
    let _ = reader.join();
    // Lines still queued after a kill.
    while let Ok((at, line)) = rx.try_recv() {
        take_line(&mut b, &line, at.duration_since(start));
    }
    b.wall = start.elapsed();
    let stderr = err_reader.join().unwrap_or_default();
    if !stderr.trim().is_empty() {
        b.console.push(format!("[qemu stderr] {}", stderr.trim()));
    }
    b
}

fn take_line(b: &mut Boot, line: &str, at: Duration) {
    b.full.push(format!("{:7.3} {line}", at.as_secs_f64()));
    // The tag may follow kernel output on the same line.
    for (tag, slot) in [
        ("NSAPPLY-VM-CASE ", 0),
        ("NSAPPLY-VM-BEGIN ", 1),
        ("NSAPPLY-VM-DONE ", 2),
        ("NSAPPLY-VM-PROBE-OK ", 3),
    ] {
        if let Some(i) = line.find(tag) {
            let v: Value = serde_json::from_str(&line[i + tag.len()..]).unwrap_or(Value::Null);
            match slot {
                0 => {
                    let key = (
                        v["mode"].as_str().unwrap_or("?").to_owned(),
                        v["case"].as_str().unwrap_or("?").to_owned(),
                    );
                    b.cases.insert(key, v);
                }
                1 => b.begin = Some(v),
                _ => {
                    b.done = Some(v);
                    b.verdict_after = Some(at);
                }
            }
            b.console.push(shorten(line));
            return;
        }
    }
    b.console.push(line.to_owned());
}

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

/// Whether a guest boots and reports under KVM here. Cached per host boot.
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
        "kvm",
        1,
        &format!("{KERNEL_ARGS} quiet nsapply.probe"),
        // A working KVM guest reports in about a second; here it hangs.
        Duration::from_secs(8),
    );
    let works = b.done.is_some() && !b.timed_out;
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

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

fn run(args: &Args) -> Res<bool> {
    let pins = read_pins(&args.dir.join("KERNELS"))?;
    if args.list {
        for p in &pins.kernels {
            println!("{:<14} {} {}", p.name, p.package, p.version);
        }
        return Ok(true);
    }
    let selected: Vec<Pin> = if args.kernels.is_empty() {
        pins.kernels.clone()
    } else {
        let known: BTreeSet<&str> = pins.kernels.iter().map(|p| p.name.as_str()).collect();
        for k in &args.kernels {
            if !known.contains(k.as_str()) {
                return Err(format!("no kernel {k:?} in KERNELS (have {known:?})"));
            }
        }
        pins.kernels
            .iter()
            .filter(|p| args.kernels.contains(&p.name))
            .cloned()
            .collect()
    };
    // NSAPPLY_VM_CACHE puts the cache outside the clone, so fresh clones
    // (CI) reuse the kernels instead of fetching them again.
    let cache = std::env::var_os("NSAPPLY_VM_CACHE")
        .filter(|c| !c.is_empty())
        .map_or_else(|| args.dir.join("cache"), PathBuf::from);
    let t0 = Instant::now();
    let mut apt = Apt {
        dir: cache.join("apt"),
        updated: false,
    };
    let mut kernels = Vec::new();
    for pin in &selected {
        kernels.push(prepare_kernel(pin, &cache, &mut apt, &pins.sources)?);
    }
    let initramfs = prepare_initramfs(&args.guest, &cache, &args.initramfs_name)?;
    let prepared = t0.elapsed();
    if args.fetch_only {
        eprintln!(
            "vm-tests: {} kernels and the initramfs ready in {:.1}s",
            kernels.len(),
            prepared.as_secs_f64()
        );
        return Ok(true);
    }
    let accel = match args.accel.as_str() {
        "auto" => {
            if kvm_works(&kernels[0], &initramfs, &cache) {
                "kvm"
            } else {
                "tcg"
            }
        }
        other => other,
    };
    // The host's CPUs, shared by the boots that run at once.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let smp = args
        .smp
        .unwrap_or_else(|| (cpus / args.jobs.min(kernels.len()).max(1)).max(1));
    let mut append = format!("{KERNEL_ARGS} quiet loglevel=3");
    if let Some(c) = &args.cases {
        append.push_str(&format!(" nsapply.cases={c}"));
    }
    if let Some(j) = args.guest_jobs {
        append.push_str(&format!(" nsapply.jobs={j}"));
    }
    eprintln!(
        "vm-tests: booting {} kernels, {} at a time, {} CPUs each, accel {accel}, timeout {}s",
        kernels.len(),
        args.jobs,
        smp,
        args.timeout.as_secs()
    );
    let t1 = Instant::now();
    let boots = boot_all(&kernels, &initramfs, accel, smp, &append, args);
    let matrix = t1.elapsed();
    // The whole console of each boot, for a closer look.
    let logs = cache.join("logs");
    let _ = fs::create_dir_all(&logs);
    for b in &boots {
        let _ = fs::write(
            logs.join(format!("{}.log", b.kernel.name)),
            b.full.join("\n") + "\n",
        );
    }
    Ok(report(&boots, args, (accel, smp), prepared, matrix))
}

fn boot_all(
    kernels: &[Kernel],
    initramfs: &Path,
    accel: &str,
    smp: usize,
    append: &str,
    args: &Args,
) -> Vec<Boot> {
    let queue: Arc<Mutex<VecDeque<(usize, Kernel)>>> =
        Arc::new(Mutex::new(kernels.iter().cloned().enumerate().collect()));
    let results: Arc<Mutex<Vec<(usize, Boot)>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..args.jobs.min(kernels.len()))
        .map(|_| {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            let initramfs = initramfs.to_path_buf();
            let (accel, append, timeout) = (accel.to_owned(), append.to_owned(), args.timeout);
            std::thread::spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((i, k)) = next else { break };
                let b = boot(&k, &initramfs, &accel, smp, &append, timeout);
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

/// Prints the table and the figures; whether the run passed.
fn report(
    boots: &[Boot],
    args: &Args,
    (accel, smp): (&str, usize),
    prepared: Duration,
    matrix: Duration,
) -> bool {
    let mut rows: BTreeSet<(String, String)> = BTreeSet::new();
    for b in boots {
        rows.extend(b.cases.keys().cloned());
    }
    // Root cases first, in the guest's order would be nicer; sorted is stable.
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
    out.push_str(&format!("{:<width$}", "scenario"));
    for b in boots {
        out.push_str(&format!("  {:<colw$}", b.kernel.name));
    }
    out.push('\n');
    let mut mismatches = Vec::new();
    let mut failures = Vec::new();
    for (mode, case) in &rows {
        out.push_str(&format!("{:<width$}", label(mode, case)));
        for b in boots {
            let cell = match b.cases.get(&(mode.clone(), case.clone())) {
                None => {
                    failures.push(format!(
                        "{}: {}: no report",
                        b.kernel.name,
                        label(mode, case)
                    ));
                    "MISSING"
                }
                Some(v) => {
                    if v["equal"] == Value::Bool(false) {
                        mismatches.push(format!("{}: {}", b.kernel.name, label(mode, case)));
                    }
                    match v["status"].as_str() {
                        Some("pass") => "pass",
                        Some("unsupported") => "not supported",
                        Some("not-applicable") => "n/a",
                        _ => {
                            failures.push(format!(
                                "{}: {}: {}",
                                b.kernel.name,
                                label(mode, case),
                                v["detail"].as_str().unwrap_or("(no detail)")
                            ));
                            "FAIL"
                        }
                    }
                }
            };
            out.push_str(&format!("  {cell:<colw$}"));
        }
        out.push('\n');
    }
    println!("{out}");
    println!(
        "{:<14} {:<26} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8}",
        "kernel", "release", "pass", "fail", "n/s", "verdict_s", "uptime_s", "wall_s"
    );
    let mut bad_boots = Vec::new();
    let mut times = Vec::new();
    for b in boots {
        let d = b.done.as_ref();
        let count = |k: &str| {
            d.and_then(|d| d[k].as_u64())
                .map_or("-".to_owned(), |n| n.to_string())
        };
        let verdict = b
            .verdict_after
            .map_or("-".to_owned(), |t| format!("{:.2}", t.as_secs_f64()));
        let uptime = d
            .and_then(|d| d["uptime"].as_f64())
            .map_or("-".to_owned(), |u| format!("{u:.2}"));
        println!(
            "{:<14} {:<26} {:>6} {:>6} {:>6} {:>10} {:>8} {:>8.2}",
            b.kernel.name,
            b.begin
                .as_ref()
                .and_then(|v| v["kernel"].as_str().map(str::to_owned))
                .unwrap_or_else(|| b.kernel.release.clone()),
            count("pass"),
            count("fail"),
            count("unsupported"),
            verdict,
            uptime,
            b.wall.as_secs_f64()
        );
        if let Some(t) = b.verdict_after {
            times.push(t.as_secs_f64());
        }
        let announced = b.begin.as_ref().and_then(|v| v["cases"].as_u64());
        let short = announced
            .filter(|n| usize::try_from(*n).ok() != Some(b.cases.len()))
            .map(|n| {
                format!(
                    "the guest announced {n} scenario runs and reported {}",
                    b.cases.len()
                )
            });
        let why = if let Some(e) = &b.error {
            Some(e.clone())
        } else if b.timed_out {
            Some(format!("timed out after {}s", args.timeout.as_secs()))
        } else if b.done.is_none() {
            Some("the guest did not report (no DONE line)".to_owned())
        } else {
            short
        };
        if let Some(why) = why {
            bad_boots.push((b, why));
        }
    }
    times.sort_by(f64::total_cmp);
    let median = if times.is_empty() {
        f64::NAN
    } else if !times.len().is_multiple_of(2) {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    println!(
        "\naccel {accel}, jobs {}, smp {}: boot-to-verdict median {median:.2}s over {} kernels; matrix {:.1}s wall; preparation {:.1}s",
        args.jobs,
        smp,
        times.len(),
        matrix.as_secs_f64(),
        prepared.as_secs_f64()
    );
    for (b, why) in &bad_boots {
        println!("\n{}: {why}; console tail:", b.kernel.name);
        let from = b.console.len().saturating_sub(40);
        for l in &b.console[from..] {
            println!("  | {l}");
        }
    }
    for f in &failures {
        println!("\nFAIL {f}");
    }
    if args.expect_mismatch {
        let ok = !mismatches.is_empty() && bad_boots.is_empty();
        if ok {
            println!(
                "\nexpected mismatch found ({}): {}",
                mismatches.len(),
                mismatches.join(", ")
            );
        } else {
            println!("\nEXPECTED A MISMATCH between the model and the kernel, found none");
        }
        return ok;
    }
    let ok = failures.is_empty() && bad_boots.is_empty() && !boots.is_empty();
    println!(
        "\n{}: {} scenario runs, {} failed, {} kernels without a verdict",
        if ok { "vm-tests ok" } else { "vm-tests FAILED" },
        boots.iter().map(|b| b.cases.len()).sum::<usize>(),
        failures.len(),
        bad_boots.len()
    );
    ok
}

fn label(mode: &str, case: &str) -> String {
    if mode == "root" {
        case.to_owned()
    } else {
        format!("{mode}::{case}")
    }
}
