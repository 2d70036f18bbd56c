//! Typed events of the contract, compact enough to decode millions a second.

use super::intern::{Sym, TraderId};
use super::money::Money;

/// Defines a closed set of contract strings as an enum with `ALL`, `as_str`,
/// `parse`, `Display` and a dense `index`, so that every closed set (event
/// types, statuses, platforms, ...) is spelled once. The string tables are
/// strum's derives; the macro only names each variant's contract spelling.
macro_rules! closed_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            strum::EnumString, strum::IntoStaticStr, strum::VariantNames, strum::Display,
        )]
        pub enum $name { $(#[strum(serialize = $text)] $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Contract spellings, in declaration order (for error messages).
            pub const NAMES: &'static [&'static str] = <$name as strum::VariantNames>::VARIANTS;

            /// The contract spelling.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// Parses the contract spelling (exact, case-sensitive).
            pub fn parse(s: &str) -> Option<Self> {
                <Self as std::str::FromStr>::from_str(s).ok()
            }

            /// Dense index in `0..ALL.len()`, for counter arrays.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use closed_enum;

closed_enum!(
    /// The six event types of the contract.
    #[derive(serde::Serialize, serde::Deserialize)]
    EventType {
        Signup = "signup",
        Login = "login",
        Deposit = "deposit",
        Withdrawal = "withdrawal",
        Trade = "trade",
        Campaign = "campaign",
    }
);

closed_enum!(
    /// Login platform.
    #[derive(serde::Serialize, serde::Deserialize)]
    Platform { Web = "web", Ios = "ios", Android = "android" }
);

closed_enum!(
    /// Status of a deposit.
    #[derive(serde::Serialize, serde::Deserialize)]
    DepositStatus { Approved = "approved", Failed = "failed", Pending = "pending" }
);

closed_enum!(
    /// Status of a withdrawal.
    #[derive(serde::Serialize, serde::Deserialize)]
    WithdrawalStatus { Requested = "requested", Approved = "approved", Rejected = "rejected" }
);

closed_enum!(
    /// Side of a trade.
    #[derive(serde::Serialize, serde::Deserialize)]
    Side { Buy = "buy", Sell = "sell" }
);

closed_enum!(
    /// Status of a trade: opened, or closed with a realised P&L.
    #[derive(serde::Serialize, serde::Deserialize)]
    TradeStatus { Opened = "opened", Closed = "closed" }
);

closed_enum!(
    /// Step of a campaign contact, in funnel order.
    #[derive(serde::Serialize, serde::Deserialize)]
    CampaignAction {
        Sent = "sent",
        Delivered = "delivered",
        Opened = "opened",
        Clicked = "clicked",
        Converted = "converted",
    }
);

closed_enum!(
    /// Channel a campaign contact went through.
    #[derive(serde::Serialize, serde::Deserialize)]
    ContactChannel { Email = "email", Push = "push", Sms = "sms", Whatsapp = "whatsapp" }
);

/// One valid event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Event time, epoch milliseconds (UTC).
    pub ts: i64,
    /// Interned trader id.
    pub trader: TraderId,
    /// 64-bit fingerprint of `event_id`, for de-duplication.
    pub id_hash: u64,
    /// The type-specific fields.
    pub body: Body,
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.body.event_type()
    }
}

impl Event {
    /// Rewrites every symbol of the event (a checkpoint restored by an
    /// instance whose symbol ids differ).
    pub fn map_syms(&mut self, f: impl Fn(Sym) -> Sym) {
        match &mut self.body {
            Body::Signup(x) => {
                x.channel = f(x.channel);
                x.country = f(x.country);
                x.campaign = x.campaign.map(&f);
            }
            Body::Login(x) => x.country = f(x.country),
            Body::Deposit(x) => {
                x.currency = f(x.currency);
                x.method = f(x.method);
            }
            Body::Withdrawal(x) => x.currency = f(x.currency),
            Body::Trade(x) => {
                x.instrument = f(x.instrument);
                x.currency = f(x.currency);
            }
            Body::Campaign(x) => {
                x.campaign = f(x.campaign);
                x.variant = f(x.variant);
            }
        }
    }
}

impl Body {
    /// The type these fields belong to.
    pub fn event_type(&self) -> EventType {
        match self {
            Body::Signup(_) => EventType::Signup,
            Body::Login(_) => EventType::Login,
            Body::Deposit(_) => EventType::Deposit,
            Body::Withdrawal(_) => EventType::Withdrawal,
            Body::Trade(_) => EventType::Trade,
            Body::Campaign(_) => EventType::Campaign,
        }
    }
}

/// Type-specific fields of an event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Body {
    Signup(Signup),
    Login(Login),
    Deposit(Deposit),
    Withdrawal(Withdrawal),
    Trade(Trade),
    Campaign(CampaignTouch),
}

/// A trader registered.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signup {
    pub channel: Sym,
    pub country: Sym,
    pub campaign: Option<Sym>,
}

/// A login attempt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Login {
    pub success: bool,
    /// Fingerprint of `device_id` (device ids are not a small set).
    pub device: u64,
    pub country: Sym,
    pub platform: Platform,
}

/// A deposit attempt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deposit {
    pub amount: Money,
    pub currency: Sym,
    pub method: Sym,
    pub status: DepositStatus,
}

/// A withdrawal request or its outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Withdrawal {
    pub amount: Money,
    pub currency: Sym,
    pub status: WithdrawalStatus,
}

/// A trade opened or closed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trade {
    pub instrument: Sym,
    pub side: Side,
    pub stake: Money,
    pub currency: Sym,
    pub status: TradeStatus,
    /// Realised P&L; present on closed trades.
    pub pnl: Option<Money>,
    /// Bit of the instrument in a trader's 64-bit instrument map: from a
    /// stable hash of its name, so the map does not depend on the order in
    /// which symbols were first seen.
    pub instrument_bit: u8,
}

/// A step of a campaign contact.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CampaignTouch {
    pub campaign: Sym,
    pub variant: Sym,
    pub action: CampaignAction,
    pub channel: ContactChannel,
}
