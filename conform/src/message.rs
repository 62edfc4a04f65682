//! The one-line reason a runtime gave for refusing a case, decoded from
//! its stderr. Each runtime family writes errors its own way:
//!
//! * runc: logrus lines (`time="..." level=fatal msg="..."`); runc's
//!   nsexec reports the failing call in the `fatal` line, before a generic
//!   last line, so that line is taken and its `msg` unquoted;
//! * youki: `tracing` lines (`ERROR <module>: <message> key=value ...`),
//!   one per layer it unwinds through, then anyhow's `Caused by:` list and,
//!   with `RUST_BACKTRACE` set, a `Stack backtrace:` of numbered frames. The
//!   first `ERROR` line is the innermost (where the call failed); its
//!   fields are decoded (`err=Nix(EPERM)` to the errno name,
//!   `namespace=LinuxNamespace { typ: Network, path: Some("/p") }` to the
//!   spec type and path) and the `Caused by:` list is appended;
//! * crun and others: the last non-empty line.

/// The runtime's error line (module docs).
///
/// ```
/// use nsapply_conform::error_line;
/// let e = "time=\"t\" level=fatal msg=\"nsexec-1[9]: failed to setns: Invalid argument\"\n\
///          time=\"t\" level=error msg=\"runc run failed: EOF\"\n";
/// assert_eq!(error_line(e), "nsexec-1[9]: failed to setns: Invalid argument");
/// assert_eq!(error_line("crun: open `/x`: ENOENT\n\n"), "crun: open `/x`: ENOENT");
/// let youki = "ERROR libcontainer::namespaces: failed to set namespace err=Nix(EPERM) \
///              namespace=LinuxNamespace { typ: Network, path: Some(\"/run/netns/a\") }\n\
///              ERROR youki: error in executing command: failed to create container: EPERM\n\
///              \nStack backtrace:\n   0: <unknown>\n   9: <unknown>\n";
/// assert_eq!(error_line(youki), "failed to set namespace network /run/netns/a: EPERM");
/// ```
pub fn error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(youki) = tracing_error(&lines) {
        return youki;
    }
    let line = lines
        .iter()
        .find(|l| l.contains("level=fatal"))
        .or(lines.last())
        .copied()
        .unwrap_or("");
    if let Some(start) = line.find("msg=\"") {
        return unquote(&line[start + 4..]).0;
    }
    line.to_owned()
}

/// A Go- or Rust-style quoted string at the start of `s` (`"..."` with
/// backslash escapes): its text and the rest of `s` after the closing quote.
fn unquote(s: &str) -> (String, &str) {
    let Some(body) = s.strip_prefix('"') else {
        return (String::new(), s);
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            '"' => return (out, &body[i + 1..]),
            c => out.push(c),
        }
    }
    (out, "")
}

/// youki's error, when `lines` hold `tracing` `ERROR` lines (module docs).
fn tracing_error(lines: &[&str]) -> Option<String> {
    let first = lines.iter().find_map(|l| {
        let rest = l.strip_prefix("ERROR ")?;
        let (target, message) = rest.split_once(": ")?;
        let is_module = !target.is_empty()
            && target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        is_module.then_some(message)
    })?;
    let mut out = decode_fields(first);
    // anyhow's chain: "Caused by:" then "0: ...", "1: ...", up to a blank
    // line or the backtrace.
    let causes = lines
        .iter()
        .skip_while(|l| **l != "Caused by:")
        .skip(1)
        .take_while(|l| !l.starts_with("Stack backtrace:"))
        .filter_map(|l| {
            let (n, text) = l.split_once(": ")?;
            n.chars().all(|c| c.is_ascii_digit()).then_some(text)
        });
    for c in causes {
        out.push_str(": ");
        out.push_str(c);
    }
    Some(out)
}

