//! Arbitrary text as a `WWW-Authenticate` header. The parser must not panic, and what
//! it finds must be in the header: Basic or Bearer is the header's scheme, and in a
//! header without escapes, the Bearer realm, service and scope it returns are each
//! found in the text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgr::fuzzing::{parse_challenge, Challenge};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let scheme = header
        .trim()
        .split(char::is_whitespace)
        .next()
        .unwrap_or("");
    match parse_challenge(header) {
        None => {}
        Some(Challenge::Basic) => assert!(scheme.eq_ignore_ascii_case("basic")),
        Some(Challenge::Bearer {
            realm,
            service,
            scope,
        }) => {
            assert!(scheme.eq_ignore_ascii_case("bearer"));
            if header.contains('\\') {
                return;
            }
            for value in [Some(&realm), service.as_ref(), scope.as_ref()]
                .into_iter()
                .flatten()
            {
                assert!(
                    header.contains(value.as_str()),
                    "{value:?} is not in {header:?}"
                );
            }
        }
    }
});
