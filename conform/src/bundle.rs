//! The OCI bundle of a conformance case: a rootfs holding only a static
//! busybox, and a `config.json` around the case's `linux` object.
//!
//! The config is minimal on purpose, so that a runtime's verdict depends
//! on its namespace handling only: no capabilities, no hostname (runc
//! refuses one without a new uts namespace), no cgroup settings, and two
//! mounts, `/proc` (to read `/proc/self/ns`) and a tmpfs on `/dev`. A
//! `sysfs` mount is left out: in a new user namespace that joins a
//! host-owned network namespace it fails with EPERM in every runtime, which
//! is the kernel's rule, not a namespace-ordering finding.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use super::observe::CONTAINER_SCRIPT;

/// The container's program (inside the rootfs).
pub const CONTAINER_PROGRAM: &str = "/bin/busybox";

/// The whole config.json for a case's `linux` object.
///
/// ```
/// let c = nsapply_conform::bundle::config(&serde_json::json!({"namespaces": [{"type": "pid"}]}));
/// assert_eq!(c["linux"]["namespaces"][0]["type"], "pid");
/// assert_eq!(c["root"]["path"], "rootfs");
/// ```
pub fn config(linux: &serde_json::Value) -> serde_json::Value {
    let args: Vec<String> = [CONTAINER_PROGRAM, "sh", "-c", CONTAINER_SCRIPT]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    config_running(linux, &args)
}

/// [`config`] with another container command (an exec case's container
/// runs [`crate::exec::init_args`]).
///
/// ```
/// let c = nsapply_conform::bundle::config_running(&serde_json::json!({}), &["/bin/busybox".to_owned()]);
/// assert_eq!(c["process"]["args"], serde_json::json!(["/bin/busybox"]));
/// ```
pub fn config_running(linux: &serde_json::Value, args: &[String]) -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": linux
    })
}

/// Writes `dir/config.json` and `dir/rootfs` (with `busybox`, the bytes
/// of a static busybox, as `/bin/busybox`, and the empty `/proc`, `/dev`, `/tmp` mount points).
///
/// # Errors
///
/// A file could not be written.
pub fn build(dir: &Path, busybox: &[u8], config: &serde_json::Value) -> io::Result<()> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    let target = rootfs.join("bin/busybox");
    fs::write(&target, busybox)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    let text = serde_json::to_string_pretty(config).map_err(io::Error::other)?;
    fs::write(dir.join("config.json"), text)
}

/// Whether `path` is an ELF executable without a program interpreter
/// (`PT_INTERP`): it runs in a rootfs that has no libc.
pub fn is_static_elf(path: &Path) -> bool {
    let mut bytes = Vec::new();
    let read = fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes));
    read.is_ok() && elf_is_static(&bytes)
}

/// [`is_static_elf`] on the file's bytes (64-bit little-endian ELF only).
pub fn elf_is_static(b: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
    };
    // ELF magic, ELFCLASS64, ELFDATA2LSB.
    if b.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff + i * usize::from(phentsize);
        u32_at(at).is_some_and(|t| t != PT_INTERP)
    })
}
