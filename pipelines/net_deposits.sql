-- window: tumble 1h
-- labels: currency
-- values: deposits_amount gauge, withdrawals_amount gauge, net_amount gauge
-- help: Approved deposits minus approved withdrawals per hour
SELECT window_start, currency,
       sum(deposited) AS deposits_amount,
       sum(withdrawn) AS withdrawals_amount,
       sum(deposited) - sum(withdrawn) AS net_amount
FROM (
    SELECT window_start, currency, amount AS deposited, CAST(0 AS DECIMAL(20, 6)) AS withdrawn
    FROM deposits WHERE status = 'approved'
    UNION ALL
    SELECT window_start, currency, CAST(0 AS DECIMAL(20, 6)) AS deposited, amount AS withdrawn
    FROM withdrawals WHERE status = 'approved'
) flows
GROUP BY window_start, currency
