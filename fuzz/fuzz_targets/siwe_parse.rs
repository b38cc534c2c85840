//! Fuzzes the EIP-4361 parser: arbitrary UTF-8 must never panic, and any
//! accepted message must re-serialize to exactly the input and re-parse to an
//! equal message.
//!
//! Run with `cargo fuzz run siwe_parse` from the `fuzz/` directory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tinycloud_auth::siwe::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = text.parse::<Message>() else {
        return;
    };
    let rendered = message.to_string();
    assert_eq!(rendered, text, "display must reproduce the parsed text");
    let reparsed: Message = rendered
        .parse()
        .expect("a rendered message must parse again");
    assert_eq!(reparsed, message, "re-parse must give the same message");
    assert_eq!(message.validate(), Ok(()));
    // Hashing must not panic either.
    let _ = message.eip191_hash();
});
