//! ReCap decoding must never panic; decode(encode(x)) == x for anything that decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinycloud_auth::recap::Recap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let uri = format!("urn:recap:{text}");
    if let Ok(recap) = Recap::from_resource(&uri) {
        let again = Recap::from_resource(&recap.to_resource()).expect("re-decode");
        assert_eq!(again, recap);
        let _ = recap.statement();
        let _ = recap.capabilities();
    }
});
