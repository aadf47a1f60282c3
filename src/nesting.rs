//! A cheap look at how deeply YAML text nests its flow collections (`[...]`, `{...}`),
//! taken before the YAML parser sees it: the parser's time grows with the square of
//! that depth (a 200 KB file nested 100,000 levels took 45 s to be refused), while no
//! definition pkgr reads needs more than a handful of levels.

/// Deeper flow nesting than this is refused.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Flow nesting deeper than [`MAX_FLOW_DEPTH`], first reached on this (1-based) line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    /// 1-based, in bytes: where the bracket that went one level too deep is.
    pub column: usize,
}

/// Checks the flow-collection depth of YAML text. Brackets inside quoted scalars and
/// comments do not count; ones in plain or block scalars may, which can only make
/// the count higher, never let a deep document through.
pub fn check_flow_depth(text: &[u8]) -> Result<(), TooDeep> {
    #[derive(PartialEq)]
    enum In {
        Plain,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Plain;
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut previous = b'\n';
    let mut escaped = false;
    let mut bytes = text.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        column += 1;
        match state {
            In::Comment if byte == b'\n' => state = In::Plain,
            In::Comment => {}
            In::Double if escaped => escaped = false,
            In::Double if byte == b'\\' => escaped = true,
            In::Double if byte == b'"' => state = In::Plain,
            // `''` is a quote inside a single-quoted scalar.
            In::Single if byte == b'\'' && bytes.peek() == Some(&b'\'') => {
                bytes.next();
            }
            In::Single if byte == b'\'' => state = In::Plain,
            In::Double | In::Single => {}
            In::Plain => {
                let starts_token =
                    previous.is_ascii_whitespace() || matches!(previous, b'[' | b'{' | b',' | b':');
                match byte {
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > MAX_FLOW_DEPTH {
                            return Err(TooDeep { line, column });
                        }
                    }
                    b']' | b'}' => depth = depth.saturating_sub(1),
                    b'#' if previous.is_ascii_whitespace() => state = In::Comment,
                    b'"' if starts_token => state = In::Double,
                    b'\'' if starts_token => state = In::Single,
                    _ => {}
                }
            }
        }
        if byte == b'\n' {
            line += 1;
            column = 0;
        }
        previous = byte;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!(
            "kind: x\nlist: {}{}\n",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    }

    #[test]
    fn ordinary_nesting_passes_and_deep_nesting_is_refused_at_its_line() {
        assert_eq!(check_flow_depth(nested(MAX_FLOW_DEPTH).as_bytes()), Ok(()));
        assert_eq!(
            check_flow_depth(nested(MAX_FLOW_DEPTH + 1).as_bytes()),
            Err(TooDeep {
                line: 2,
                column: 7 + MAX_FLOW_DEPTH
            })
        );
        assert_eq!(
            check_flow_depth(nested(100_000).as_bytes()),
            Err(TooDeep {
                line: 2,
                column: 7 + MAX_FLOW_DEPTH
            })
        );
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let brackets = "[".repeat(MAX_FLOW_DEPTH + 1);
        for text in [
            format!("a: \"{brackets}\"\n"),
            format!("a: '{brackets}'\n"),
            format!("a: \"it\\\"s {brackets}\"\n"),
            format!("a: 'it''s {brackets}'\n"),
            format!("a: b # {brackets}\n"),
            format!("# {brackets}\n"),
        ] {
            assert_eq!(check_flow_depth(text.as_bytes()), Ok(()), "{text}");
        }
    }

    #[test]
    fn closed_collections_do_not_add_up() {
        let text = "a: [1, [2]]\n".repeat(10_000);
        assert_eq!(check_flow_depth(text.as_bytes()), Ok(()));
    }
}
