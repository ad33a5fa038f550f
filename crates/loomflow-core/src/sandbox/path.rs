//! Deciding whether a path argument stays under the sandbox's roots.

use std::path::{Component, Path, PathBuf};

/// Where a path argument resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathVerdict {
    /// Under a root, at this resolved absolute path.
    Inside(PathBuf),
    /// Outside every root, at this resolved path.
    Outside(PathBuf),
    /// Cannot be decided safely, for this reason.
    Undecidable(String),
}

/// Argument names that hold paths.
pub(crate) fn is_path_like_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "path"
            | "paths"
            | "file"
            | "files"
            | "filename"
            | "filepath"
            | "file_path"
            | "dir"
            | "dirs"
            | "directory"
            | "folder"
            | "cwd"
            | "root"
            | "src"
            | "dst"
            | "source"
            | "destination"
            | "dest"
            | "target"
            | "from"
            | "to"
            | "uri"
    ) || [
        "_path",
        "_paths",
        "_file",
        "_files",
        "_dir",
        "_dirs",
        "_directory",
        "_folder",
    ]
    .iter()
    .any(|suffix| k.ends_with(suffix))
}

/// Values that look like paths: a separator, `~`, `file:`, or `.`/`..`.
pub(crate) fn looks_like_path(s: &str) -> bool {
    if is_other_url(s) {
        return false;
    }
    s.contains('/')
        || s.contains('\\')
        || s.starts_with('~')
        || s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("file:"))
        || s == "."
        || s == ".."
        || s.chars().any(is_confusable)
}

/// `https://…`, `s3://…`: URLs of schemes other than `file`.
fn is_other_url(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && !scheme.eq_ignore_ascii_case("file")
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

/// Characters that normalise (NFKC) or render as `.`, `/` or `\`, and
/// invisible ones that hide what a path says.
fn is_confusable(c: char) -> bool {
    matches!(
        c,
        '\u{FF0E}' // FULLWIDTH FULL STOP
            | '\u{FF0F}' // FULLWIDTH SOLIDUS
            | '\u{FF3C}' // FULLWIDTH REVERSE SOLIDUS
            | '\u{2215}' // DIVISION SLASH
            | '\u{2044}' // FRACTION SLASH
            | '\u{29F8}' // BIG SOLIDUS
            | '\u{29F9}' // BIG REVERSE SOLIDUS
            | '\u{FE68}' // SMALL REVERSE SOLIDUS
            | '\u{2024}' // ONE DOT LEADER
            | '\u{2025}' // TWO DOT LEADER
            | '\u{2026}' // HORIZONTAL ELLIPSIS
            | '\u{FE52}' // SMALL FULL STOP
            | '\u{3002}' // IDEOGRAPHIC FULL STOP
            | '\u{200B}'..='\u{200F}' // zero-width and direction marks
            | '\u{202A}'..='\u{202E}' // direction embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // direction isolates
            | '\u{FEFF}' // zero-width no-break space
    )
}

/// Resolves `raw` (relative to `base`) and says whether it lands under one
/// of `roots` (which must already be canonical).
pub fn resolve_within(raw: &str, base: &Path, roots: &[PathBuf]) -> PathVerdict {
    let path = match parse(raw) {
        Ok(p) => p,
        Err(why) => return PathVerdict::Undecidable(why),
    };
    let absolute = if path.is_absolute() {
        path
    } else {
        base.join(path)
    };
    match resolve(&absolute) {
        Ok(resolved) if roots.iter().any(|r| resolved.starts_with(r)) => {
            PathVerdict::Inside(resolved)
        }
        Ok(resolved) => PathVerdict::Outside(resolved),
        Err(why) => PathVerdict::Undecidable(why),
    }
}

/// The path an argument names: `file://` URLs decoded, `~` expanded.
fn parse(raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("an empty path".into());
    }
    if raw.contains('\0') {
        return Err("a NUL byte in a path".into());
    }
    if let Some(c) = raw.chars().find(|c| is_confusable(*c)) {
        return Err(format!(
            "the character U+{:04X} looks like a path separator or dot, or is invisible",
            c as u32
        ));
    }
    if raw.contains('\\') {
        return Err("a backslash (a Windows separator, or an escape) in a path".into());
    }
    let mut text = raw.to_owned();
    if text
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
    {
        let rest = &text[5..];
        let rest = match rest.strip_prefix("//") {
            // file:///x (empty host) or file://localhost/x.
            Some(r) if r.starts_with('/') => r.to_owned(),
            Some(r) => match r.strip_prefix("localhost") {
                Some(r) if r.starts_with('/') => r.to_owned(),
                _ => return Err("a file:// URL naming another host".into()),
            },
            None => rest.to_owned(),
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        text = percent_decode(rest)?;
        if text.contains('\0') {
            return Err("a NUL byte in a path".into());
        }
    }
    if let Some(rest) = text.strip_prefix('~') {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return Err("`~user` paths name another user's home".into());
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "`~` with no HOME set".to_owned())?;
        let mut p = PathBuf::from(home);
        p.push(rest.trim_start_matches('/'));
        return Ok(p);
    }
    Ok(PathBuf::from(text))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a malformed %-escape in a file:// URL".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a file:// URL that is not UTF-8".to_owned())
}

/// Resolves every symlink and `..` of an absolute path, component by
/// component: the existing part through the filesystem, the rest (which
/// cannot hold symlinks) lexically.
fn resolve(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Prefix(_) => return Err("a Windows path prefix".into()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                // `out` is resolved here, so its parent is the real parent.
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                match std::fs::symlink_metadata(&out) {
                    // Exists (perhaps as a symlink, perhaps dangling or in a
                    // loop): resolve it for real.
                    Ok(_) => {
                        out = std::fs::canonicalize(&out)
                            .map_err(|e| format!("{} cannot be resolved: {e}", out.display()))?;
                    }
                    // Not there: a name, not a link; what follows is lexical
                    // until a `..` climbs back into existing directories.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("{} cannot be read: {e}", out.display())),
                }
            }
        }
    }
    Ok(out)
}
