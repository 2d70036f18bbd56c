-- window: snapshot 1d
-- labels: segment
-- values: traders gauge, deposit_volume gauge, avg_deposit_per_trader gauge
-- help: Traders and approved deposit volume by segment; average deposit volume per trader is the LTV proxy
SELECT segment,
       count(*) AS traders,
       sum(deposit_sum) AS deposit_volume,
       sum(deposit_sum) / count(*) AS avg_deposit_per_trader
FROM traders
GROUP BY segment
