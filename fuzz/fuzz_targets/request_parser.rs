//! Feeds arbitrary bodies, under each content type a client may send, to the
//! parser of promotion requests. Any panic is a finding; an error is the
//! expected answer to garbage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 5 {
        0 => Some("application/json"),
        1 => Some("application/json; charset=utf-8"),
        2 => Some("application/x-www-form-urlencoded"),
        3 => Some("text/plain"),
        _ => None,
    };
    if let Ok(request) = promoter::http::parse_promotion(content_type, body) {
        // What was accepted obeys the field rules.
        assert_ne!(request.from_feed.key(), request.to_feed.key());
        assert!(!request.name.as_str().is_empty());
    }
});
