//! The fixed vocabulary of the simulated brokerage, with weights.

/// Acquisition channels: (name, weight, P(ever deposits), acquisition campaign).
pub const CHANNELS: &[(&str, f64, f64, Option<&str>)] = &[
    ("organic", 0.30, 0.55, None),
    ("paid_search", 0.25, 0.45, Some("acq_search")),
    ("social", 0.20, 0.30, Some("acq_social")),
    ("affiliate", 0.15, 0.40, Some("acq_affiliate")),
    ("referral", 0.10, 0.65, None),
];

/// Countries: (code, weight, currency).
pub const COUNTRIES: &[(&str, f64, &str)] = &[
    ("BR", 0.80, "BRL"),
    ("PT", 0.06, "EUR"),
    ("MX", 0.06, "USD"),
    ("AR", 0.04, "USD"),
    ("CO", 0.04, "USD"),
];

/// Countries a suspicious login may come from.
pub const FOREIGN_COUNTRIES: &[&str] = &["NG", "RU", "VN", "US", "ES"];

/// Payment methods: (name, weight for non-VIPs, weight for VIPs, P(failed), P(pending)).
pub const METHODS: &[(&str, f64, f64, f64, f64)] = &[
    ("pix", 0.55, 0.35, 0.04, 0.01),
    ("card", 0.25, 0.15, 0.15, 0.01),
    ("boleto", 0.12, 0.05, 0.04, 0.30),
    ("wire", 0.08, 0.45, 0.03, 0.10),
];

pub const INSTRUMENTS: &[&str] = &[
    "EURUSD", "USDBRL", "GBPUSD", "BTCUSD", "ETHUSD", "PETR4", "VALE3", "ITUB4", "AAPL", "TSLA",
    "NVDA", "XAUUSD", "US500", "IBOV",
];

pub const PLATFORMS: &[(&str, f64)] = &[("web", 0.4), ("ios", 0.3), ("android", 0.3)];

/// An A/B campaign: (campaign id, contact channel, variants with their true
/// P(converted | sent); the first variant is the control).
pub type Campaign = (&'static str, &'static str, &'static [(&'static str, f64)]);

pub const WINBACK: Campaign = ("winback", "email", &[("control", 0.03), ("bonus", 0.07)]);
pub const FTD_NUDGE: Campaign = (
    "ftd_nudge",
    "whatsapp",
    &[("control", 0.04), ("cashback", 0.08)],
);
pub const NEWSLETTER: Campaign = (
    "newsletter",
    "push",
    &[("control", 0.010), ("b", 0.012), ("c", 0.018)],
);

/// Every A/B campaign.
pub const CAMPAIGNS: &[Campaign] = &[WINBACK, FTD_NUDGE, NEWSLETTER];

/// Funnel of a campaign contact: P(step | previous step) for delivered, opened, clicked.
pub const CONTACT_FUNNEL: [f64; 3] = [0.95, 0.45, 0.35];

/// The reporting threshold that structuring deposits stay just under.
pub const REPORTING_THRESHOLD: f64 = 10_000.0;

/// Picks an index by weight from a uniform draw `u` in [0, 1).
pub fn pick<T>(items: &[T], weight: impl Fn(&T) -> f64, u: f64) -> usize {
    let total: f64 = items.iter().map(&weight).sum();
    let mut acc = 0.0;
    for (i, it) in items.iter().enumerate() {
        acc += weight(it) / total;
        if u < acc {
            return i;
        }
    }
    items.len() - 1
}