/// `message key=value ...` of a `tracing` line, with the fields youki's
/// namespace code logs made readable: `namespace=` as `<type> <path>`,
/// `err=` as the errno name it wraps (`Syscall(Nix(EPERM))`: `EPERM`).
fn decode_fields(line: &str) -> String {
    // The message ends where the first ` key=` field starts.
    let field_start = |s: &str| {
        s.match_indices(' ').map(|(i, _)| i).find(|&i| {
            let word: String = s[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            !word.is_empty() && s[i + 1 + word.len()..].starts_with('=')
        })
    };
    let Some(start) = field_start(line) else {
        return line.to_owned();
    };
    let mut out = line[..start].to_owned();
    let mut rest = &line[start + 1..];
    let mut errno = None;
    while let Some((key, after)) = rest.split_once('=') {
        // A value runs to the next ` key=` (values hold spaces and braces).
        let end = field_start(after).unwrap_or(after.len());
        let value = &after[..end];
        match key {
            "err" => errno = errno_name(value).or_else(|| Some(value.to_owned())),
            "namespace" => out.push_str(&namespace(value)),
            _ => {
                out.push(' ');
                out.push_str(key);
                out.push('=');
                out.push_str(value);
            }
        }
        rest = after[end..].trim_start();
    }
    if let Some(e) = errno {
        out.push_str(": ");
        out.push_str(&e);
    }
    out
}

/// The errno name inside a value such as `Nix(EPERM)` or `ENOENT`.
fn errno_name(value: &str) -> Option<String> {
    value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            w.len() > 1
                && w.starts_with('E')
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .map(str::to_owned)
}

/// ` <type> <path>` from `LinuxNamespace { typ: Network, path: Some("/p") }`.
fn namespace(value: &str) -> String {
    let field = |name: &str| {
        value
            .find(&format!("{name}: "))
            .map(|i| &value[i + name.len() + 2..])
    };
    let mut out = String::new();
    if let Some(typ) = field("typ") {
        let word: String = typ.chars().take_while(char::is_ascii_alphabetic).collect();
        out.push(' ');
        out.push_str(&word.to_ascii_lowercase());
    }
    if let Some(path) = field("path").and_then(|p| p.strip_prefix("Some(")) {
        out.push(' ');
        out.push_str(&unquote(path).0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_line;

    /// youki 0.7.0's stderr for a file that is not a namespace, as it
    /// prints it with RUST_BACKTRACE=1 (the backtrace's last line was the
    /// report's reason before this decoder: `9: <unknown>`).
    const YOUKI_SETNS: &str = "\
ERROR libcontainer::namespaces: failed to set namespace err=Nix(EINVAL) namespace=LinuxNamespace { typ: Network, path: Some(\"/tmp/w/file\") }
ERROR libcontainer::process::init::process: failed to apply rest of the namespaces (exclude user and pid) err=Syscall(Nix(EINVAL))
ERROR youki: error in executing command: failed to create container: exec process failed with error error in executing process : EINVAL: Invalid argument

Stack backtrace:
   0: <unknown>
   7: __libc_start_call_main
             at ./csu/../sysdeps/nptl/libc_start_call_main.h:58:16
   9: <unknown>
";

    #[test]
    fn youki_setns_failure_names_type_path_and_errno() {
        assert_eq!(
            error_line(YOUKI_SETNS),
            "failed to set namespace network /tmp/w/file: EINVAL"
        );
    }

    #[test]
    fn youki_open_failure_with_a_bare_errno() {
        let e = "ERROR libcontainer::namespaces: failed to open namespace file err=ENOENT namespace=LinuxNamespace { typ: Ipc, path: Some(\"/x y/m\") }\n";
        assert_eq!(
            error_line(e),
            "failed to open namespace file ipc /x y/m: ENOENT"
        );
    }

    #[test]
    fn youki_cause_chain_is_appended() {
        let e = "ERROR youki: error in executing command: oci spec error\n\nCaused by:\n    0: serde failed\n    1: unknown variant `net`, expected one of `mount` at line 8 column 21\n\nStack backtrace:\n   0: <unknown>\n";
        assert_eq!(
            error_line(e),
            "error in executing command: oci spec error: serde failed: unknown variant `net`, expected one of `mount` at line 8 column 21"
        );
    }

    #[test]
    fn youki_line_without_fields_is_kept() {
        let e = "ERROR youki: error in executing command: time namespace offsets specified, but time namespace isn't enabled in the config\n";
        assert_eq!(
            error_line(e),
            "error in executing command: time namespace offsets specified, but time namespace isn't enabled in the config"
        );
    }

    #[test]
    fn unknown_fields_are_kept_verbatim() {
        let e = "ERROR a::b: failed x=1 err=Other(thing)\n";
        assert_eq!(error_line(e), "failed x=1: Other(thing)");
    }

    #[test]
    fn runc_fatal_line_is_unquoted() {
        let e = "time=\"t\" level=fatal msg=\"a \\\"q\\\" b\"\n";
        assert_eq!(error_line(e), "a \"q\" b");
    }

    #[test]
    fn empty_stderr_is_an_empty_line() {
        assert_eq!(error_line(""), "");
        assert_eq!(error_line("\n\n"), "");
    }
}
