-- window: tumble 1m
-- labels: status, currency
-- values: count_total counter, amount_total counter
-- help: Withdrawals by status
SELECT window_start, status, currency,
       count(*) AS count_total,
       sum(amount) AS amount_total
FROM withdrawals
GROUP BY window_start, status, currency
