//! The fast path reads every line it accepts exactly as the serde path
//! does, and leaves everything else to it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scan;
use crate::event::decode::read_with_serde;
use crate::sim::{SimConfig, Simulator};

/// Both paths' reading of `line`, compared through `Debug` so that even the
/// sign of a zero counts.
fn fast_and_serde(line: &str) -> (Option<String>, Result<String, String>) {
    let fast = scan(line).map(|r| format!("{r:?}"));
    let slow = read_with_serde(line)
        .map(|r| format!("{r:?}"))
        .map_err(|e| format!("{e:?}"));
    (fast, slow)
}

fn simulated_lines() -> Vec<String> {
    let bytes = Simulator::to_ndjson(SimConfig {
        traders: 300,
        days: 10,
        ..SimConfig::default()
    });
    String::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_simulated_line_takes_the_fast_path_and_reads_as_serde_does() {
    let lines = simulated_lines();
    assert!(lines.len() > 1_000, "{} lines", lines.len());
    for line in &lines {
        let (fast, slow) = fast_and_serde(line);
        let fast = fast.unwrap_or_else(|| panic!("left to serde: {line}"));
        assert_eq!(Ok(fast), slow, "{line}");
    }
}

#[test]
fn handwritten_forms_are_read_as_serde_reads_them_or_left_to_it() {
    // (line, taken by the fast path)
    let cases: &[(&str, bool)] = &[
        (r#"{}"#, true),
        (
            " \t{ \"type\" : \"login\" ,\n\"ts\":1767225600000 } \r\n",
            true,
        ),
        (
            r#"{"type":null,"success":true,"ts":null,"amount":null}"#,
            true,
        ),
        (r#"{"type":"a","type":"b","amount":1,"amount":2.5}"#, true),
        (
            r#"{"extra":"x","n":-1.5e-3,"b":false,"z":null,"t":true}"#,
            true,
        ),
        (r#"{"amount":0.1,"stake":1E+2,"pnl":-0,"ts":-0}"#, true),
        (
            r#"{"amount":123.450,"stake":9007199254740992,"pnl":-2.5e22}"#,
            true,
        ),
        (r#"{"ts":1.7672256e12}"#, true),
        (r#"{"ts":1767225600000.5}"#, true),
        (r#"{"ts":-5,"ts":"2026-01-01T00:00:00Z"}"#, true),
        (r#"{"trader_id":"tr\u00e9s"}"#, false),
        (r#"{"trader_id":"a\"b"}"#, false),
        ("{\"trader_id\":\"a\tb\"}", false),
        (r#"{"tr\u0061der_id":"x"}"#, false),
        (r#"{"extra":{"nested":1}}"#, false),
        (r#"{"extra":[1,2]}"#, false),
        (r#"{"amount":"12"}"#, false),
        (r#"{"type":12}"#, false),
        (r#"{"success":"yes"}"#, false),
        (r#"{"amount":01}"#, false),
        (r#"{"amount":1.}"#, false),
        (r#"{"amount":.5}"#, false),
        (r#"{"amount":1e}"#, false),
        (r#"{"amount":+1}"#, false),
        (r#"{"amount":12345678901234567890}"#, false),
        (r#"{"amount":9007199254740993}"#, false),
        (r#"{"amount":1e23}"#, false),
        (r#"{"amount":1e-400}"#, false),
        (r#"{"a":1,}"#, false),
        (r#"{"a":1}x"#, false),
        (r#"{"a":1"#, false),
        (r#"{"a":tru}"#, false),
        (r#"{"a" 1}"#, false),
        (r#"[1]"#, false),
        ("", false),
    ];
    for &(line, fast_path) in cases {
        let (fast, slow) = fast_and_serde(line);
        assert_eq!(fast.is_some(), fast_path, "{line}");
        if let Some(fast) = fast {
            assert_eq!(Ok(fast), slow, "{line}");
        }
    }
}

#[test]
fn mutated_lines_are_read_as_serde_reads_them_or_left_to_it() {
    const ALPHABET: &[u8] = b"\"\\{}[],:.-+eE0123456789 \t\ntfnulx\x01";
    let lines = simulated_lines();
    let mut rng = StdRng::seed_from_u64(14);
    let (mut fast_taken, mut refused) = (0, 0);
    for round in 0..60_000 {
        let mut line = lines[round % lines.len()].clone().into_bytes();
        for _ in 0..rng.random_range(1..=3) {
            let at = rng.random_range(0..=line.len());
            let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
            match rng.random_range(0..4) {
                0 if at < line.len() => line[at] = c,
                1 if at < line.len() => {
                    line.remove(at);
                }
                2 => line.truncate(at),
                _ => line.insert(at, c),
            }
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let (fast, slow) = fast_and_serde(text);
        refused += usize::from(slow.is_err());
        if let Some(fast) = fast {
            fast_taken += 1;
            assert_eq!(Ok(fast), slow, "{text}");
        }
    }
    // Both sides of the fast path were exercised.
    assert!(fast_taken > 10_000, "{fast_taken} lines took the fast path");
    assert!(refused > 10_000, "{refused} lines were refused");
}

#[test]
fn the_word_scan_finds_the_first_byte_that_ends_or_escapes_a_string() {
    let mut rng = StdRng::seed_from_u64(8);
    let interesting = [
        b'"', b'\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xff,
    ];
    for _ in 0..200_000 {
        let bytes: [u8; 8] = std::array::from_fn(|_| {
            if rng.random_range(0..3) == 0 {
                interesting[rng.random_range(0..interesting.len())]
            } else {
                rng.random()
            }
        });
        let first = bytes
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let special = super::special_bytes(u64::from_le_bytes(bytes));
        let found = (special != 0).then(|| (special.trailing_zeros() / 8) as usize);
        assert_eq!(found, first, "{bytes:02x?}");
    }
}
