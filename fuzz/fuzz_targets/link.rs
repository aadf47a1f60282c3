//! Arbitrary text as a `Link` header on a page of tags or referrers. The parser must
//! not panic, and a next page it returns is on the current page's origin (credentials
//! go with it) and is named in the header with `rel="next"`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pkgr::fuzzing::next_page;

fuzz_target!(|data: &[u8]| {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    let current =
        reqwest::Url::parse("http://127.0.0.1:5000/v2/team/app/tags/list?n=100").expect("a URL");
    let Some(next) = next_page(&current, link) else {
        return;
    };
    let next = reqwest::Url::parse(&next).expect("next_page returns a URL");
    assert_eq!(next.scheme(), current.scheme(), "{link:?}");
    assert_eq!(next.host_str(), current.host_str(), "{link:?}");
    assert_eq!(
        next.port_or_known_default(),
        current.port_or_known_default(),
        "{link:?}"
    );
    assert!(link.contains("next"), "{link:?}");
});
