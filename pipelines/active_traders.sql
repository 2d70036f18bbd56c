-- window: hop 30d every 1d
-- values: traders_1d gauge, traders_7d gauge, traders_30d gauge
-- help: Distinct traders who signed up, logged in, deposited, withdrew or traded within 1, 7 and 30 days
-- Per day: the set of active traders (a bitmap over trader ids).
SELECT window_start, trader_set(trader) AS traders FROM (
    SELECT window_start, trader FROM signups
    UNION ALL SELECT window_start, trader FROM logins
    UNION ALL SELECT window_start, trader FROM deposits
    UNION ALL SELECT window_start, trader FROM withdrawals
    UNION ALL SELECT window_start, trader FROM trades
) activity
GROUP BY window_start
-- combine
-- Per 30-day window: the size of the union of the last 1, 7 and 30 daily sets.
SELECT window_start,
       union_count(CASE WHEN slice_start >= window_end - 86400000 THEN traders END) AS traders_1d,
       union_count(CASE WHEN slice_start >= window_end - 604800000 THEN traders END) AS traders_7d,
       union_count(traders) AS traders_30d
FROM slices
GROUP BY window_start
