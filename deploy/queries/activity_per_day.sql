-- Turns, failed turns and active threads per day over the last 30 days.
SELECT
  CAST(started_at AS DATE) AS day,
  count_if(status = 'completed') AS turns,
  count_if(status = 'failed') AS failed_turns,
  count(DISTINCT thread_key) AS active_threads
FROM ${catalog}.${schema}.lma_runs
WHERE started_at >= date_sub(current_date(), 30)
GROUP BY 1
ORDER BY day DESC;
