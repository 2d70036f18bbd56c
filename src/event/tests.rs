//! Hostile input never panics and always yields a reason; valid input of both
//! timestamp forms decodes to the expected typed event.

use super::*;

const NOW: i64 = 1_795_428_000_000; // 2026-11-23T10:00:00Z

fn decode(bytes: &[u8]) -> Result<Event, Invalid> {
    Decoder::default().decode(bytes, NOW)
}

fn reason(bytes: &[u8]) -> Reason {
    decode(bytes).expect_err("must be invalid").reason
}

#[test]
fn decodes_every_type_and_both_timestamp_forms() {
    let mut d = Decoder::default();
    let lines: &[&[u8]] = &[
        br#"{"event_id":"1","type":"signup","trader_id":"a","ts":"2026-11-23T10:00:00.123Z","channel":"organic","country":"BR","campaign_id":"c1"}"#,
        br#"{"event_id":"2","type":"login","trader_id":"a","ts":1795428000123,"success":true,"device_id":"d1","country":"BR","platform":"ios"}"#,
        br#"{"event_id":"3","type":"deposit","trader_id":"a","ts":"2026-11-23T07:00:00-03:00","amount":100.5,"currency":"BRL","method":"pix","status":"approved"}"#,
        br#"{"event_id":"4","type":"withdrawal","trader_id":"a","ts":1795428000000,"amount":50,"currency":"BRL","status":"requested","extra":{"nested":[1,2]}}"#,
        br#"{"event_id":"5","type":"trade","trader_id":"b","ts":1795428000000,"instrument":"EURUSD","side":"buy","stake":10,"currency":"USD","status":"closed","pnl":-2.5}"#,
        br#"{"event_id":"6","type":"campaign","trader_id":"b","ts":1795428000000,"campaign_id":"winback","variant":"bonus","action":"clicked","channel":"email"}"#,
    ];
    let events: Vec<Event> = lines.iter().map(|l| d.decode(l, NOW).unwrap()).collect();
    assert_eq!(events[0].ts, 1_795_428_000_123);
    assert_eq!(events[1].ts, 1_795_428_000_123);
    assert_eq!(events[2].ts, 1_795_428_000_000, "offsets are honoured");
    assert_eq!(events[0].trader, events[3].trader);
    assert_ne!(events[0].trader, events[4].trader);
    let types: Vec<&str> = events.iter().map(|e| e.event_type().as_str()).collect();
    assert_eq!(
        types,
        [
            "signup",
            "login",
            "deposit",
            "withdrawal",
            "trade",
            "campaign"
        ]
    );
    match &events[4].body {
        Body::Trade(t) => {
            assert_eq!(t.pnl, Some(crate::event::Money::from_f64(-2.5)));
            assert_eq!(d.symbols.name(t.instrument), "EURUSD");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_rule_has_a_precise_reason() {
    let base = r#""event_id":"1","trader_id":"a","ts":1795428000000"#;
    let cases: &[(String, Reason, Option<&str>)] = &[
        (format!(r#"{{{base},"type":"deposit","amount":0,"currency":"BRL","method":"pix","status":"approved"}}"#), Reason::BadValue, Some("amount")),
        (format!(r#"{{{base},"type":"deposit","amount":"NaN","currency":"BRL","method":"pix","status":"approved"}}"#), Reason::WrongType, Some("amount")),
        (format!(r#"{{{base},"type":"deposit","amount":1e400,"currency":"BRL","method":"pix","status":"approved"}}"#), Reason::WrongType, Some("amount")),
        (format!(r#"{{{base},"type":"deposit","amount":1e300,"currency":"BRL","method":"pix","status":"approved"}}"#), Reason::BadValue, Some("amount")),
        (format!(r#"{{{base},"type":"deposit","amount":5,"currency":"BRL","method":"pix","status":"done"}}"#), Reason::BadValue, Some("status")),
        (format!(r#"{{{base},"type":"deposit","amount":5,"method":"pix","status":"approved"}}"#), Reason::MissingField, Some("currency")),
        (format!(r#"{{{base},"type":"login","success":1,"device_id":"d","country":"BR","platform":"web"}}"#), Reason::WrongType, Some("success")),
        (format!(r#"{{{base},"type":"login","success":true,"device_id":"d","country":"BR","platform":"windows"}}"#), Reason::BadValue, Some("platform")),
        (format!(r#"{{{base},"type":"trade","instrument":"X","side":"hold","stake":1,"currency":"USD","status":"opened"}}"#), Reason::BadValue, Some("side")),
        (format!(r#"{{{base},"type":"signup","channel":"","country":"BR"}}"#), Reason::BadValue, Some("channel")),
        (format!(r#"{{{base},"type":"signup","channel":null,"country":"BR"}}"#), Reason::MissingField, Some("channel")),
        (r#"{"event_id":"1","trader_id":"a","ts":1795428000000.5,"type":"signup","channel":"x","country":"BR"}"#.into(), Reason::BadTimestamp, Some("ts")),
        (r#"{"event_id":"1","trader_id":"a","ts":1795428000,"type":"signup","channel":"x","country":"BR"}"#.into(), Reason::BadTimestamp, Some("ts")),
        (r#"{"event_id":"1","trader_id":"a","ts":"2026-13-01T00:00:00Z","type":"signup","channel":"x","country":"BR"}"#.into(), Reason::BadTimestamp, Some("ts")),
        (r#"{"event_id":"1","trader_id":"a","ts":"2027-01-01T00:00:00Z","type":"signup","channel":"x","country":"BR"}"#.into(), Reason::FutureTimestamp, Some("ts")),
        (r#"{"event_id":"1","trader_id":"a","ts":true,"type":"signup","channel":"x","country":"BR"}"#.into(), Reason::WrongType, Some("ts")),
        (r#"{"event_id":1,"trader_id":"a","ts":1795428000000,"type":"signup","channel":"x","country":"BR"}"#.into(), Reason::WrongType, Some("event_id")),
        (r#"{"trader_id":"a","ts":1795428000000,"type":"signup","channel":"x","country":"BR"}"#.into(), Reason::MissingField, Some("event_id")),
        (r#"{"event_id":"1","trader_id":"a","ts":1795428000000,"type":"SIGNUP"}"#.into(), Reason::UnknownType, Some("type")),
        (r#"{"event_id":"1","trader_id":"a","ts":1795428000000}"#.into(), Reason::MissingField, Some("type")),
    ];
    for (line, want, field) in cases {
        let got = decode(line.as_bytes()).expect_err(line);
        assert_eq!((got.reason, got.field), (*want, *field), "{line}: {got}");
        assert!(!got.message.is_empty());
    }
}

#[test]
fn hostile_bytes_never_panic_and_always_have_a_reason() {
    let deep = "[".repeat(10_000);
    let deep_obj = format!(
        r#"{{"event_id":"1","x":{}}}"#,
        "[".repeat(5_000) + &"]".repeat(5_000)
    );
    let deep_amount = format!(
        r#"{{"event_id":"1","amount":{}}}"#,
        "[".repeat(5_000) + &"]".repeat(5_000)
    );
    let long = format!(r#"{{"event_id":"{}"}}"#, "a".repeat(200_000));
    let huge_id = format!(
        r#"{{"event_id":"{}","type":"signup","trader_id":"a","ts":1795428000000,"channel":"x","country":"BR"}}"#,
        "a".repeat(1000)
    );
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        (b"".to_vec(), Reason::Truncated),
        (b"   ".to_vec(), Reason::Truncated),
        (b"{".to_vec(), Reason::Truncated),
        (
            b"{\"event_id\":\"1\",\"type\":\"sig".to_vec(),
            Reason::Truncated,
        ),
        (b"null".to_vec(), Reason::NotObject),
        (b"42".to_vec(), Reason::NotObject),
        (b"\"str\"".to_vec(), Reason::NotObject),
        (b"{}{}".to_vec(), Reason::NotJson),
        (b"{} trailing".to_vec(), Reason::NotJson),
        (b"{'single':'quotes'}".to_vec(), Reason::NotJson),
        (b"{\"ts\":NaN}".to_vec(), Reason::NotJson),
        (b"\xff\xfe\x00garbage".to_vec(), Reason::NotUtf8),
        (b"{\"event_id\":\"\xc3\x28\"}".to_vec(), Reason::NotUtf8),
        (deep.into_bytes(), Reason::NotObject),
        // Unknown fields are skipped without recursion, however deep.
        (deep_obj.into_bytes(), Reason::MissingField),
        (deep_amount.into_bytes(), Reason::WrongType),
        (long.into_bytes(), Reason::TooLong),
        (huge_id.into_bytes(), Reason::BadValue),
        (
            b"{\"amount\":123456789012345678901234567890}".to_vec(),
            Reason::MissingField,
        ),
    ];
    for (bytes, want) in cases {
        let got = reason(&bytes);
        assert_eq!(
            got,
            want,
            "{:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
        );
    }
}

#[test]
fn random_bytes_and_mutations_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let valid = br#"{"event_id":"3","type":"deposit","trader_id":"a","ts":"2026-11-23T07:00:00-03:00","amount":100.5,"currency":"BRL","method":"pix","status":"approved"}"#;
    let mut d = Decoder::default();
    let (mut ok, mut bad) = (0, 0);
    for i in 0..50_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..rng.random_range(0..300))
                .map(|_| rng.random())
                .collect()
        } else {
            let mut v = valid.to_vec();
            for _ in 0..rng.random_range(1..4) {
                if v.is_empty() {
                    break;
                }
                let at = rng.random_range(0..v.len());
                match rng.random_range(0..3) {
                    0 => v[at] = rng.random(),
                    1 => {
                        v.remove(at);
                    }
                    _ => v.truncate(at),
                }
            }
            v
        };
        match d.decode(&bytes, NOW) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(!e.message.is_empty());
                bad += 1;
            }
        }
    }
    assert!(
        ok > 0 && bad > 40_000,
        "mutations mostly break the event: {ok} ok, {bad} invalid"
    );
}

/// Properties over generated input (proptest; the case count is
/// proptest's default, 256, unless `PROPTEST_CASES` says otherwise).
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::event::Money;
    use crate::event::time::format_rfc3339_ms;

    /// 2020-01-01T00:00:00Z up to a day before `NOW`.
    const FROM: i64 = 1_577_836_800_000;

    /// Micro-units written as the shortest decimal with at most 6 places.
    fn decimal(micros: i64) -> String {
        let (units, frac) = (micros / 1_000_000, micros % 1_000_000);
        if frac == 0 {
            units.to_string()
        } else {
            format!("{units}.{frac:06}")
                .trim_end_matches('0')
                .to_owned()
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_are_refused_with_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Err(e) = Decoder::default().decode(&bytes, NOW) {
                prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn any_json_object_decodes_or_is_refused_with_a_reason(
            fields in proptest::collection::btree_map(
                prop_oneof![
                    Just("event_id".to_owned()), Just("type".to_owned()), Just("trader_id".to_owned()),
                    Just("ts".to_owned()), Just("amount".to_owned()), Just("status".to_owned()),
                    Just("method".to_owned()), Just("currency".to_owned()), "[a-z_]{1,12}",
                ],
                prop_oneof![
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<f64>().prop_map(serde_json::Value::from),
                    "[ -~]{0,30}".prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                    any::<bool>().prop_map(serde_json::Value::from),
                    prop_oneof![Just("deposit"), Just("trade"), Just("login"), Just("signup")].prop_map(serde_json::Value::from),
                ],
                0..10,
            ),
        ) {
            let bytes = serde_json::to_vec(&fields).expect("a map of JSON values");
            if let Err(e) = Decoder::default().decode(&bytes, NOW) {
                prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn valid_deposits_round_trip(
            event_id in "[A-Za-z0-9-]{1,40}",
            trader in "[a-z0-9-]{1,24}",
            ts in FROM..NOW - 86_400_000,
            ts_as_text in any::<bool>(),
            micros in 1_i64..100_000_000_000,
            method in prop_oneof![Just("pix"), Just("card"), Just("wire"), Just("boleto")],
            status in prop_oneof![Just("approved"), Just("failed"), Just("pending")],
            currency in prop_oneof![Just("BRL"), Just("USD"), Just("EUR")],
        ) {
            let ts_field = if ts_as_text {
                format!("\"{}\"", format_rfc3339_ms(ts))
            } else {
                ts.to_string()
            };
            let line = format!(
                r#"{{"event_id":"{event_id}","type":"deposit","trader_id":"{trader}","ts":{ts_field},"amount":{},"currency":"{currency}","method":"{method}","status":"{status}"}}"#,
                decimal(micros)
            );
            let mut d = Decoder::default();
            let e = d.decode(line.as_bytes(), NOW);
            prop_assert!(e.is_ok(), "{line}: {e:?}");
            let Ok(e) = e else { unreachable!() };
            prop_assert_eq!(e.ts, ts);
            prop_assert_eq!(d.traders.name(e.trader), trader.as_str());
            prop_assert_eq!(e.id_hash, d.fingerprint(&event_id));
            let Body::Deposit(dep) = e.body else {
                return Err(TestCaseError::fail(format!("not a deposit: {line}")));
            };
            prop_assert_eq!(dep.amount, Money(micros), "{}", line);
            prop_assert_eq!(dep.status.as_str(), status);
            prop_assert_eq!(d.symbols.name(dep.method), method);
            prop_assert_eq!(d.symbols.name(dep.currency), currency);
        }
    }
}

/// The closed sets (strum underneath) keep their contract spellings: every
/// value round-trips through its string, `NAMES` lists them in order,
/// `Display` writes them, and a near miss is refused.
#[test]
fn closed_sets_spell_and_parse_their_contract_strings() {
    fn check<T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display>(
        all: &[T],
        names: &[&str],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) {
        assert_eq!(all.len(), names.len());
        for (v, name) in all.iter().zip(names) {
            assert_eq!(as_str(*v), *name);
            assert_eq!(v.to_string(), *name);
            assert_eq!(parse(name), Some(*v));
            assert_eq!(parse(&name.to_uppercase()), None, "case-sensitive");
        }
    }
    check(
        EventType::ALL,
        EventType::NAMES,
        EventType::as_str,
        EventType::parse,
    );
    assert_eq!(
        EventType::NAMES,
        [
            "signup",
            "login",
            "deposit",
            "withdrawal",
            "trade",
            "campaign"
        ]
    );
    check(
        Platform::ALL,
        Platform::NAMES,
        Platform::as_str,
        Platform::parse,
    );
    check(
        TradeStatus::ALL,
        TradeStatus::NAMES,
        TradeStatus::as_str,
        TradeStatus::parse,
    );
    check(Reason::ALL, Reason::NAMES, Reason::as_str, Reason::parse);
    assert_eq!(Reason::StateFull.as_str(), "state_full");
    assert_eq!(EventType::parse("deposits"), None);
}
