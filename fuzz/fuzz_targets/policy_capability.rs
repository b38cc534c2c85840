//! Policy capability and SQL caveat validation never panic; canonicalization is idempotent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinycloud_auth::policy::PolicyCapability;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(cap) = PolicyCapability::from_json(&value) {
        let again = PolicyCapability::from_json(&cap.to_json()).expect("canonical form validates");
        assert_eq!(again, cap);
        assert!(cap.contains(&cap).is_ok());
    }
    if let Some(obj) = value.as_object() {
        let _ = tinycloud_auth::sql_caveat::SqlCaveat::from_caveat(obj);
    }
});
