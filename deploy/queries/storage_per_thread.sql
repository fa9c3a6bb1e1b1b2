-- Bytes of checkpoint storage per thread (checkpoints + blobs + pending writes), largest first.
-- octet_length of the stored values approximates PostgreSQL's pg_column_size used by the service.
WITH storage AS (
  SELECT thread_id, octet_length(checkpoint) + octet_length(metadata) AS bytes
  FROM ${catalog}.${schema}.checkpoints
  UNION ALL
  SELECT thread_id, coalesce(octet_length(blob), 0) FROM ${catalog}.${schema}.checkpoint_blobs
  UNION ALL
  SELECT thread_id, coalesce(octet_length(blob), 0) FROM ${catalog}.${schema}.checkpoint_writes
)
SELECT t.owner, t.thread_id, t.turn_count AS turns, sum(s.bytes) AS checkpoint_bytes
FROM storage AS s
JOIN ${catalog}.${schema}.lma_threads AS t ON s.thread_id = CAST(t.thread_key AS STRING)
GROUP BY t.owner, t.thread_id, t.turn_count
ORDER BY checkpoint_bytes DESC
LIMIT 50;
