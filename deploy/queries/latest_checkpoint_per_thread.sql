-- Each thread's latest checkpoint (its head) and when it was written.
SELECT owner, thread_id, checkpoint_id, created_at, step
FROM (
  SELECT
    t.owner,
    t.thread_id,
    c.checkpoint_id,
    to_timestamp(get_json_object(c.checkpoint, '$.ts')) AS created_at,
    CAST(get_json_object(c.metadata, '$.step') AS INT) AS step,
    row_number() OVER (PARTITION BY c.thread_id ORDER BY c.checkpoint_id DESC) AS rn
  FROM ${catalog}.${schema}.checkpoints AS c
  JOIN ${catalog}.${schema}.lma_threads AS t ON c.thread_id = CAST(t.thread_key AS STRING)
  WHERE c.checkpoint_ns = ''
)
WHERE rn = 1
ORDER BY created_at DESC;
