//! Serialises simulated events as contract JSON, by hand: the simulator
//! writes a million lines a second. Every value written is a plain
//! identifier or number, so nothing needs escaping.

use super::simulator::{SimBody, SimEvent};
use crate::event::time::write_rfc3339_ms;

fn key(buf: &mut Vec<u8>, k: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(k.as_bytes());
    buf.extend_from_slice(b"\":");
}

fn text(buf: &mut Vec<u8>, k: &str, v: &str) {
    key(buf, k);
    buf.push(b'"');
    buf.extend_from_slice(v.as_bytes());
    buf.push(b'"');
}

fn int(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// A cent amount as a JSON number with two decimals.
fn money(buf: &mut Vec<u8>, k: &str, cents: i64) {
    key(buf, k);
    if cents < 0 {
        buf.push(b'-');
    }
    let c = cents.unsigned_abs();
    buf.extend_from_slice(itoa::Buffer::new().format(c / 100).as_bytes());
    let frac = (c % 100) as u8;
    buf.extend_from_slice(&[b'.', b'0' + frac / 10, b'0' + frac % 10]);
}

/// Writes one event line. Logins and campaign contacts carry epoch
/// milliseconds, the rest RFC 3339, so both forms of the contract appear.
pub fn write_event(buf: &mut Vec<u8>, seed: u64, seq: u64, trader_id: &str, e: &SimEvent) {
    buf.extend_from_slice(b"{\"event_id\":\"ev");
    int(buf, seed as i64);
    buf.push(b'-');
    int(buf, seq as i64);
    buf.push(b'"');
    let kind = match e.body {
        SimBody::Signup { .. } => "signup",
        SimBody::Login { .. } => "login",
        SimBody::Deposit { .. } => "deposit",
        SimBody::Withdrawal { .. } => "withdrawal",
        SimBody::Trade { .. } => "trade",
        SimBody::Campaign { .. } => "campaign",
    };
    text(buf, "type", kind);
    text(buf, "trader_id", trader_id);
    key(buf, "ts");
    if matches!(e.body, SimBody::Login { .. } | SimBody::Campaign { .. }) {
        int(buf, e.ts);
    } else {
        buf.push(b'"');
        write_rfc3339_ms(buf, e.ts);
        buf.push(b'"');
    }
    match &e.body {
        SimBody::Signup {
            channel,
            country,
            campaign,
        } => {
            text(buf, "channel", channel);
            text(buf, "country", country);
            if let Some(c) = campaign {
                text(buf, "campaign_id", c);
            }
        }
        SimBody::Login {
            success,
            device,
            country,
            platform,
        } => {
            key(buf, "success");
            buf.extend_from_slice(if *success { b"true" } else { b"false" });
            key(buf, "device_id");
            buf.extend_from_slice(b"\"");
            buf.extend_from_slice(trader_id.as_bytes());
            buf.extend_from_slice(b"-d");
            int(buf, i64::from(*device));
            buf.push(b'"');
            text(buf, "country", country);
            text(buf, "platform", platform);
        }
        SimBody::Deposit {
            cents,
            currency,
            method,
            status,
        } => {
            money(buf, "amount", *cents);
            text(buf, "currency", currency);
            text(buf, "method", method);
            text(buf, "status", status);
        }
        SimBody::Withdrawal {
            cents,
            currency,
            status,
        } => {
            money(buf, "amount", *cents);
            text(buf, "currency", currency);
            text(buf, "status", status);
        }
        SimBody::Trade {
            instrument,
            side,
            stake_cents,
            currency,
            pnl_cents,
        } => {
            text(buf, "instrument", instrument);
            text(buf, "side", side);
            money(buf, "stake", *stake_cents);
            text(buf, "currency", currency);
            match pnl_cents {
                None => text(buf, "status", "opened"),
                Some(p) => {
                    text(buf, "status", "closed");
                    money(buf, "pnl", *p);
                }
            }
        }
        SimBody::Campaign {
            campaign,
            variant,
            action,
            channel,
        } => {
            text(buf, "campaign_id", campaign);
            text(buf, "variant", variant);
            text(buf, "action", action);
            text(buf, "channel", channel);
        }
    }
    buf.extend_from_slice(b"}\n");
}
