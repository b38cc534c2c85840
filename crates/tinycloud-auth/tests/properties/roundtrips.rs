//! Round trips: encode → decode → encode is the identity.

use super::*;

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn siwe_text_round_trips(m in arb_message(true, None)) {
        let text = m.to_string();
        let parsed: Message = text
            .parse()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.to_string(), text.clone(), "text is stable");
        // The JSON field bag round-trips as well.
        let fields = serde_json::to_value(m.to_fields()).unwrap();
        let fields: MessageFields = serde_json::from_value(fields).unwrap();
        let back = Message::try_from(fields).unwrap();
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn recap_round_trips(r in arb_recap()) {
        let uri = r.to_resource();
        let back = Recap::from_resource(&uri)
            .map_err(|e| TestCaseError::fail(format!("{e}: {uri}")))?;
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.to_resource(), uri.clone(), "encoding is stable");
        prop_assert_eq!(back.to_jcs(), r.to_jcs());
        // As the single ReCap among SIWE resources.
        let found = Recap::extract(&["https://a.example".to_owned(), uri]).unwrap();
        prop_assert_eq!(found, Some(r));
    }
}

proptest! {
    #![proptest_config(cfg(96))]

    #[test]
    fn cacao_round_trips(m in arb_message(false, Some(wallet_address()))) {
        let text = m.to_string();
        let sig = sign_eip191(&wallet(), text.as_bytes()).unwrap();
        let c = Cacao::new(m.clone(), sig.to_vec()).unwrap();
        let back = Cacao::from_bytes(c.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back.as_bytes(), c.as_bytes());
        prop_assert_eq!(back.message(), &m);
        prop_assert_eq!(back.message().to_string(), text);
        prop_assert_eq!(back.cid(), c.cid());
        prop_assert_eq!(back.issuer(), &Did::pkh(m.chain_id, wallet_address()).unwrap());
        prop_assert_eq!(back.signature(), &sig[..]);
        back.verify().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let via_header = Cacao::from_header(&c.to_header()).unwrap();
        prop_assert_eq!(via_header.as_bytes(), c.as_bytes());
        // Re-encoding the decoded message gives the same bytes (and so the same CID).
        let again = Cacao::new(back.message().clone(), back.signature().to_vec()).unwrap();
        prop_assert_eq!(again.as_bytes(), c.as_bytes());
    }

    #[test]
    fn ucan_round_trips_and_signing_is_deterministic(spec in arb_ucan_spec()) {
        let u = spec.builder().sign(&spec.key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = Ucan::decode(u.as_str()).unwrap();
        prop_assert_eq!(d.as_str(), u.as_str());
        prop_assert_eq!(d.issuer(), &spec.issuer());
        prop_assert_eq!(d.audience(), &spec.audience);
        let (nbf, exp) = (d.not_before(), d.expiration());
        prop_assert!(same_numeric_date(nbf, spec.nbf), "nbf {:?} != {:?}", nbf, spec.nbf);
        prop_assert!(same_numeric_date(exp, spec.exp), "exp {:?} != {:?}", exp, spec.exp);
        prop_assert_eq!(d.nonce(), Some(spec.nonce.as_str()));
        prop_assert_eq!(d.proofs(), &spec.proofs[..]);
        prop_assert_eq!(d.facts(), &spec.facts[..]);
        prop_assert_eq!(sorted_caps(d.capabilities()), sorted_caps(&spec.caps));
        prop_assert_eq!(d.att(), &att_from_capabilities(&spec.caps));
        prop_assert_eq!(d.cid(), blake3_cid(u.as_str().as_bytes()));
        d.verify_signature().map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Deterministic signatures (Ed25519; RFC 6979 for ECDSA): same builder, same CID.
        let again = spec.builder().sign(&spec.key).unwrap();
        prop_assert_eq!(again.as_str(), u.as_str());
        prop_assert_eq!(again.cid(), u.cid());
    }
}
