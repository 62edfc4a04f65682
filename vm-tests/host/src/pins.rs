//! The pins of `vm-tests/KERNELS`: `source` lines (a private apt sources
//! list) and `kernel NAME PACKAGE VERSION` lines; `#` starts a comment
//! line.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// One pinned kernel package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The name `--kernel` selects it by (`6.1-cloud`).
    pub name: String,
    /// The Debian package holding the unsigned image.
    pub package: String,
    /// Its exact version (`apt-get download PACKAGE=VERSION`).
    pub version: String,
}

/// Everything `KERNELS` pins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    /// The lines of the private apt sources list.
    pub sources: Vec<String>,
    /// The kernels, in the file's order.
    pub kernels: Vec<Pin>,
}

/// What is wrong with a line of `KERNELS`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinsError {
    /// A `kernel` line without exactly three fields.
    #[error("expected `kernel NAME PACKAGE VERSION`")]
    KernelFields,
    /// A line that is neither `source`, `kernel`, a comment nor blank.
    #[error("unknown line {0:?} (source or kernel)")]
    Unknown(String),
    /// Two `kernel` lines with the same name.
    #[error("kernel {0:?} is pinned twice")]
    Duplicate(String),
}

impl Pins {
    /// Reads and parses the pins file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::Pins`] on a
    /// line it does not understand.
    pub fn read(file: &Path) -> Result<Pins> {
        let text = fs::read_to_string(file).map_err(Error::io("read", file))?;
        Pins::parse(&text).map_err(|(line, problem)| Error::Pins {
            path: file.to_path_buf(),
            line,
            problem,
        })
    }

    /// Parses the text of a pins file.
    ///
    /// # Errors
    ///
    /// The line number (from 1) and what is wrong with it.
    pub fn parse(text: &str) -> Result<Pins, (usize, PinsError)> {
        let mut p = Pins::default();
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
                        return Err((n + 1, PinsError::KernelFields));
                    };
                    if p.kernels.iter().any(|k| k.name == name) {
                        return Err((n + 1, PinsError::Duplicate(name.to_owned())));
                    }
                    p.kernels.push(Pin {
                        name: name.to_owned(),
                        package: package.to_owned(),
                        version: version.to_owned(),
                    });
                }
                _ => return Err((n + 1, PinsError::Unknown(line.to_owned()))),
            }
        }
        Ok(p)
    }

    /// The pins `names` selects, in the file's order; every pin when
    /// `names` is empty.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKernel`] for a name that is not pinned.
    pub fn select(&self, names: &[String]) -> Result<Vec<Pin>> {
        if names.is_empty() {
            return Ok(self.kernels.clone());
        }
        let known: BTreeSet<&str> = self.kernels.iter().map(|p| p.name.as_str()).collect();
        if let Some(name) = names.iter().find(|n| !known.contains(n.as_str())) {
            return Err(Error::UnknownKernel {
                name: name.clone(),
                known: known.iter().map(|k| (*k).to_owned()).collect(),
            });
        }
        Ok(self
            .kernels
            .iter()
            .filter(|p| names.contains(&p.name))
            .cloned()
            .collect())
    }

    /// What `--list` prints: one pin a line.
    pub fn listing(&self) -> String {
        self.kernels
            .iter()
            .map(|p| format!("{:<14} {} {}\n", p.name, p.package, p.version))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# Pins.
source deb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main

  source   deb http://deb.debian.org/debian sid main
kernel 6.1-generic   linux-image-6.1.0-50-amd64-unsigned        6.1.176-1
#kernel old x y
kernel 7.2-cloud\tlinux-binary-unsigned-7.2.13+deb14-cloud-amd64  7.2.13-1
kernel 6.1-cloud     linux-image-6.1.0-50-cloud-amd64-unsigned  6.1.176-1
";

    fn pin(name: &str, package: &str, version: &str) -> Pin {
        Pin {
            name: name.to_owned(),
            package: package.to_owned(),
            version: version.to_owned(),
        }
    }

    #[test]
    fn parses_sources_and_kernels_in_order() {
        let p = Pins::parse(TEXT).unwrap_or_default();
        assert_eq!(
            p.sources,
            [
                "deb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main",
                "deb http://deb.debian.org/debian sid main"
            ]
        );
        assert_eq!(
            p.kernels,
            [
                pin(
                    "6.1-generic",
                    "linux-image-6.1.0-50-amd64-unsigned",
                    "6.1.176-1"
                ),
                pin(
                    "7.2-cloud",
                    "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
                    "7.2.13-1"
                ),
                pin(
                    "6.1-cloud",
                    "linux-image-6.1.0-50-cloud-amd64-unsigned",
                    "6.1.176-1"
                ),
            ]
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        assert_eq!(
            Pins::parse("source x\nkernel a b\n"),
            Err((2, PinsError::KernelFields))
        );
        assert_eq!(
            Pins::parse("kernel a b c d"),
            Err((1, PinsError::KernelFields))
        );
        assert_eq!(
            Pins::parse("\n\nkernels a b c"),
            Err((3, PinsError::Unknown("kernels a b c".to_owned())))
        );
        assert_eq!(
            Pins::parse("kernel a b c\nkernel a d e"),
            Err((2, PinsError::Duplicate("a".to_owned())))
        );
        assert_eq!(Pins::parse(""), Ok(Pins::default()));
    }

    #[test]
    fn the_repository_s_kernels_file_parses() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../KERNELS");
        let p = Pins::read(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.kernels.iter().any(|k| k.name == "6.1-cloud"), "{p:?}");
        assert!(!p.sources.is_empty());
    }

    #[test]
    fn select_keeps_the_file_s_order_and_refuses_unknown_names() {
        let p = Pins::parse(TEXT).unwrap_or_default();
        let names = |v: Vec<Pin>| v.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            names(p.select(&[]).unwrap_or_default()),
            ["6.1-generic", "7.2-cloud", "6.1-cloud"]
        );
        let asked = ["6.1-cloud".to_owned(), "6.1-generic".to_owned()];
        assert_eq!(
            names(p.select(&asked).unwrap_or_default()),
            ["6.1-generic", "6.1-cloud"]
        );
        let e = p
            .select(&["6.1-cloud".to_owned(), "5.4".to_owned()])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(r#"no kernel "5.4" in KERNELS (have ["6.1-cloud", "6.1-generic", "7.2-cloud"])"#)
        );
    }

    #[test]
    fn listing_is_one_pin_a_line() {
        let p = Pins::parse("kernel 6.1-cloud pkg 1.0\nkernel a-much-longer-name p 2")
            .unwrap_or_default();
        assert_eq!(
            p.listing(),
            "6.1-cloud      pkg 1.0\na-much-longer-name p 2\n"
        );
    }
}
