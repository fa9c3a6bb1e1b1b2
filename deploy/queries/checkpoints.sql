-- Every checkpoint with its time (from the checkpoint itself), step, source and run, newest
-- first, with the thread users know. The seed's version listed raw rows and missed a comma.
SELECT
  t.owner,
  t.thread_id,
  c.checkpoint_id,
  c.parent_checkpoint_id,
  to_timestamp(get_json_object(c.checkpoint, '$.ts')) AS created_at,
  CAST(get_json_object(c.metadata, '$.step') AS INT) AS step,
  get_json_object(c.metadata, '$.source') AS source,
  get_json_object(c.metadata, '$.run_id') AS run_id
FROM ${catalog}.${schema}.checkpoints AS c
JOIN ${catalog}.${schema}.lma_threads AS t ON c.thread_id = CAST(t.thread_key AS STRING)
WHERE c.checkpoint_ns = ''
ORDER BY created_at DESC
LIMIT 1000;
