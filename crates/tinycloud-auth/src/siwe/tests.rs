use time::macros::datetime;

use super::*;
use crate::eth::sign_eip191;

const EXAMPLE: &str = "service.org wants you to sign in with your Ethereum account:\n\
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\
\n\
I accept the ServiceOrg Terms of Service: https://service.org/tos\n\
\n\
URI: https://service.org/login\n\
Version: 1\n\
Chain ID: 1\n\
Nonce: 32891757\n\
Issued At: 2021-09-30T16:25:24.000Z\n\
Expiration Time: 2021-10-30T16:25:24.000Z\n\
Not Before: 2021-09-30T16:25:24.000Z\n\
Request ID: some_id\n\
Resources:\n\
- ipfs://Qme7ss3ARVgxv6rXqVPiikMJ8u2NLgmgszg13pYrDKEoiu\n\
- https://example.com/my-web2-claim.json";

fn example() -> Message {
    EXAMPLE.parse().unwrap()
}

fn signed_by(seed: u8) -> (Message, [u8; 65]) {
    let key = k256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let mut message = example();
    message.address = EthAddress::from_verifying_key(key.verifying_key());
    let sig = sign_eip191(&key, &message.to_signing_bytes()).unwrap();
    (message, sig)
}

#[test]
fn parses_all_fields() {
    let m = example();
    assert_eq!(m.scheme, None);
    assert_eq!(m.domain, "service.org");
    assert_eq!(m.chain_id, 1);
    assert_eq!(m.request_id.as_deref(), Some("some_id"));
    assert_eq!(m.resources.as_ref().map(Vec::len), Some(2));
    assert_eq!(m.to_string(), EXAMPLE);
}

#[test]
fn fields_roundtrip() {
    let m = example();
    assert_eq!(Message::try_from(m.to_fields()).unwrap(), m);
    let json = serde_json::to_value(m.to_fields()).unwrap();
    assert_eq!(json["chainId"], 1);
    assert_eq!(json["issuedAt"], "2021-09-30T16:25:24.000Z");
}

#[test]
fn structural_errors_name_the_line() {
    let no_version = EXAMPLE.replace("Version: 1\n", "");
    assert_eq!(
        no_version.parse::<Message>(),
        Err(SiweError::MalformedLine {
            line: 7,
            expected: "Version: "
        })
    );
    let trailing = format!("{EXAMPLE}\n");
    assert_eq!(
        trailing.parse::<Message>(),
        Err(SiweError::UnexpectedLine { line: 17 })
    );
    assert!(matches!(
        EXAMPLE.replace('\n', "\r\n").parse::<Message>(),
        Err(SiweError::MalformedLine { line: 1, .. })
    ));
    assert!(matches!(
        "".parse::<Message>(),
        Err(SiweError::MalformedLine { line: 1, .. })
    ));
}

#[test]
fn field_errors_are_precise() {
    type Check = fn(&SiweError) -> bool;
    let cases: [(&str, &str, Check); 6] = [
        ("Chain ID: 1\n", "Chain ID: 01\n", |e| {
            matches!(e, SiweError::InvalidChainId(_))
        }),
        ("Chain ID: 1\n", "Chain ID: +1\n", |e| {
            matches!(e, SiweError::InvalidChainId(_))
        }),
        ("Version: 1\n", "Version: 01\n", |e| {
            matches!(e, SiweError::UnsupportedVersion(_))
        }),
        ("Request ID: some_id", "Request ID: a b", |e| {
            matches!(e, SiweError::InvalidRequestId(_))
        }),
        ("service.org wants", "1http://service.org wants", |e| {
            matches!(e, SiweError::InvalidScheme(_))
        }),
        ("Terms of Service:", "Terms \"of\" Service:", |e| {
            matches!(e, SiweError::InvalidStatement(_))
        }),
    ];
    for (from, to, check) in cases {
        let text = EXAMPLE.replacen(from, to, 1);
        let err = text.parse::<Message>().unwrap_err();
        assert!(check(&err), "{to}: {err:?}");
    }
}

#[test]
fn scheme_prefix_roundtrips() {
    let text = EXAMPLE.replacen("service.org wants", "https://service.org wants", 1);
    let m: Message = text.parse().unwrap();
    assert_eq!(m.scheme.as_deref(), Some("https"));
    assert_eq!(m.domain, "service.org");
    assert_eq!(m.to_string(), text);
}

#[test]
fn time_window_bounds() {
    let m = example();
    let nbf = datetime!(2021-09-30 16:25:24 UTC);
    let exp = datetime!(2021-10-30 16:25:24 UTC);
    assert!(m.check_time(nbf).is_ok());
    assert!(matches!(
        m.check_time(nbf - time::Duration::milliseconds(1)),
        Err(SiweError::NotYetValid(_))
    ));
    assert!(m.check_time(exp - time::Duration::milliseconds(1)).is_ok());
    assert!(matches!(m.check_time(exp), Err(SiweError::Expired(_))));
}

