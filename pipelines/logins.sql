-- window: tumble 1h
-- labels: platform, success
-- values: count_total counter, traders gauge
-- help: Logins by platform and outcome, with distinct traders per hour
SELECT window_start, platform, CAST(success AS VARCHAR) AS success,
       count(*) AS count_total,
       count(DISTINCT trader) AS traders
FROM logins
GROUP BY window_start, platform, success
