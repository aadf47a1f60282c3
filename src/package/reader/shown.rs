//! Names and other bytes from a package as they may appear in a message: short, and
//! unable to move the cursor, recolour a terminal or pass for other text.

use std::fmt::Write;

/// Characters of a name kept in a message; the rest is counted, not shown.
pub const MAX_SHOWN_CHARS: usize = 200;

/// `raw` with control and other non-printing characters escaped as Rust escapes them,
/// bytes that are not UTF-8 as `\xNN`, and anything past [`MAX_SHOWN_CHARS`] cut off.
pub fn shown(raw: &[u8]) -> String {
    let mut out = String::new();
    let mut kept = 0usize;
    let mut consumed = 0usize;
    'chunks: for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if kept == MAX_SHOWN_CHARS {
                break 'chunks;
            }
            kept += 1;
            consumed += c.len_utf8();
            match c {
                // Quotes are harmless in a message and common in names.
                '\'' | '"' => out.push(c),
                _ => out.extend(c.escape_debug()),
            }
        }
        for byte in chunk.invalid() {
            if kept == MAX_SHOWN_CHARS {
                break 'chunks;
            }
            kept += 1;
            consumed += 1;
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    if consumed < raw.len() {
        let _ = write!(out, "… ({} bytes in all)", raw.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_and_bad_utf8_are_escaped() {
        assert_eq!(shown(b"images/index.json"), "images/index.json");
        assert_eq!(shown(b"a\x1b[31mb\nc"), "a\\u{1b}[31mb\\nc");
        assert_eq!(shown(b"x\xff\xfey"), "x\\xff\\xfey");
        assert_eq!(shown("\u{202e}txt".as_bytes()), "\\u{202e}txt");
        assert_eq!(shown(b"it's \"ok\""), "it's \"ok\"");
    }

    #[test]
    fn long_names_are_cut() {
        let long = "é".repeat(1000);
        let text = shown(long.as_bytes());
        assert!(text.starts_with(&"é".repeat(MAX_SHOWN_CHARS)));
        assert!(text.ends_with("… (2000 bytes in all)"), "{text}");
        assert_eq!(shown(&[b'a'; 200]), "a".repeat(200));
    }
}