#[test]
fn sign_then_verify() {
    let (m, sig) = signed_by(3);
    let opts = VerificationOpts {
        domain: Some("service.org".into()),
        nonce: Some("32891757".into()),
        timestamp: Some(datetime!(2021-10-01 00:00 UTC)),
    };
    assert_eq!(m.verify(&sig, &opts), Ok(()));
    assert_eq!(m.verify_eip191(&sig), Ok(()));

    let mut tampered = m.clone();
    tampered.statement = Some("I accept nothing".into());
    assert!(matches!(
        tampered.verify_eip191(&sig),
        Err(SiweError::AddressMismatch { .. })
    ));

    let (other, _) = signed_by(4);
    let mut wrong_signer = other.clone();
    wrong_signer.address = other.address;
    assert!(matches!(
        wrong_signer.verify_eip191(&sig),
        Err(SiweError::AddressMismatch { .. })
    ));

    let wrong_domain = VerificationOpts {
        domain: Some("evil.org".into()),
        ..opts.clone()
    };
    assert!(matches!(
        m.verify(&sig, &wrong_domain),
        Err(SiweError::DomainMismatch { .. })
    ));
    let wrong_nonce = VerificationOpts {
        nonce: Some("00000000".into()),
        ..opts.clone()
    };
    assert!(matches!(
        m.verify(&sig, &wrong_nonce),
        Err(SiweError::NonceMismatch { .. })
    ));
    let late = VerificationOpts {
        timestamp: Some(datetime!(2030-01-01 00:00 UTC)),
        ..opts
    };
    assert!(matches!(m.verify(&sig, &late), Err(SiweError::Expired(_))));
    assert!(matches!(
        m.verify(&sig[..64], &VerificationOpts::default()),
        Err(SiweError::Signature(_))
    ));
}

#[test]
fn validate_catches_hand_built_messages() {
    let mut m = example();
    m.statement = Some("two\nlines".into());
    assert!(matches!(m.validate(), Err(SiweError::InvalidStatement(_))));
    let mut m = example();
    m.version = 2;
    assert!(matches!(
        m.validate(),
        Err(SiweError::UnsupportedVersion(_))
    ));
    let mut m = example();
    m.domain = "a/b".into();
    assert!(matches!(m.validate(), Err(SiweError::InvalidDomain(_))));
}

#[test]
fn missing_fields_are_named() {
    let mut fields = example().to_fields();
    fields.nonce = None;
    assert_eq!(
        Message::try_from(fields),
        Err(SiweError::MissingField("nonce"))
    );
}

mod properties {
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use time::{Duration, OffsetDateTime};

    use super::super::{abnf, Message, TimeStamp};
    use crate::eth::EthAddress;

    /// Largest Unix second that still renders with a 4-digit year.
    const MAX_UNIX: i64 = 253_402_300_799;

