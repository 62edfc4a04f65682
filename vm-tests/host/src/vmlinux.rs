//! The uncompressed `vmlinux` inside a bzImage, which QEMU boots through
//! its PVH entry point.
//!
//! The compressed payload is where the setup header says (x86 boot
//! protocol 2.08+: `(setup_sects + 1) * 512 + payload_offset`,
//! `payload_length`), else the first known magic in the image; its magic
//! names the decompressor (`xz`, `lz4`, `zstd` or `gzip`, run as
//! `<tool> -dc`). The result must be a complete x86-64 ELF: its section
//! headers inside the file.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

/// The compression formats a bzImage payload may use: magic, tool.
const FORMATS: [(&[u8], &str); 4] = [
    (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
    (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    (&[0x1f, 0x8b], "gzip"),
];

/// Why a kernel image gave no `vmlinux`.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The setup header ends before its payload fields.
    #[error("short setup header")]
    ShortSetupHeader,
    /// `payload_offset` and `payload_length` point outside the image.
    #[error("payload_offset/payload_length out of the image")]
    PayloadOutOfImage,
    /// No known compression magic in the payload.
    #[error("no xz, lz4, zstd or gzip magic in the payload")]
    NoMagic,
    /// The decompressor could not be run.
    #[error("{tool}: {source} (vm-tests/run installs it)")]
    Decompressor {
        /// `xz`, `lz4`, `zstd` or `gzip`.
        tool: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The decompressed data is not a complete x86-64 ELF.
    #[error("{tool} payload at {at}: {problem}")]
    Elf {
        /// The decompressor.
        tool: &'static str,
        /// The offset of the compressed stream in the payload.
        at: usize,
        /// What is wrong with the ELF.
        problem: ElfError,
    },
}

/// What is wrong with decompressed data that should be `vmlinux`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// No ELF magic.
    #[error("decompressed data is not ELF")]
    NotElf,
    /// An ELF of another class or machine.
    #[error("not a 64-bit x86 ELF")]
    NotX86_64,
    /// The ELF header is cut off.
    #[error("short ELF header")]
    ShortHeader,
    /// The section headers end past the data (the stream was cut off).
    #[error("truncated ELF: section headers end at {end}, file has {len} bytes")]
    Truncated {
        /// Where the section headers end.
        end: usize,
        /// The data's length.
        len: usize,
    },
}

fn le16(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(usize::from(u16::from_le_bytes(s)))
}

fn le32(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(s)).ok()
}

fn le64(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(s)).ok()
}

/// The uncompressed `vmlinux` of a bzImage (see the module docs).
///
/// # Errors
///
/// [`ExtractError`] when the payload cannot be found, decompressed, or is
/// not a complete x86-64 ELF.
pub fn extract(image: &[u8]) -> Result<Vec<u8>, ExtractError> {
    let payload = payload(image)?;
    let (at, tool) = locate(payload)?;
    let out = decompress(tool, &payload[at..])
        .map_err(|source| ExtractError::Decompressor { tool, source })?;
    check_elf(&out).map_err(|problem| ExtractError::Elf { tool, at, problem })?;
    Ok(out)
}

/// The compressed payload: where the setup header says, or the whole
/// image when it has no setup header.
fn payload(image: &[u8]) -> Result<&[u8], ExtractError> {
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Ok(image);
    }
    let sects = match image.get(0x1f1).copied() {
        Some(0) | None => 4,
        Some(n) => usize::from(n),
    };
    let off = le32(image, 0x248).ok_or(ExtractError::ShortSetupHeader)?;
    let len = le32(image, 0x24c).ok_or(ExtractError::ShortSetupHeader)?;
    let start = (sects + 1) * 512 + off;
    start
        .checked_add(len)
        .and_then(|end| image.get(start..end))
        .ok_or(ExtractError::PayloadOutOfImage)
}

/// Where the compressed stream starts in the payload and the tool that
/// decompresses it: the earliest known magic.
fn locate(payload: &[u8]) -> Result<(usize, &'static str), ExtractError> {
    FORMATS
        .iter()
        .filter_map(|(magic, tool)| {
            payload
                .windows(magic.len())
                .position(|w| w == *magic)
                .map(|at| (at, *tool))
        })
        .min_by_key(|(at, _)| *at)
        .ok_or(ExtractError::NoMagic)
}

