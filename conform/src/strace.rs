//! Decoding strace(1) output into typed namespace events.
//!
//! The tracer is `strace -f -qq -yy -X raw -s 4096 -e trace=<SYSCALLS>`
//! ([`STRACE_ARGS`]): one line per system call, prefixed with the pid
//! (`-f` with `-o`), constants printed as raw numbers (`-X raw`, so flags
//! decode by bit, not by name), and every fd argument or result followed by
//! its path in angle brackets (`-yy`: `3</run/netns/a>`, `4<net:[4026531840]>`).
//!
//! [`parse_line`] splits one line into a [`RawCall`] (name, top-level
//! arguments, return value) with a small tokenizer that knows strace's
//! quoting (C string escapes, `{...}`, `[...]`, `<...>` decorations), and
//! [`Decoder`] turns calls into [`Event`]s: it joins `<unfinished ...>` and
//! `<... resumed>` halves of one call, and keeps only the calls nsapply
//! compares (unshare, setns, clone, clone3, fork, vfork, open/openat,
//! pidfd_open, write, close, execve). Text is only split, never matched
//! with regular expressions.

use std::collections::BTreeMap;
use std::fmt;

/// The strace options the conformance runner uses (before `-o FILE`).
pub const STRACE_ARGS: &[&str] = &[
    "-f",
    "-qq",
    "-yy",
    "-X",
    "raw",
    "-s",
    "4096",
    "-e",
    "trace=unshare,setns,clone,clone3,fork,vfork,open,openat,pidfd_open,write,close,execve",
    "-e",
    "signal=none",
];

/// `O_CLOEXEC` on x86-64 and aarch64 (asm-generic/fcntl.h).
pub const O_CLOEXEC: u64 = 0o2_000_000;

/// What a call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A non-negative return value.
    Ok(i64),
    /// `-1` with the errno name strace printed (`EPERM`).
    Err(String),
    /// No return value (the process exited or was killed inside the call).
    Unknown,
}

impl Ret {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Ret::Ok(_))
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Ok(v) => write!(f, "{v}"),
            Ret::Err(e) => f.write_str(e),
            Ret::Unknown => f.write_str("?"),
        }
    }
}

/// An fd argument or result: its number and the path `-yy` printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fd {
    /// The fd number.
    pub num: i32,
    /// What strace printed in angle brackets (`/run/netns/a`,
    /// `net:[4026531840]`, `pipe:[1]`), when it did.
    pub path: Option<String>,
}

/// One traced system call, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// unshare(2) with its flags.
    Unshare {
        /// The calling thread.
        pid: i32,
        /// The `CLONE_*` flags.
        flags: u64,
        /// The result.
        ret: Ret,
    },
    /// setns(2).
    Setns {
        /// The calling thread.
        pid: i32,
        /// The namespace fd.
        fd: Fd,
        /// The `nstype` argument (0: any type).
        nstype: u64,
        /// The result.
        ret: Ret,
    },
    /// clone(2), clone3(2), fork(2) or vfork(2).
    Clone {
        /// The calling thread.
        pid: i32,
        /// The flags, exit signal bits removed.
        flags: u64,
        /// The result: the child's pid as the tracer sees it.
        ret: Ret,
    },
    /// open(2) or openat(2).
    Open {
        /// The calling thread.
        pid: i32,
        /// The path argument.
        path: String,
        /// The open flags.
        flags: u64,
        /// The resulting fd (path decoded by `-yy`), or the error.
        ret: Ret,
        /// The resulting fd's decoded path.
        fd_path: Option<String>,
    },
    /// pidfd_open(2): an fd that refers to process `target` (setns(2)
    /// takes it to join several of that process's namespaces at once).
    PidfdOpen {
        /// The calling thread.
        pid: i32,
        /// The process the pidfd refers to (the caller's pid numbering).
        target: i32,
        /// The pidfd, or the error.
        ret: Ret,
    },
    /// write(2) to a file.
    Write {
        /// The calling thread.
        pid: i32,
        /// The fd written to.
        fd: Fd,
        /// The bytes (as strace printed them, unescaped; cut at `-s`).
        data: Vec<u8>,
        /// The result.
        ret: Ret,
    },
    /// close(2).
    Close {
        /// The calling thread.
        pid: i32,
        /// The fd.
        fd: Fd,
    },
    /// execve(2).
    Execve {
        /// The calling thread.
        pid: i32,
        /// The program path.
        path: String,
        /// The result.
        ret: Ret,
    },
}

