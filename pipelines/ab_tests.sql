-- window: hop 15d every 1d
-- labels: campaign, variant
-- values: sent gauge, converted gauge, conversion_rate gauge, control_rate gauge, lift gauge, ci_low gauge, ci_high gauge, p_value gauge
-- help: A/B tests over 15 days: each variant's conversion against the control variant, 95% CI of the difference, two-sided p-value
-- Per day and variant: contacts sent and converted (the partial aggregate).
SELECT window_start, campaign_id AS campaign, variant,
       count(*) FILTER (WHERE action = 'sent') AS sent,
       count(*) FILTER (WHERE action = 'converted') AS converted
FROM campaigns
GROUP BY window_start, campaign_id, variant
-- combine
-- Per 15-day window: each variant against the variant named `control`.
WITH v AS (
    SELECT window_start, campaign, variant,
           CAST(sum(sent) AS DOUBLE) AS n, CAST(sum(converted) AS DOUBLE) AS x
    FROM slices
    GROUP BY window_start, campaign, variant
), pairs AS (
    SELECT v.window_start, v.campaign, v.variant, v.n AS n1, v.x AS x1, c.n AS n0, c.x AS x0,
           v.x / v.n AS p1, c.x / c.n AS p0, (v.x + c.x) / (v.n + c.n) AS pooled
    FROM v JOIN v AS c
      ON c.window_start = v.window_start AND c.campaign = v.campaign AND c.variant = 'control'
    WHERE v.n > 0 AND c.n > 0
)
SELECT window_start, campaign, variant,
       n1 AS sent, x1 AS converted, p1 AS conversion_rate, p0 AS control_rate,
       CASE WHEN p0 > 0 THEN p1 / p0 - 1.0 END AS lift,
       (p1 - p0) - 1.959964 * sqrt(p1 * (1.0 - p1) / n1 + p0 * (1.0 - p0) / n0) AS ci_low,
       (p1 - p0) + 1.959964 * sqrt(p1 * (1.0 - p1) / n1 + p0 * (1.0 - p0) / n0) AS ci_high,
       CASE
           WHEN variant = 'control' THEN 1.0
           WHEN pooled <= 0.0 OR pooled >= 1.0 THEN 1.0
           ELSE 2.0 * (1.0 - normal_cdf(abs(p1 - p0) / sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0))))
       END AS p_value
FROM pairs
