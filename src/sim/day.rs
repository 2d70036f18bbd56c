//! One simulated day: what each trader does, driven by hidden state.

use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::catalog::*;
use super::simulator::{SimBody, SimEvent, Simulator};
use super::trader::{AmlPattern, Trader, TrueSegment, daytime_offset};
use crate::event::time::{DAY_MS, HOUR_MS, MINUTE_MS};

/// Generates one day of events for every trader.
pub struct DayContext<'a> {
    sim: &'a mut Simulator,
    day: u32,
    day_start: i64,
}

fn cents(x: f64) -> i64 {
    (x * 100.0).round().max(1.0) as i64
}

impl<'a> DayContext<'a> {
    pub fn new(sim: &'a mut Simulator, day: u32) -> Self {
        let day_start = sim.config.start_ms + i64::from(day) * DAY_MS;
        Self {
            sim,
            day,
            day_start,
        }
    }

    pub fn run(mut self, out: &mut Vec<SimEvent>) {
        for i in 0..self.sim.traders.len() {
            let mut t = self.sim.traders[i].clone();
            if t.signup_day <= self.day {
                self.trader_day(i as u32, &mut t, out);
            }
            self.sim.traders[i] = t;
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.sim.rng.random::<f64>() < p
    }

    fn unit(&mut self) -> f64 {
        self.sim.rng.random::<f64>()
    }

    fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.sim.rng)
    }

    fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        Poisson::new(mean)
            .map(|p| p.sample(&mut self.sim.rng) as u32)
            .unwrap_or(0)
    }

    fn trader_day(&mut self, id: u32, t: &mut Trader, out: &mut Vec<SimEvent>) {
        let signup_today = t.signup_day == self.day;
        let mut clock = if signup_today {
            t.signup_ts
        } else {
            self.day_start + daytime_offset(&mut self.sim.rng)
        };
        if signup_today {
            let (channel, _, _, campaign) = CHANNELS[t.channel];
            out.push(ev(
                t.signup_ts,
                id,
                SimBody::Signup {
                    channel,
                    country: COUNTRIES[t.country].0,
                    campaign,
                },
            ));
            clock += self.sim.rng.random_range(MINUTE_MS..20 * MINUTE_MS);
            self.login(id, t, &mut clock, out);
        }
        t.recent_failures *= 0.9;
        self.campaigns(id, t, clock, out);
        if t.churned {
            if self.chance(0.01) {
                self.login(id, t, &mut clock, out);
            }
            return;
        }
        if t.deposits == 0 {
            self.before_first_deposit(id, t, &mut clock, out);
            return;
        }
        let active = self.chance(t.segment.activity() * t.engagement);
        if active {
            t.last_activity_day = self.day;
            self.login(id, t, &mut clock, out);
            self.aml(id, t, &mut clock, out);
            let redeposit = if t.balance < 20.0 { 0.5 } else { 0.07 };
            if self.chance(redeposit) {
                self.deposit_flow(id, t, &mut clock, out);
            }
            self.trades(id, t, &mut clock, out);
            if t.balance > 50.0 && self.chance(0.015) {
                let frac = 0.2 + 0.6 * self.unit();
                self.withdrawal(id, t, t.balance * frac, &mut clock, out);
            }
        }
        self.drift_and_churn(id, t, clock, out);
    }

    fn before_first_deposit(
        &mut self,
        id: u32,
        t: &mut Trader,
        clock: &mut i64,
        out: &mut Vec<SimEvent>,
    ) {
        if t.will_deposit && self.day >= t.ftd_day {
            if self.day != t.signup_day {
                self.login(id, t, clock, out);
            }
            self.deposit_flow(id, t, clock, out);
            if t.deposits > 0 {
                t.last_activity_day = self.day;
                self.trades(id, t, clock, out);
            }
        } else if t.abandons && self.day == t.ftd_day {
            // Tries once, fails, never retries: an abandoned deposit.
            t.abandons = false;
            let (median, spread) = t.segment.ticket();
            let amount = median * (spread * self.normal()).exp();
            let (method, ..) = METHODS[0];
            out.push(ev(*clock, id, deposit(amount, t, method, "failed")));
        } else if self.day < t.signup_day + 14 && self.chance(0.08) {
            self.login(id, t, clock, out);
        }
    }

    fn login(&mut self, id: u32, t: &mut Trader, clock: &mut i64, out: &mut Vec<SimEvent>) {
        let platform = PLATFORMS[t.platform].0;
        let home = COUNTRIES[t.country].0;
        if self.chance(0.004) {
            // A burst of failed logins: someone guessing the password.
            let n = self.sim.rng.random_range(5..10);
            for _ in 0..n {
                *clock += self.sim.rng.random_range(2_000..40_000);
                let country =
                    FOREIGN_COUNTRIES[self.sim.rng.random_range(0..FOREIGN_COUNTRIES.len())];
                out.push(ev(
                    *clock,
                    id,
                    SimBody::Login {
                        success: false,
                        device: 900 + n,
                        country,
                        platform: "web",
                    },
                ));
            }
        }
        let mut device = self.sim.rng.random_range(0..t.devices);
        let mut country = home;
        if self.chance(0.01) {
            t.devices += 1;
            device = t.devices - 1;
        }
        if self.chance(0.003) {
            country = FOREIGN_COUNTRIES[self.sim.rng.random_range(0..FOREIGN_COUNTRIES.len())];
        }
        if self.chance(0.03) {
            out.push(ev(
                *clock,
                id,
                SimBody::Login {
                    success: false,
                    device,
                    country,
                    platform,
                },
            ));
            *clock += self.sim.rng.random_range(10_000..60_000);
        }
        out.push(ev(
            *clock,
            id,
            SimBody::Login {
                success: true,
                device,
                country,
                platform,
            },
        ));
        *clock += self.sim.rng.random_range(30_000..5 * MINUTE_MS);
    }

    /// A deposit attempt with retries after failures and pending settlements.
    fn deposit_flow(&mut self, id: u32, t: &mut Trader, clock: &mut i64, out: &mut Vec<SimEvent>) {
        let (median, spread) = t.segment.ticket();
        let tail = if self.chance(0.03) {
            3.0 + 10.0 * self.unit()
        } else {
            1.0
        };
        let amount = (median * (spread * self.normal()).exp() * tail).max(10.0);
        let vip = t.segment == TrueSegment::Vip;
        let mut m = pick(METHODS, |m| if vip { m.2 } else { m.1 }, self.unit());
        for attempt in 0..3 {
            let (method, _, _, p_fail, p_pending) = METHODS[m];
            // Traders with many recent failures fail more (card limits, KYC issues).
            let p_fail = p_fail * (1.0 + t.recent_failures);
            let u = self.unit();
            if u < p_fail {
                out.push(ev(*clock, id, deposit(amount, t, method, "failed")));
                t.recent_failures += 1.0;
                if attempt == 2 || !self.chance(0.55) {
                    return; // abandoned
                }
                *clock += self.sim.rng.random_range(MINUTE_MS..30 * MINUTE_MS);
                m = pick(METHODS, |m| m.1, self.unit());
                continue;
            }
            if u < p_fail + p_pending {
                out.push(ev(*clock, id, deposit(amount, t, method, "pending")));
                let settle = *clock + self.sim.rng.random_range(HOUR_MS..30 * HOUR_MS);
                let status = if self.chance(0.85) {
                    "approved"
                } else {
                    "failed"
                };
                out.push(ev(settle, id, deposit(amount, t, method, status)));
                if status == "approved" {
                    self.approved(t, amount);
                }
                return;
            }
            out.push(ev(*clock, id, deposit(amount, t, method, "approved")));
            self.approved(t, amount);
            *clock += self.sim.rng.random_range(MINUTE_MS..10 * MINUTE_MS);
            return;
        }
    }

    fn approved(&mut self, t: &mut Trader, amount: f64) {
        t.deposits += 1;
        t.balance += amount;
        t.recent_failures = (t.recent_failures - 1.0).max(0.0);
    }

    fn trades(&mut self, id: u32, t: &mut Trader, clock: &mut i64, out: &mut Vec<SimEvent>) {
        let n = self.poisson(t.segment.trades_per_day() * (0.5 + t.engagement));
        let currency = COUNTRIES[t.country].2;
        let breadth = breadth(id);
        for _ in 0..n {
            if t.balance < 5.0 {
                return;
            }
            let stake = (t.balance * (0.02 + 0.13 * self.unit())).max(5.0);
            let instrument = INSTRUMENTS
                [(id as usize * 7 + self.sim.rng.random_range(0..breadth)) % INSTRUMENTS.len()];
            let side = if self.chance(0.55) { "buy" } else { "sell" };
            let sc = cents(stake);
            out.push(ev(
                *clock,
                id,
                SimBody::Trade {
                    instrument,
                    side,
                    stake_cents: sc,
                    currency,
                    pnl_cents: None,
                },
            ));
            // P&L: slightly negative drift, heavy variance, capped at the stake.
            let ret = (-0.04 + 0.35 * self.normal()).clamp(-1.0, 3.0);
            let pnl = stake * ret;
            t.balance += pnl;
            if pnl < 0.0 {
                t.loss_streak += 1;
                t.engagement *= if ret < -0.5 { 0.93 } else { 0.985 };
            } else {
                t.loss_streak = 0;
                t.engagement = (t.engagement * 1.01).min(1.0);
            }
            let close = *clock + self.sim.rng.random_range(MINUTE_MS..8 * HOUR_MS);
            let pnl_cents = Some((pnl * 100.0).round() as i64);
            out.push(ev(
                close,
                id,
                SimBody::Trade {
                    instrument,
                    side,
                    stake_cents: sc,
                    currency,
                    pnl_cents,
                },
            ));
            *clock += self.sim.rng.random_range(2 * MINUTE_MS..40 * MINUTE_MS);
        }
    }

    fn withdrawal(
        &mut self,
        id: u32,
        t: &mut Trader,
        amount: f64,
        clock: &mut i64,
        out: &mut Vec<SimEvent>,
    ) {
        let currency = COUNTRIES[t.country].2;
        let cents = cents(amount);
        out.push(ev(
            *clock,
            id,
            SimBody::Withdrawal {
                cents,
                currency,
                status: "requested",
            },
        ));
        let done = *clock + self.sim.rng.random_range(HOUR_MS..48 * HOUR_MS);
        let status = if self.chance(0.92) {
            "approved"
        } else {
            "rejected"
        };
        if status == "approved" {
            t.balance -= amount;
        }
        out.push(ev(
            done,
            id,
            SimBody::Withdrawal {
                cents,
                currency,
                status,
            },
        ));
        *clock += MINUTE_MS;
    }

    fn aml(&mut self, id: u32, t: &mut Trader, clock: &mut i64, out: &mut Vec<SimEvent>) {
        if t.aml_done || t.aml == AmlPattern::None || !self.chance(0.2) {
            return;
        }
        t.aml_done = true;
        match t.aml {
            AmlPattern::Flip => {
                let amount = 2_000.0 + 18_000.0 * self.unit();
                out.push(ev(*clock, id, deposit(amount, t, "wire", "approved")));
                *clock += self.sim.rng.random_range(2 * HOUR_MS..20 * HOUR_MS);
                let share = 0.9 + 0.1 * self.unit();
                self.withdrawal(id, t, amount * share, clock, out);
                t.balance += amount * (1.0 - share);
                t.deposits += 1;
            }
            AmlPattern::Structuring => {
                let n = self.sim.rng.random_range(3..6);
                for _ in 0..n {
                    let amount = REPORTING_THRESHOLD * (0.90 + 0.099 * self.unit());
                    out.push(ev(*clock, id, deposit(amount, t, "pix", "approved")));
                    self.approved(t, amount);
                    *clock += self.sim.rng.random_range(20 * MINUTE_MS..2 * HOUR_MS);
                }
            }
            AmlPattern::None => {}
        }
    }

    fn drift_and_churn(&mut self, id: u32, t: &mut Trader, clock: i64, out: &mut Vec<SimEvent>) {
        t.engagement *= t.decay;
        let hazard = t.segment.hazard()
            * (1.0
                + f64::from(t.loss_streak.min(10)) / 2.5
                + 2.0 * t.recent_failures
                + 6.0 * (1.0 - t.engagement))
            * if t.balance < 5.0 { 3.0 } else { 1.0 };
        if t.engagement < 0.12 || self.chance(hazard) {
            t.churned = true;
            t.churned_at.get_or_insert(clock);
            if t.balance > 20.0 && self.chance(0.35) {
                let mut c = clock + HOUR_MS;
                self.withdrawal(id, t, t.balance * 0.95, &mut c, out);
            }
        }
    }

    /// A/B campaign contacts; a conversion brings a churned trader back or
    /// triggers a first deposit.
    fn campaigns(&mut self, id: u32, t: &mut Trader, clock: i64, out: &mut Vec<SimEvent>) {
        let since_signup = self.day - t.signup_day;
        let idle = self.day - t.last_activity_day.min(self.day);
        let campaign = if t.deposits == 0 && (since_signup == 1 || since_signup == 3) {
            Some(FTD_NUDGE)
        } else if t.deposits > 0 && idle >= 14 && self.day % 15 == 7 {
            Some(WINBACK)
        } else if t.deposits > 0
            && !t.churned
            && self.day % 30 == 20
            && t.segment != TrueSegment::LowVolume
        {
            Some(NEWSLETTER)
        } else {
            None
        };
        let Some((campaign, channel, variants)) = campaign else {
            return;
        };
        let v = (id as usize)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(self.day as usize / 15)
            % variants.len();
        let (variant, p_convert) = variants[v];
        let mut at = clock;
        let touch = |at: i64, action: &'static str| {
            ev(
                at,
                id,
                SimBody::Campaign {
                    campaign,
                    variant,
                    action,
                    channel,
                },
            )
        };
        out.push(touch(at, "sent"));
        let mut reach = 1.0;
        for (step, action) in CONTACT_FUNNEL
            .iter()
            .zip(["delivered", "opened", "clicked"])
        {
            if !self.chance(*step) {
                return;
            }
            reach *= step;
            at += self.sim.rng.random_range(MINUTE_MS..3 * HOUR_MS);
            out.push(touch(at, action));
        }
        // P(converted | clicked) so that P(converted | sent) is the variant's true rate.
        if !self.chance((p_convert / reach).min(1.0)) {
            return;
        }
        at += self.sim.rng.random_range(MINUTE_MS..HOUR_MS);
        out.push(touch(at, "converted"));
        match campaign {
            "ftd_nudge" => {
                t.will_deposit = true;
                t.ftd_day = self.day;
            }
            "winback" if t.churned => {
                t.churned = false;
                t.engagement = 0.8;
                t.loss_streak = 0;
                t.recent_failures = 0.0;
                t.last_activity_day = self.day;
                if t.churned_at.is_some() {
                    t.reactivated_at.get_or_insert(at);
                }
                let mut c = at + MINUTE_MS;
                self.deposit_flow(id, t, &mut c, out);
            }
            _ => t.engagement = (t.engagement + 0.1).min(1.0),
        }
    }
}

/// How many instruments a trader spreads over, stable per trader.
fn breadth(id: u32) -> usize {
    2 + (id.wrapping_mul(2_246_822_519) >> 27) as usize % 6
}

fn deposit(amount: f64, t: &Trader, method: &'static str, status: &'static str) -> SimBody {
    SimBody::Deposit {
        cents: cents(amount),
        currency: COUNTRIES[t.country].2,
        method,
        status,
    }
}

fn ev(ts: i64, trader: u32, body: SimBody) -> SimEvent {
    SimEvent {
        ts,
        arrival: ts,
        trader,
        body,
    }
}
