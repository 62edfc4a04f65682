//! The initramfs: a cpio "newc" archive written here (no tool needed)
//! holding the guest binary as `/init`, `/dev/console`, `/etc/hostname`
//! and empty directories. It is cached per hash of the guest binary
//! (`cache/initramfs/<name>-<hash>.cpio`), so it is rebuilt only when the
//! guest changes.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The cached initramfs `<name>-<hash of guest>.cpio`, written when the
/// guest binary changed (older `<name>-*.cpio` are removed).
///
/// # Errors
///
/// [`Error::Io`] when the guest cannot be read or the archive written.
pub fn prepare(guest: &Path, cache: &Path, name: &str) -> Result<PathBuf> {
    let bin = fs::read(guest).map_err(Error::io("read the guest", guest))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bin.hash(&mut h);
    let key = format!("{:016x}", h.finish());
    let dir = cache.join("initramfs");
    let file = dir.join(format!("{name}-{key}.cpio"));
    if file.exists() {
        return Ok(file);
    }
    fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
    for old in fs::read_dir(&dir)
        .map_err(Error::io("read directory", &dir))?
        .flatten()
    {
        let n = old.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("{name}-")) && n.ends_with(".cpio") {
            let _ = fs::remove_file(old.path());
        }
    }
    let data = archive(&bin);
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, &data).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, &file).map_err(Error::io("rename", &tmp))?;
    eprintln!(
        "vm-tests: initramfs {} ({} KB)",
        file.display(),
        data.len() >> 10
    );
    Ok(file)
}

/// The archive's bytes, with `init` as `/init`.
fn archive(init: &[u8]) -> Vec<u8> {
    let mut w = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "run", "etc", "root"] {
        w.entry(d, 0o040_755, 0, &[]);
    }
    // /dev/console: the kernel opens it for /init's stdin, stdout, stderr.
    w.entry("dev/console", 0o020_600, (5 << 8) | 1, &[]);
    // Exists, so no case creates (and removes) it: the guest runs cases
    // in parallel, and bad_not_a_namespace joins it.
    w.entry("etc/hostname", 0o100_644, 0, b"nsapply-vm\n");
    w.entry("init", 0o100_755, 0, init);
    w.finish()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries of a newc archive: name, mode, rdev major and minor,
    /// data; checks the magic and the 4-byte alignment on the way.
    fn entries(mut b: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let start = b.len();
        let mut out = Vec::new();
        let field = |h: &[u8], i: usize| {
            let text = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap_or("x");
            u32::from_str_radix(text, 16).unwrap_or(u32::MAX)
        };
        let align = |n: usize| n.div_ceil(4) * 4;
        loop {
            assert_eq!((start - b.len()) % 4, 0, "entry not aligned");
            assert_eq!(&b[..6], b"070701");
            let (mode, size) = (field(b, 1), field(b, 6) as usize);
            let (major, minor, namesize) = (field(b, 9), field(b, 10), field(b, 11) as usize);
            let name = String::from_utf8_lossy(&b[110..110 + namesize - 1]).into_owned();
            assert_eq!(b[110 + namesize - 1], 0, "name not NUL-terminated");
            let data_at = align(110 + namesize);
            let data = b[data_at..data_at + size].to_vec();
            b = &b[align(data_at + size)..];
            let last = name == "TRAILER!!!";
            out.push((name, mode, major, minor, data));
            if last {
                assert!(b.is_empty(), "bytes after the trailer");
                return out;
            }
        }
    }

    #[test]
    fn the_archive_holds_init_the_console_and_the_directories() {
        let e = entries(&archive(b"\x7fELF guest"));
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "proc",
                "sys",
                "tmp",
                "run",
                "etc",
                "root",
                "dev/console",
                "etc/hostname",
                "init",
                "TRAILER!!!"
            ]
        );
        let get = |n: &str| e.iter().find(|x| x.0 == n).cloned();
        assert_eq!(
            get("init"),
            Some((
                "init".to_owned(),
                0o100_755,
                0,
                0,
                b"\x7fELF guest".to_vec()
            ))
        );
        assert_eq!(
            get("dev/console"),
            Some(("dev/console".to_owned(), 0o020_600, 5, 1, Vec::new()))
        );
        assert_eq!(
            get("etc/hostname").map(|x| x.4),
            Some(b"nsapply-vm\n".to_vec())
        );
    }

    #[test]
    fn data_of_any_length_stays_aligned() {
        for n in 0..9 {
            let data = vec![7u8; n];
            let e = entries(&archive(&data));
            assert_eq!(e.iter().find(|x| x.0 == "init").map(|x| x.4.len()), Some(n));
        }
    }
}
