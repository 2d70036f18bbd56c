-- window: tumble 1m
-- labels: channel, currency
-- values: count_total counter, amount_total counter
-- help: First approved deposits (FTDs) by acquisition channel
SELECT window_start, acq_channel AS channel, currency,
       count(*) AS count_total,
       sum(amount) AS amount_total
FROM deposits
WHERE first_deposit
GROUP BY window_start, acq_channel, currency
