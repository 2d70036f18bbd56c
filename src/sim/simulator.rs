//! The simulation loop: one simulated day at a time, events released in
//! arrival order (event time plus a bounded random delay).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::SimConfig;
use super::day::DayContext;
use super::json::write_event;
use super::trader::Trader;
use super::truth::Truth;
use crate::event::time::DAY_MS;

/// Type-specific fields of a simulated event. Amounts are in cents.
#[derive(Clone, Debug, PartialEq)]
pub enum SimBody {
    Signup {
        channel: &'static str,
        country: &'static str,
        campaign: Option<&'static str>,
    },
    Login {
        success: bool,
        device: u32,
        country: &'static str,
        platform: &'static str,
    },
    Deposit {
        cents: i64,
        currency: &'static str,
        method: &'static str,
        status: &'static str,
    },
    Withdrawal {
        cents: i64,
        currency: &'static str,
        status: &'static str,
    },
    Trade {
        instrument: &'static str,
        side: &'static str,
        stake_cents: i64,
        currency: &'static str,
        pnl_cents: Option<i64>,
    },
    Campaign {
        campaign: &'static str,
        variant: &'static str,
        action: &'static str,
        channel: &'static str,
    },
}

/// A simulated event before serialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct SimEvent {
    /// Event time, epoch ms.
    pub ts: i64,
    /// Arrival order key: `ts` plus a random delay up to the disorder.
    pub arrival: i64,
    pub trader: u32,
    pub body: SimBody,
}

/// The deterministic brokerage.
pub struct Simulator {
    pub(crate) config: SimConfig,
    pub(crate) rng: StdRng,
    pub(crate) traders: Vec<Trader>,
    trader_ids: Vec<String>,
    day: u32,
    /// Generated events not yet due (arriving after the current day).
    pending: Vec<SimEvent>,
    seq: u64,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let traders: Vec<Trader> = (0..config.traders)
            .map(|_| Trader::new(&mut rng, config.start_ms, config.days))
            .collect();
        // Pseudonymous, stable ids that do not reveal the signup order.
        let salt = config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let trader_ids = (0..config.traders)
            .map(|i| {
                format!(
                    "tr-{:012x}",
                    (u64::from(i)
                        .wrapping_add(salt)
                        .wrapping_mul(0xff51_afd7_ed55_8ccd))
                        >> 16
                )
            })
            .collect();
        Self {
            config,
            rng,
            traders,
            trader_ids,
            day: 0,
            pending: Vec::new(),
            seq: 0,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The id string of a simulated trader.
    pub fn trader_id(&self, trader: u32) -> &str {
        &self.trader_ids[trader as usize]
    }

    /// Simulated days done so far.
    pub fn day(&self) -> u32 {
        self.day
    }

    /// Appends the next simulated day's arrivals to `out`, in arrival order;
    /// false when the period is over and everything was released.
    pub fn next_day(&mut self, out: &mut Vec<SimEvent>) -> bool {
        if self.day >= self.config.days {
            if self.pending.is_empty() {
                return false;
            }
            self.pending.sort_by_key(|e| e.arrival);
            out.append(&mut self.pending);
            return true;
        }
        let day = self.day;
        self.day += 1;
        let mut generated = Vec::with_capacity(self.traders.len() * 4);
        DayContext::new(self, day).run(&mut generated);
        let disorder = self.config.disorder_ms.max(0);
        for mut e in generated {
            e.arrival = e.ts
                + if disorder > 0 {
                    self.rng.random_range(0..=disorder)
                } else {
                    0
                };
            self.pending.push(e);
        }
        // Release what arrives before the next day starts; later arrivals
        // (trades closing overnight, delayed withdrawals) wait.
        let day_end = self.config.start_ms + i64::from(day + 1) * DAY_MS;
        self.pending.sort_by_key(|e| e.arrival);
        let due = self.pending.partition_point(|e| e.arrival < day_end);
        out.extend(self.pending.drain(..due));
        true
    }

    /// Serialises one event as a JSON line (with `\n`), assigning its event id.
    pub fn write_json(&mut self, e: &SimEvent, buf: &mut Vec<u8>) {
        self.seq += 1;
        write_event(
            buf,
            self.config.seed,
            self.seq,
            &self.trader_ids[e.trader as usize],
            e,
        );
    }

    /// Runs the whole period, returning NDJSON bytes (tests and benches).
    pub fn to_ndjson(config: SimConfig) -> Vec<u8> {
        let mut sim = Simulator::new(config);
        let mut buf = Vec::new();
        let mut day = Vec::new();
        while sim.next_day(&mut day) {
            for e in &day {
                sim.write_json(e, &mut buf);
            }
            day.clear();
        }
        buf
    }

    /// Ground truth so far.
    pub fn truth(&self) -> Truth {
        Truth::from_simulator(self)
    }
}
