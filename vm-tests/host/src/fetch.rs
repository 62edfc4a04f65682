//! Fetching the pinned kernels: `apt-get download PACKAGE=VERSION` through
//! a private apt configuration under the cache (the host's apt sources are
//! neither used nor changed), `dpkg-deb -x`, then [`vmlinux::extract`].
//! Only `vmlinux`, the kernel config and the release are kept, in
//! `cache/kernels/<name>/`, with the pin they came from: a changed pin
//! line refetches that kernel.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::pins::Pin;
use crate::vmlinux;

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The pin's name (`6.1-cloud`).
    pub name: String,
    /// The uncompressed ELF image QEMU boots.
    pub vmlinux: PathBuf,
    /// The release (`6.1.0-50-amd64`), from the package's image name.
    pub release: String,
}

/// The private apt configuration under the cache (`cache/apt/`).
pub struct Apt {
    dir: PathBuf,
    updated: bool,
}

impl Apt {
    /// The configuration in `dir`; nothing is written before
    /// [`Apt::update`].
    pub fn new(dir: PathBuf) -> Apt {
        Apt {
            dir,
            updated: false,
        }
    }

    /// The options that make apt use only the private configuration.
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
    fn update(&mut self, sources: &[String]) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        for sub in ["sources.list.d", "lists/partial", "cache/archives/partial"] {
            let d = self.dir.join(sub);
            fs::create_dir_all(&d).map_err(Error::io("create directory", d))?;
        }
        let list = sources.join("\n") + "\n";
        let file = self.dir.join("sources.list");
        fs::write(&file, list).map_err(Error::io("write", file))?;
        eprintln!(
            "vm-tests: apt-get update (private sources list in {})",
            self.dir.display()
        );
        run_cmd(Command::new("apt-get").args(self.options()).arg("update"))?;
        self.updated = true;
        Ok(())
    }
}

/// Runs `cmd` to its end; its output is shown only when it fails.
fn run_cmd(cmd: &mut Command) -> Result<()> {
    let command = format!("{cmd:?}");
    let out = match cmd.output() {
        Ok(out) => out,
        Err(source) => return Err(Error::Spawn { command, source }),
    };
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command,
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// The cached kernel of `pin`, fetched and extracted when missing or when
/// the cache holds another pin's.
///
/// # Errors
///
/// A failed apt or dpkg-deb command, a package without a kernel image, an
/// image without a usable `vmlinux`, or a file that cannot be written.
pub fn prepare_kernel(
    pin: &Pin,
    cache: &Path,
    apt: &mut Apt,
    sources: &[String],
) -> Result<Kernel> {
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
    fs::create_dir_all(&work).map_err(Error::io("create directory", &work))?;
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
        .map_err(Error::io("read directory", &work))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| Error::NoDeb { dir: work.clone() })?;
    let root = work.join("root");
    run_cmd(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let (vmlinuz, release) =
        find_vmlinuz(&root).ok_or_else(|| Error::NoImage { deb: deb.clone() })?;
    let image = fs::read(&vmlinuz).map_err(Error::io("read", &vmlinuz))?;
    let elf = vmlinux::extract(&image).map_err(|source| Error::Extract {
        image: vmlinuz.clone(),
        source,
    })?;
    fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
    let config = root.join("boot").join(format!("config-{release}"));
    if config.exists() {
        let _ = fs::copy(&config, dir.join("config"));
    }
    let tmp = dir.join("vmlinux.tmp");
    fs::write(&tmp, &elf).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, &vmlinux).map_err(Error::io("rename to vmlinux", &tmp))?;
    for (file, text) in [("release", &release), ("pin", &stamp)] {
        let path = dir.join(file);
        fs::write(&path, format!("{text}\n")).map_err(Error::io("write", path))?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed
    /// when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let d =
                std::env::temp_dir().join(format!("nsapply-vm-host-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            Scratch(d)
        }

        fn file(&self, rel: &str) {
            let p = self.0.join(rel);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
            }
            fs::write(&p, b"").unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn finds_the_image_in_boot() {
        let s = Scratch::new("boot");
        s.file("boot/config-6.1.0-50-cloud-amd64");
        s.file("boot/System.map-6.1.0-50-cloud-amd64");
        s.file("boot/vmlinuz-6.1.0-50-cloud-amd64");
        s.file("usr/lib/modules/6.1.0-50-cloud-amd64/kernel/x.ko");
        assert_eq!(
            find_vmlinuz(&s.0),
            Some((
                s.0.join("boot/vmlinuz-6.1.0-50-cloud-amd64"),
                "6.1.0-50-cloud-amd64".to_owned()
            ))
        );
    }

    #[test]
    fn finds_the_image_of_a_split_7x_package() {
        let s = Scratch::new("modules");
        s.file("usr/lib/modules/7.2.13+deb14-amd64/vmlinuz.unsigned");
        s.file("usr/share/doc/linux-binary-unsigned-7.2.13+deb14-amd64/copyright");
        assert_eq!(
            find_vmlinuz(&s.0),
            Some((
                s.0.join("usr/lib/modules/7.2.13+deb14-amd64/vmlinuz.unsigned"),
                "7.2.13+deb14-amd64".to_owned()
            ))
        );
    }

    #[test]
    fn a_package_without_an_image_has_none() {
        let s = Scratch::new("none");
        s.file("usr/lib/modules/6.1.0-50-amd64/modules.dep");
        s.file("boot/config-6.1.0-50-amd64");
        assert_eq!(find_vmlinuz(&s.0), None);
    }

    #[test]
    fn a_failing_command_reports_its_status_and_output() {
        let e = run_cmd(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
        match e {
            Err(Error::Command { status, output, .. }) => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(output, "out\nerr\n");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run_cmd(&mut Command::new("/nonexistent/apt-get")),
            Err(Error::Spawn { .. })
        ));
        assert!(run_cmd(&mut Command::new("true")).is_ok());
    }
}
