//! DIDs, space ids, resource URIs, abilities and CIDs: parsing never panics and display
//! round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tinycloud_auth::{ability::Ability, did::DidUrl, resource::{Resource, SpaceId}};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(d) = s.parse::<DidUrl>() {
        assert_eq!(d.to_string().parse::<DidUrl>().expect("did round trip"), d);
    }
    if let Ok(sp) = s.parse::<SpaceId>() {
        assert_eq!(sp.to_string().parse::<SpaceId>().expect("space round trip"), sp);
    }
    if let Ok(r) = s.parse::<Resource>() {
        let again = r.to_string().parse::<Resource>().expect("resource round trip");
        assert_eq!(again, r);
        assert!(r.extends(&r), "containment is reflexive");
    }
    if let Ok(a) = s.parse::<Ability>() {
        assert!(a.covers(&a));
    }
    let _ = tinycloud_auth::cid::parse_cid(s);
});
