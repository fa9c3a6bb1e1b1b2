-- Completed and failed turns, messages and tool calls per thread, busiest first.
SELECT
  t.owner,
  t.thread_id,
  t.title,
  count_if(r.status = 'completed') AS turns,
  count_if(r.status = 'failed') AS failed_turns,
  max(t.message_count) AS messages,
  coalesce(max(m.tool_calls), 0) AS tool_calls,
  max(t.last_activity_at) AS last_activity_at
FROM ${catalog}.${schema}.lma_threads AS t
LEFT JOIN ${catalog}.${schema}.lma_runs AS r ON r.thread_key = t.thread_key
LEFT JOIN (
  SELECT thread_key, count(*) AS tool_calls
  FROM ${catalog}.${schema}.lma_messages
  WHERE role = 'tool'
  GROUP BY thread_key
) AS m ON m.thread_key = t.thread_key
GROUP BY t.owner, t.thread_id, t.title
ORDER BY turns DESC;
