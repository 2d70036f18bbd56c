-- window: tumble 1m
-- labels: channel, country
-- values: count_total counter
-- help: Signups by acquisition channel and country
SELECT window_start, channel, country, count(*) AS count_total
FROM signups
GROUP BY window_start, channel, country