impl Event {
    /// The thread that made the call.
    pub fn pid(&self) -> i32 {
        match self {
            Event::Unshare { pid, .. }
            | Event::Setns { pid, .. }
            | Event::Clone { pid, .. }
            | Event::Open { pid, .. }
            | Event::PidfdOpen { pid, .. }
            | Event::Write { pid, .. }
            | Event::Close { pid, .. }
            | Event::Execve { pid, .. } => *pid,
        }
    }
}

/// Why a line could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("strace line {line}: {message}: {text:?}")]
pub struct DecodeError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
    /// The line.
    pub text: String,
}

/// One strace line split into its parts, before typing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCall {
    /// The pid prefix.
    pub pid: i32,
    /// The system call name.
    pub name: String,
    /// The top-level arguments, as printed.
    pub args: Vec<String>,
    /// The return value as printed (`3</proc/1/uid_map>`, `-1 EPERM (...)`,
    /// `?`), empty for an unfinished call.
    pub ret: String,
}

/// What one line of strace output is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete call.
    Call(RawCall),
    /// The first half of a call interrupted by another thread's line.
    Unfinished {
        /// The pid.
        pid: i32,
        /// Everything after the pid, up to ` <unfinished ...>`.
        head: String,
    },
    /// The second half: `<... NAME resumed>TAIL`.
    Resumed {
        /// The pid.
        pid: i32,
        /// The call name.
        name: String,
        /// Everything after `resumed>`.
        tail: String,
    },
    /// Anything else (`+++ exited with 0 +++`, `--- SIGCHLD ... ---`,
    /// `???( <detached ...>`, `???() = ?`, blank).
    Other,
}

/// Splits one line of `strace -f -o` output.
///
/// # Errors
///
/// A line that starts like a call but does not split (unbalanced quotes or
/// brackets, no `=`).
pub fn parse_line(text: &str) -> Result<Line, String> {
    let text = text.trim_end();
    let Some((pid, rest)) = text.split_once(' ') else {
        return Ok(Line::Other);
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return Ok(Line::Other);
    };
    let rest = rest.trim_start();
    // `???( <detached ...>` and `???() = ?`: strace lost the process (it
    // exited or was killed) in a call it could not name; the second form
    // came from a killed crun on a loaded machine (CI, 2026-12-02).
    if rest.starts_with("+++")
        || rest.starts_with("---")
        || rest.is_empty()
        || rest.ends_with("<detached ...>")
        || rest.starts_with("???(")
    {
        return Ok(Line::Other);
    }
    if let Some(after) = rest.strip_prefix("<... ") {
        let (name, tail) = after
            .split_once(" resumed>")
            .ok_or_else(|| "a resumed call without \"resumed>\"".to_owned())?;
        return Ok(Line::Resumed {
            pid,
            name: name.to_owned(),
            tail: tail.to_owned(),
        });
    }
    if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
        return Ok(Line::Unfinished {
            pid,
            head: head.to_owned(),
        });
    }
    split_call(pid, rest).map(Line::Call)
}

/// Splits `name(args) = ret` into its parts.
fn split_call(pid: i32, text: &str) -> Result<RawCall, String> {
    let open = text
        .find('(')
        .ok_or_else(|| "no argument list".to_owned())?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("bad call name {name:?}"));
    }
    let (args, after) = split_args(&text[open + 1..])?;
    let ret = after
        .trim_start()
        .strip_prefix('=')
        .ok_or_else(|| "no \"=\" after the arguments".to_owned())?
        .trim()
        .to_owned();
    Ok(RawCall {
        pid,
        name: name.to_owned(),
        args,
        ret,
    })
}

