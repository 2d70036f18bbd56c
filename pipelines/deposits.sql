-- window: tumble 1m
-- labels: method, status, currency
-- values: count_total counter, amount_total counter, avg_ticket gauge
-- help: Deposits by payment method and status (1-minute windows of event time)
SELECT window_start, method, status, currency,
       count(*) AS count_total,
       sum(amount) AS amount_total,
       avg(amount) AS avg_ticket
FROM deposits
GROUP BY window_start, method, status, currency
