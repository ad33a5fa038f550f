//! The bytes an entry's HMAC covers: the reference's
//! `json.dumps(blob, sort_keys=True, default=str)`, reproduced exactly
//! (keys sorted, `", "` and `": "` separators, non-ASCII escaped, Python's
//! float repr and `datetime.isoformat()`), so a log written by either
//! implementation verifies in the other.

use std::fmt::Write;

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

use super::AuditEntry;

/// The signed body of `entry` (everything but its signature).
pub(crate) fn signed_body(entry: &AuditEntry) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"action\": ");
    write_str(&mut out, &entry.action);
    out.push_str(", \"actor\": ");
    write_str(&mut out, &entry.actor);
    out.push_str(", \"payload\": ");
    write_object(&mut out, &entry.payload);
    if !entry.prev_hash.is_empty() {
        out.push_str(", \"prev_hash\": ");
        write_str(&mut out, &entry.prev_hash);
    }
    let _ = write!(out, ", \"seq\": {}", entry.seq);
    out.push_str(", \"session_id\": ");
    write_str(&mut out, &entry.session_id);
    out.push_str(", \"timestamp\": ");
    write_str(&mut out, &python_isoformat(&entry.timestamp));
    out.push_str(", \"user_id\": ");
    match entry.user_id.as_str() {
        Some(user) => write_str(&mut out, user),
        None => out.push_str("null"),
    }
    out.push('}');
    out
}

/// `datetime.isoformat()` of an aware UTC datetime: microseconds (left out
/// when zero) and `+00:00`.
pub(crate) fn python_isoformat(t: &DateTime<Utc>) -> String {
    let micros = t.nanosecond() / 1_000 % 1_000_000;
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    }
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => {
                let _ = write!(out, "{i}");
            }
            (None, Some(u), _) => {
                let _ = write!(out, "{u}");
            }
            (None, None, Some(f)) => write_float(out, f),
            _ => {
                let _ = write!(out, "{n}");
            }
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    // Python sorts str keys by code point; Rust's `str` order is by UTF-8
    // bytes, which is the same order.
    keys.sort_unstable();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, key);
        out.push_str(": ");
        if let Some(v) = map.get(key) {
            write_value(out, v);
        }
    }
    out.push('}');
}

/// A JSON string as Python's `ensure_ascii=True` writes it.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation
/// for decimal exponents in (-4, 16], otherwise `d.ddde±XX`.
fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str(if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
        return;
    }
    // Rust's `{:e}` gives the same shortest digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decpt = exp + 1;
    out.push_str(sign);
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', decpt as usize - digits.len()));
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(decpt as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, f);
        s
    }

    #[test]
    fn floats_print_like_python_repr() {
        // Each pair checked against CPython 3.11's repr().
        for (f, py) in [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e22, "1.2345e+22"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(float(f), py, "{f}");
        }
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        let mut s = String::new();
        write_str(&mut s, "é\"\\\n\u{1}\u{7f}😀~");
        assert_eq!(s, r#""\u00e9\"\\\n\u0001\u007f\ud83d\ude00~""#);
    }

    #[test]
    fn timestamps_follow_isoformat() {
        let t: DateTime<Utc> = "2026-11-21T10:00:00.123456789Z".parse().unwrap();
        assert_eq!(python_isoformat(&t), "2026-11-21T10:00:00.123456+00:00");
        let t: DateTime<Utc> = "2026-11-21T10:00:00Z".parse().unwrap();
        assert_eq!(python_isoformat(&t), "2026-11-21T10:00:00+00:00");
    }
}
