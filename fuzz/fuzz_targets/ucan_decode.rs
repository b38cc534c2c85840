//! UCAN JWT decoding and verification must never panic; a decoded token re-decodes identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinycloud_auth::ucan::Ucan;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ucan) = Ucan::decode(text) {
        let _ = ucan.verify_signature();
        let again = Ucan::decode(ucan.as_str()).expect("re-decode");
        assert_eq!(again.cid(), ucan.cid());
    }
    let _ = tinycloud_auth::token::Invocation::from_header(text);
    let _ = tinycloud_auth::token::Delegation::from_header(text);
});
