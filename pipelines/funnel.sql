-- window: snapshot 1d
-- labels: channel
-- values: cohort_7d gauge, ftd_7d gauge, ftd_rate_7d gauge, cohort_30d gauge, second_deposit_30d gauge, second_deposit_rate_30d gauge
-- help: Signup cohorts by channel: share with a first deposit within 7 days (cohorts of the 30 days before that), share with a second deposit within 30 days
SELECT channel, cohort_7d, ftd_7d,
       CAST(ftd_7d AS DOUBLE) / nullif(cohort_7d, 0) AS ftd_rate_7d,
       cohort_30d, second_deposit_30d,
       CAST(second_deposit_30d AS DOUBLE) / nullif(cohort_30d, 0) AS second_deposit_rate_30d
FROM (
    -- Ages once per trader (as_of - signup_ts), not once per condition.
    SELECT channel,
           count(*) FILTER (WHERE age > 7 * 86400000 AND age <= 37 * 86400000) AS cohort_7d,
           count(*) FILTER (WHERE age > 7 * 86400000 AND age <= 37 * 86400000
                            AND to_first <= 7 * 86400000) AS ftd_7d,
           count(*) FILTER (WHERE age > 30 * 86400000 AND age <= 60 * 86400000) AS cohort_30d,
           count(*) FILTER (WHERE age > 30 * 86400000 AND age <= 60 * 86400000
                            AND to_second <= 30 * 86400000) AS second_deposit_30d
    FROM (
        SELECT channel, as_of - signup_ts AS age,
               first_deposit_ts - signup_ts AS to_first,
               second_deposit_ts - signup_ts AS to_second
        FROM traders
        WHERE signup_ts IS NOT NULL
    ) signed_up
    GROUP BY channel
) cohorts
