-- window: tumble 1d
-- labels: campaign, variant
-- values: sent_total counter, delivered_total counter, opened_total counter, clicked_total counter, converted_total counter, open_rate gauge, click_rate gauge, conversion_rate gauge
-- help: Campaign contacts by campaign and variant per day; rates within the day
SELECT window_start, campaign, variant,
       sent AS sent_total, delivered AS delivered_total, opened AS opened_total,
       clicked AS clicked_total, converted AS converted_total,
       CAST(opened AS DOUBLE) / nullif(delivered, 0) AS open_rate,
       CAST(clicked AS DOUBLE) / nullif(opened, 0) AS click_rate,
       CAST(converted AS DOUBLE) / nullif(sent, 0) AS conversion_rate
FROM (
    SELECT window_start, campaign_id AS campaign, variant,
           count(*) FILTER (WHERE action = 'sent') AS sent,
           count(*) FILTER (WHERE action = 'delivered') AS delivered,
           count(*) FILTER (WHERE action = 'opened') AS opened,
           count(*) FILTER (WHERE action = 'clicked') AS clicked,
           count(*) FILTER (WHERE action = 'converted') AS converted
    FROM campaigns
    GROUP BY window_start, campaign_id, variant
) daily