/// Runs `tool -dc` on `data`. Its exit status is not trusted (trailing
/// bytes after the stream make some tools complain); [`check_elf`] judges
/// the output.
fn decompress(tool: &str, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let no_pipe = || io::Error::other("no pipe to the decompressor");
    let mut stdin = child.stdin.take().ok_or_else(no_pipe)?;
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut out = Vec::new();
    let read = child
        .stdout
        .take()
        .ok_or_else(no_pipe)
        .and_then(|mut o| o.read_to_end(&mut out));
    let _ = writer.join();
    let _ = child.wait();
    read.map(|_| out)
}

/// Whether `b` is an x86-64 ELF whose section headers fit in it.
fn check_elf(b: &[u8]) -> Result<(), ElfError> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if b.get(4) != Some(&2) || le16(b, 18) != Some(0x3e) {
        return Err(ElfError::NotX86_64);
    }
    let shoff = le64(b, 0x28).ok_or(ElfError::ShortHeader)?;
    let shentsize = le16(b, 0x3a).ok_or(ElfError::ShortHeader)?;
    let shnum = le16(b, 0x3c).ok_or(ElfError::ShortHeader)?;
    let end = shoff.saturating_add(shentsize * shnum);
    if end > b.len() {
        return Err(ElfError::Truncated { end, len: b.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header (64 bytes) for `machine` with `shnum` section headers
    /// of 64 bytes right after it.
    fn elf(class: u8, machine: u16, shnum: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[0x28..0x30].copy_from_slice(&64u64.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        b
    }

    #[test]
    fn a_complete_x86_64_elf_passes() {
        let mut b = elf(2, 0x3e, 2);
        b.resize(64 + 2 * 64, 0);
        assert_eq!(check_elf(&b), Ok(()));
    }

    #[test]
    fn other_data_is_refused() {
        assert_eq!(check_elf(b"\x1f\x8b..."), Err(ElfError::NotElf));
        assert_eq!(check_elf(&elf(1, 0x3e, 0)), Err(ElfError::NotX86_64));
        assert_eq!(check_elf(&elf(2, 0xb7, 0)), Err(ElfError::NotX86_64));
        assert_eq!(
            check_elf(&elf(2, 0x3e, 0)[..0x30]),
            Err(ElfError::ShortHeader)
        );
        assert_eq!(
            check_elf(&elf(2, 0x3e, 3)),
            Err(ElfError::Truncated { end: 256, len: 64 })
        );
    }

    /// A bzImage: `sects` setup sectors (0 meaning 4), a boot sector, the
    /// header fields, and `payload` at `payload_offset` of the protected
    /// mode part.
    fn bzimage(sects: u8, offset: usize, payload: &[u8], len: Option<usize>) -> Vec<u8> {
        let setup = (usize::from(if sects == 0 { 4 } else { sects }) + 1) * 512;
        let mut b = vec![0u8; setup + offset + payload.len() + 16];
        b[0x1f1] = sects;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        let len = u32::try_from(len.unwrap_or(payload.len())).unwrap_or(u32::MAX);
        let off = u32::try_from(offset).unwrap_or(u32::MAX);
        b[0x248..0x24c].copy_from_slice(&off.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&len.to_le_bytes());
        b[setup + offset..setup + offset + payload.len()].copy_from_slice(payload);
        b
    }

    #[test]
    fn the_setup_header_points_at_the_payload() {
        let stream = [0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3];
        let image = bzimage(0, 100, &stream, None);
        assert_eq!(payload(&image).ok(), Some(&stream[..]));
        assert_eq!(payload(&image).and_then(locate).ok(), Some((0, "zstd")));
        let image = bzimage(27, 3, &stream, None);
        assert_eq!(payload(&image).ok(), Some(&stream[..]));
    }

    #[test]
    fn the_earliest_magic_names_the_tool() {
        let mut data = b"junk".to_vec();
        data.extend_from_slice(&[0x02, 0x21, 0x4c, 0x18]);
        data.extend_from_slice(&[0x1f, 0x8b]);
        assert_eq!(locate(&data).ok(), Some((4, "lz4")));
        let xz = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 0x1f, 0x8b];
        assert_eq!(locate(&xz).ok(), Some((0, "xz")));
        assert!(matches!(
            locate(b"no magic here"),
            Err(ExtractError::NoMagic)
        ));
    }

    #[test]
    fn a_payload_past_the_image_is_refused() {
        let image = bzimage(0, 0, &[0x1f, 0x8b], Some(1 << 20));
        assert!(matches!(
            payload(&image),
            Err(ExtractError::PayloadOutOfImage)
        ));
        let mut short = bzimage(0, 0, &[], None);
        short.truncate(0x24a);
        assert!(matches!(
            payload(&short),
            Err(ExtractError::ShortSetupHeader)
        ));
    }
}