    fn timestamp() -> impl Strategy<Value = TimeStamp> {
        let generated = (0..=MAX_UNIX, 0i64..1000).prop_map(|(secs, millis)| {
            let instant =
                OffsetDateTime::from_unix_timestamp(secs).unwrap() + Duration::milliseconds(millis);
            TimeStamp::from_datetime(instant).unwrap()
        });
        let written = (
            0u16..=9999,
            1u8..=12,
            1u8..=28,
            0u8..24,
            0u8..60,
            0u8..60,
            "(\\.[0-9]{1,9})?",
            "Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]",
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, offset)| {
                let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}");
                TimeStamp::parse(&text).unwrap()
            });
        prop_oneof![generated, written]
    }

    fn uri() -> impl Strategy<Value = String> {
        prop_oneof![
            "https://[a-z]{1,10}\\.(com|org)(:[0-9]{1,4})?(/[a-zA-Z0-9._~%-]{0,8}){0,3}(\\?[a-z=&]{0,8})?(#[a-z]{0,5})?"
                .prop_filter("valid pct-encoding", |u| abnf::is_uri(u)),
            "urn:[a-z]{1,8}:[a-z0-9:]{1,12}",
            "did:key:z[1-9A-HJ-NP-Za-km-z]{10,40}",
            "ipfs://Qm[1-9A-HJ-NP-Za-km-z]{44}",
            "uri:",
        ]
    }

    fn domain() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{1,12}(\\.[a-z]{2,6}){0,2}(:[0-9]{1,5})?",
            "([a-z]{1,6}(:[a-z]{0,6})?@)?127\\.0\\.0\\.1(:[0-9]{1,5})?",
            "\\[::[0-9a-f]{1,4}\\](:[0-9]{1,5})?",
        ]
    }

    prop_compose! {
        fn message()(
            head in (
                option::of("https?|[a-z][a-z0-9+.-]{0,5}"),
                domain(),
                any::<[u8; 20]>(),
                option::of("[a-zA-Z0-9 :/?#\\[\\]@!$&'()*+,;=._~-]{0,40}"),
                uri(),
                any::<u64>(),
                "[a-zA-Z0-9]{8,24}",
            ),
            tail in (
                timestamp(),
                option::of(timestamp()),
                option::of(timestamp()),
                option::of("([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9a-fA-F]{2}){0,12}"),
                option::of(vec(uri(), 0..4)),
            ),
        ) -> Message {
            let (scheme, domain, address, statement, uri, chain_id, nonce) = head;
            let (issued_at, expiration_time, not_before, request_id, resources) = tail;
            Message {
                scheme,
                domain,
                address: EthAddress::from_bytes(address),
                statement,
                uri,
                version: 1,
                chain_id,
                nonce,
                issued_at,
                expiration_time,
                not_before,
                request_id,
                resources,
            }
        }
    }

    /// A valid message text with one character replaced, inserted or removed.
    fn mutated_text() -> impl Strategy<Value = String> {
        (
            message(),
            any::<prop::sample::Index>(),
            any::<char>(),
            0u8..3,
        )
            .prop_map(|(m, at, c, op)| {
                let mut chars: Vec<char> = m.to_string().chars().collect();
                let i = at.index(chars.len());
                match op {
                    0 => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ => {
                        chars.remove(i);
                    }
                }
                chars.into_iter().collect()
            })
    }

    /// A valid message text with the value of one free-form field (nonce, request id, chain
    /// id, URI or a resource) replaced by arbitrary or alphanumeric text: a good share still
    /// parses, so the round-trip assertion is reached (`field_replaced_text_often_parses`).
    fn field_replaced_text() -> impl Strategy<Value = String> {
        (
            message(),
            any::<prop::sample::Index>(),
            prop_oneof!["[a-zA-Z0-9]{8,16}", "[^\\n]{0,24}"],
        )
            .prop_map(|(m, at, v)| {
                const FIELDS: [&str; 5] = ["Nonce: ", "Request ID: ", "Chain ID: ", "URI: ", "- "];
                let text = m.to_string();
                let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
                let candidates: Vec<(usize, usize)> = lines
                    .iter()
                    .enumerate()
                    .filter_map(|(i, l)| {
                        FIELDS
                            .iter()
                            .find(|f| l.starts_with(*f))
                            .map(|f| (i, f.len()))
                    })
                    .collect();
                let (i, k) = candidates[at.index(candidates.len())];
                lines[i].replace_range(k.., &v);
                lines.join("\n")
            })
    }

    /// The strategy above is only useful if a good share of its texts parse.
    #[test]
    fn field_replaced_text_often_parses() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = field_replaced_text();
        let texts: Vec<String> = (0..400)
            .filter_map(|_| strategy.new_tree(&mut runner).ok())
            .map(|t| t.current())
            .collect();
        let parsed = texts
            .iter()
            .filter(|t| t.parse::<Message>().is_ok())
            .count();
        assert!(
            parsed * 10 >= texts.len(),
            "only {parsed} of {} texts parsed",
            texts.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn display_parse_roundtrip(m in message()) {
            prop_assert_eq!(m.validate(), Ok(()));
            let text = m.to_string();
            let parsed: Message = text.parse().unwrap();
            prop_assert_eq!(&parsed, &m);
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(Message::try_from(m.to_fields()).unwrap(), m);
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            // Random text almost never parses; this one only proves the parser does not panic.
            // The round trip of text that does parse is `field_replaced_text_roundtrips`.
            let _ = s.parse::<Message>();
        }

        #[test]
        fn field_replaced_text_roundtrips(s in field_replaced_text()) {
            if let Ok(m) = s.parse::<Message>() {
                prop_assert_eq!(m.to_string(), s.clone());
                prop_assert_eq!(s.parse::<Message>().unwrap(), m);
            }
        }

        #[test]
        fn mutated_text_never_panics_and_roundtrips(s in mutated_text()) {
            if let Ok(m) = s.parse::<Message>() {
                prop_assert_eq!(m.to_string(), s.clone());
                prop_assert_eq!(s.parse::<Message>().unwrap(), m);
            }
        }

        #[test]
        fn arbitrary_timestamps_never_panic(s in "[0-9T:.+Zz-]{0,40}") {
            if let Ok(t) = TimeStamp::parse(&s) {
                prop_assert_eq!(t.as_str(), s.as_str());
            }
        }
    }
}
