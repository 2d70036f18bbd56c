-- window: tumble 1h
-- labels: segment, currency
-- values: trades_total counter, stake_total counter, traders gauge, realised_pnl gauge
-- help: Trading by segment: trades opened, stake, distinct traders, realised P&L per hour
SELECT window_start, segment, currency,
       count(*) FILTER (WHERE status = 'opened') AS trades_total,
       coalesce(sum(stake) FILTER (WHERE status = 'opened'), 0.0) AS stake_total,
       count(DISTINCT trader) AS traders,
       coalesce(sum(pnl) FILTER (WHERE status = 'closed'), 0.0) AS realised_pnl
FROM trades
GROUP BY window_start, segment, currency