/// Splits the text after `(` into top-level arguments, up to the matching
/// `)`; returns them and the rest of the line.
fn split_args(text: &str) -> Result<(Vec<String>, &str), String> {
    let mut args = Vec::new();
    // The closers expected, innermost last. Inside a `<...>` decoration
    // only `>` closes: paths and socket names there are opaque text.
    let mut closers: Vec<char> = Vec::new();
    let mut start = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        let in_decoration = closers.last() == Some(&'>');
        match c {
            '"' if !in_decoration => in_str = true,
            '<' => closers.push('>'),
            '{' if !in_decoration => closers.push('}'),
            '[' if !in_decoration => closers.push(']'),
            '(' if !in_decoration => closers.push(')'),
            ')' if closers.is_empty() => {
                let last = text[start..i].trim();
                if !last.is_empty() || !args.is_empty() {
                    args.push(last.to_owned());
                }
                return Ok((args, &text[i + 1..]));
            }
            // An unmatched closer (`=>`, `->` in a socket name) is text.
            '}' | ']' | ')' | '>' if closers.last() == Some(&c) => {
                closers.pop();
            }
            ',' if closers.is_empty() => {
                args.push(text[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    Err("unbalanced argument list".to_owned())
}

/// Parses an integer as strace prints it with `-X raw`: `0x1a`, `17`, `-100`.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = match digits.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None if digits.len() > 1 && digits.starts_with('0') => {
            i64::from_str_radix(digits, 8).ok()?
        }
        None => digits.parse::<i64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// Parses a flags expression: `0x6c020000`, `0x8000|17` (clone's exit
/// signal), `0`. Every `|`-separated part must be a number.
pub fn parse_flags(s: &str) -> Option<u64> {
    s.split('|').try_fold(0u64, |acc, part| {
        parse_int(part).and_then(|v| u64::try_from(v).ok().map(|v| acc | v))
    })
}

/// Parses `3</proc/1/uid_map>` (or a bare `3`).
pub fn parse_fd(s: &str) -> Option<Fd> {
    let s = s.trim();
    // `8</run/x>(deleted)`: what follows the decoration is a note.
    let (num, path) = match (s.find('<'), s.rfind('>')) {
        (Some(i), Some(j)) if j > i => (&s[..i], Some(s[i + 1..j].to_owned())),
        (None, _) => (s, None),
        _ => return None,
    };
    let num = i32::try_from(parse_int(num)?).ok()?;
    Some(Fd { num, path })
}

/// Unescapes a strace string argument (`"0 1000 1\n"`, possibly followed
/// by `...` when cut at `-s`).
pub fn parse_string(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = s.strip_suffix("...").unwrap_or(s);
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.bytes().peekable();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next()? {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'x' => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match bytes.peek().and_then(|c| (*c as char).to_digit(16)) {
                        Some(d) => {
                            v = v.wrapping_mul(16).wrapping_add(d as u8);
                            bytes.next();
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            d @ b'0'..=b'7' => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match bytes.peek() {
                        Some(c @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(c - b'0');
                            bytes.next();
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(v).ok()?);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// Parses a return value: `0`, `14404`, `3</proc/1/uid_map>`, `-1 EPERM
/// (Operation not permitted)`, `?`. Returns the value and the decoded path.
pub fn parse_ret(s: &str) -> (Ret, Option<String>) {
    let s = s.trim();
    if s.starts_with('?') || s.is_empty() {
        return (Ret::Unknown, None);
    }
    if let Some(rest) = s.strip_prefix("-1 ") {
        let name = rest.split_whitespace().next().unwrap_or("E?");
        return (Ret::Err(name.to_owned()), None);
    }
    // `= 3</x> (flags ...)`: the value is the first word.
    let first = s.split(' ').next().unwrap_or(s);
    match parse_fd(first) {
        Some(fd) => (Ret::Ok(i64::from(fd.num)), fd.path),
        None => match parse_int(first) {
            Some(v) => (Ret::Ok(v), None),
            None => (Ret::Unknown, None),
        },
    }
}

/// Finds `key=VALUE` among the fields of a `{...}` struct argument (clone3).
fn struct_field<'a>(arg: &'a str, key: &str) -> Option<&'a str> {
    let inner = arg.trim().strip_prefix('{')?;
    // The struct may be followed by ` => {...}` (clone3's returned fields).
    let inner = match inner.find('}') {
        Some(end) => &inner[..end],
        None => inner,
    };
    inner.split(", ").find_map(|f| {
        let (k, v) = f.split_once('=')?;
        (k.trim() == key).then_some(v.trim())
    })
}

/// The low byte of clone(2)'s flags is the exit signal, not a flag.
const CSIGNAL: u64 = 0xff;

/// `CLONE_VM | CLONE_VFORK`: what vfork(2) is as a clone.
const VFORK_FLAGS: u64 = 0x4100;

/// Types one complete call; `None` for calls nsapply does not compare.
///
/// # Errors
///
/// A call of interest whose arguments do not decode.
pub fn decode_call(call: &RawCall) -> Result<Option<Event>, String> {
    let pid = call.pid;
    let arg = |i: usize| -> Result<&str, String> {
        call.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("{}: argument {} missing", call.name, i + 1))
    };
    let bad = |what: &str, v: &str| format!("{}: bad {what} {v:?}", call.name);
    let (ret, ret_path) = parse_ret(&call.ret);
    let event = match call.name.as_str() {
        "unshare" => Event::Unshare {
            pid,
            flags: parse_flags(arg(0)?).ok_or_else(|| bad("flags", arg(0).unwrap_or("")))?,
            ret,
        },
        "setns" => Event::Setns {
            pid,
            fd: parse_fd(arg(0)?).ok_or_else(|| bad("fd", arg(0).unwrap_or("")))?,
            nstype: parse_flags(arg(1)?).ok_or_else(|| bad("nstype", arg(1).unwrap_or("")))?,
            ret,
        },
        "clone" => {
            let flags = call
                .args
                .iter()
                .find_map(|a| a.strip_prefix("flags="))
                .ok_or_else(|| bad("arguments", &call.args.join(", ")))?;
            Event::Clone {
                pid,
                flags: parse_flags(flags).ok_or_else(|| bad("flags", flags))? & !CSIGNAL,
                ret,
            }
        }
        // fork(2) is clone(SIGCHLD), vfork(2) clone(CLONE_VM|CLONE_VFORK|SIGCHLD).
        "fork" | "vfork" => Event::Clone {
            pid,
            flags: if call.name == "vfork" { VFORK_FLAGS } else { 0 },
            ret,
        },
        "pidfd_open" => {
            let target = parse_int(arg(0)?)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| bad("pid", arg(0).unwrap_or("")))?;
            Event::PidfdOpen { pid, target, ret }
        }
        "clone3" => {
            let flags = struct_field(arg(0)?, "flags")
                .ok_or_else(|| bad("clone_args", arg(0).unwrap_or("")))?;
            Event::Clone {
                pid,
                flags: parse_flags(flags).ok_or_else(|| bad("flags", flags))?,
                ret,
            }
        }
        "open" | "openat" => {
            let (path, flags) = if call.name == "open" {
                (arg(0)?, arg(1)?)
            } else {
                (arg(1)?, arg(2)?)
            };
            let path = parse_string(path).ok_or_else(|| bad("path", path))?;
            Event::Open {
                pid,
                path: String::from_utf8_lossy(&path).into_owned(),
                flags: parse_flags(flags).ok_or_else(|| bad("flags", flags))?,
                ret,
                fd_path: ret_path,
            }
        }
        "write" => {
            let fd = parse_fd(arg(0)?).ok_or_else(|| bad("fd", arg(0).unwrap_or("")))?;
            // Only writes to files matter (the id maps, setgroups,
            // timens_offsets); pipes and sockets carry no namespace state.
            let to_file = fd.path.as_deref().is_some_and(|p| p.starts_with('/'));
            if !to_file {
                return Ok(None);
            }
            Event::Write {
                pid,
                fd,
                data: parse_string(arg(1)?).ok_or_else(|| bad("buffer", arg(1).unwrap_or("")))?,
                ret,
            }
        }
        "close" => Event::Close {
            pid,
            fd: parse_fd(arg(0)?).ok_or_else(|| bad("fd", arg(0).unwrap_or("")))?,
        },
        "execve" => {
            let path = parse_string(arg(0)?).ok_or_else(|| bad("path", arg(0).unwrap_or("")))?;
            Event::Execve {
                pid,
                path: String::from_utf8_lossy(&path).into_owned(),
                ret,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(event))
}

/// Turns strace output into events, joining interrupted calls.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: BTreeMap<i32, String>,
    line: usize,
    events: Vec<Event>,
}

impl Decoder {
    /// A decoder with no input yet.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds one line.
    ///
    /// # Errors
    ///
    /// The line (or the call it completes) does not decode.
    pub fn feed(&mut self, text: &str) -> Result<(), DecodeError> {
        self.line += 1;
        let err = |message: String| DecodeError {
            line: self.line,
            message,
            text: text.to_owned(),
        };
        let call = match parse_line(text).map_err(err)? {
            Line::Call(call) => call,
            Line::Unfinished { pid, head } => {
                self.pending.insert(pid, head);
                return Ok(());
            }
            Line::Resumed { pid, name, tail } => {
                let Some(head) = self.pending.remove(&pid) else {
                    // Attached mid-call: the first half was never printed.
                    return Ok(());
                };
                if !head.starts_with(&format!("{name}(")) {
                    return Err(err(format!("resumes {name} but {head:?} was pending")));
                }
                split_call(pid, &format!("{head}{tail}")).map_err(err)?
            }
            Line::Other => return Ok(()),
        };
        if let Some(event) = decode_call(&call).map_err(err)? {
            self.events.push(event);
        }
        Ok(())
    }

    /// The events decoded so far, in trace order.
    pub fn finish(self) -> Vec<Event> {
        self.events
    }
}

/// Decodes a whole strace output file's text.
///
/// # Errors
///
/// The first line that does not decode.
///
/// ```
/// use nsapply_conform::strace::{decode, Event, Ret};
/// let events = decode("42 unshare(0x10000000) = 0\n42 setns(3</run/netns/a>, 0x40000000) = -1 EPERM (Operation not permitted)\n").unwrap();
/// assert_eq!(events[0], Event::Unshare { pid: 42, flags: 0x1000_0000, ret: Ret::Ok(0) });
/// assert!(matches!(&events[1], Event::Setns { ret: Ret::Err(e), .. } if e == "EPERM"));
/// ```
pub fn decode(text: &str) -> Result<Vec<Event>, DecodeError> {
    let mut d = Decoder::new();
    for line in text.lines() {
        d.feed(line)?;
    }
    Ok(d.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_strace_could_not_name_is_not_a_call() {
        for line in ["29966 ???() = ?", "29966 ???( <detached ...>"] {
            assert_eq!(parse_line(line), Ok(Line::Other), "{line}");
        }
        assert!(parse_line("29966 ??x() = 0").is_err());
    }

    #[test]
    fn strings_unescape_c_escapes() {
        assert_eq!(parse_string(r#""0 1000 1\n\0""#).unwrap(), b"0 1000 1\n\0");
        assert_eq!(parse_string(r#""a\x41\"b"..."#).unwrap(), b"aA\"b");
        assert_eq!(parse_string(r#""\177\1""#).unwrap(), &[0o177, 1]);
    }

    #[test]
    fn args_split_at_top_level_commas_only() {
        let (args, rest) =
            split_args(r#"{flags=0x1, tls=0x2} => {parent_tid=[7]}, 88) = 7"#).unwrap();
        assert_eq!(args.len(), 2, "{args:?}");
        assert_eq!(rest, " = 7");
        let (args, _) = split_args(r#"-100</a, b>, "x,)", 0x80000) = 3"#).unwrap();
        assert_eq!(args, ["-100</a, b>", r#""x,)""#, "0x80000"]);
    }

    #[test]
    fn clone_exit_signal_is_not_a_flag() {
        let call = split_call(1, "clone(child_stack=NULL, flags=0x8000|17) = 9").unwrap();
        assert!(matches!(
            decode_call(&call).unwrap(),
            Some(Event::Clone {
                flags: 0x8000,
                ret: Ret::Ok(9),
                ..
            })
        ));
    }

    #[test]
    fn pidfd_open_and_fork_decode() {
        // As strace 6.1 prints crun 1.8.1's exec (`-yy`: a pidfd shows
        // its process, a namespace fd its inode).
        let events = decode(
            "23276 pidfd_open(23263, 0) = 5<pid:23263>\n\
             23276 setns(5<pid:23263>, 0x10000000) = 0\n\
             9 fork() = 10\n\
             9 vfork() = 11\n",
        )
        .unwrap();
        assert_eq!(
            events[0],
            Event::PidfdOpen {
                pid: 23276,
                target: 23263,
                ret: Ret::Ok(5)
            }
        );
        assert!(
            matches!(&events[1], Event::Setns { fd, nstype: 0x1000_0000, .. } if fd.path.as_deref() == Some("pid:23263"))
        );
        assert!(matches!(
            events[2],
            Event::Clone {
                flags: 0,
                ret: Ret::Ok(10),
                ..
            }
        ));
        assert!(matches!(
            events[3],
            Event::Clone {
                flags: VFORK_FLAGS,
                ..
            }
        ));
    }

    #[test]
    fn octal_and_hex_ints_parse() {
        assert_eq!(parse_int("0700"), Some(0o700));
        assert_eq!(parse_int("0x2c020000"), Some(0x2c02_0000));
        assert_eq!(parse_int("-100"), Some(-100));
        assert_eq!(parse_int("O_RDONLY"), None);
    }
}
