//! Reading inputs and writing outputs for commands: files, stdin, JSON.
//!
//! Human output goes through [`say!`]: a reader that closed the pipe
//! (`remit ... | head`) ends the process quietly with status 0 instead of
//! the panic `println!` would raise. Text that came from someone else (ids,
//! owners, subjects, tool names) goes through [`printable`] first.

/// Prints a line on standard output like `println!`; a closed pipe ends
/// the process quietly (status 0).
macro_rules! say {
    () => {
        $crate::io::say_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::io::say_line(format_args!($($arg)*))
    };
}

use std::borrow::Cow;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Reads a whole UTF-8 file, or standard input when the path is `-`.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes secret material to a new file readable only by its owner (0600).
///
/// Refuses to overwrite an existing file, so a key is never lost by accident.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Prints a value as pretty JSON on standard output.
///
/// A reader that closed the pipe early (`remit ... | head`) is not an error.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}

/// Writes one line for [`say!`]: a closed pipe exits quietly with status 0,
/// any other write error exits with status 2 and says so on stderr.
pub fn say_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(2);
    }
}

/// Whether an error is (caused by) a reader that closed standard output.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `text` fit for a terminal: control characters and bidirectional
/// overrides (which could rewrite what the operator sees: a name holding
/// `\x1b[2J` or U+202E) are escaped, the rest is left as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_escapes_controls_and_bidi_overrides_only() {
        assert_eq!(printable("alice"), "alice");
        assert_eq!(printable("é/ü x"), "é/ü x");
        assert_eq!(
            printable("evil\x1b[2J\nowner: root"),
            "evil\\u{1b}[2J\\nowner: root"
        );
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
    }
}
