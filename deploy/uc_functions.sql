-- The demo's two tools as Unity Catalog SQL functions, for UC_FUNCTIONS (Databricks SQL).
--
-- ${catalog} and ${schema} stand for the catalog and schema that hold the sample tables
-- `cyber_threat_detection` and `user_info` (and will hold the functions). Substitute them, then
-- run the file in a SQL warehouse or a notebook, for example:
--   sed -e 's/${catalog}/main/g' -e 's/${schema}/cyber/g' deploy/uc_functions.sql > /tmp/uc.sql
-- and point the service at the functions:
--   UC_FUNCTIONS=main.cyber.get_cyber_threat_info,main.cyber.get_user_info
-- The service principal needs USE CATALOG, USE SCHEMA, EXECUTE on the functions and SELECT on
-- the two tables.
--
-- Each function returns one line of `key: value; key: value` text, as the local SQL tools do
-- (app/agent/tools.py). Unlike the seed, whose `WHERE threat_type = threat_type` compared the
-- column with itself (and so returned the latest threat of ANY type), the filter compares the
-- column with the parameter, written `get_cyber_threat_info.threat_type` so it can never
-- resolve to the column; it ignores case and punctuation ("ddos", "Brute Force") and says
-- plainly when nothing matches.

CREATE OR REPLACE FUNCTION ${catalog}.${schema}.get_cyber_threat_info(
  threat_type STRING COMMENT 'The type of threat, for example Malware, Phishing, Ransomware, DDoS (any case)'
)
RETURNS STRING
LANGUAGE SQL
COMMENT 'Returns the latest cyber threat of the given type (e.g. Malware, Phishing, DDoS): its threat id, timestamp, source IP, protocol and detection tool.'
RETURN COALESCE(
  (
    SELECT max_by(
      concat(
        'threat_type: ', t.threat_type,
        '; threat_id: ', CAST(t.threat_id AS STRING),
        '; event_timestamp: ', date_format(t.event_timestamp, 'yyyy-MM-dd HH:mm:ss'),
        '; source_ip: ', coalesce(t.source_ip, 'unknown'),
        '; protocol: ', coalesce(t.protocol, 'unknown'),
        '; detection_tool: ', coalesce(t.detection_tool, 'unknown')
      ),
      -- latest first; the id breaks ties between threats of the same instant
      struct(t.event_timestamp, t.threat_id)
    )
    FROM ${catalog}.${schema}.cyber_threat_detection AS t
    WHERE regexp_replace(lower(t.threat_type), '[^a-z0-9]', '')
        = regexp_replace(lower(get_cyber_threat_info.threat_type), '[^a-z0-9]', '')
  ),
  concat(
    'No threat of type ''', coalesce(get_cyber_threat_info.threat_type, ''), ''' was found. Known threat types: ',
    (
      SELECT coalesce(array_join(array_sort(collect_set(k.threat_type)), ', '), 'none')
      FROM ${catalog}.${schema}.cyber_threat_detection AS k
    ),
    '.'
  )
);

CREATE OR REPLACE FUNCTION ${catalog}.${schema}.get_user_info(
  source_ip STRING COMMENT 'An IP address, for example the source_ip returned by get_cyber_threat_info'
)
RETURNS STRING
LANGUAGE SQL
COMMENT 'Returns the user at the given IP address: name, department, email, IP and location.'
RETURN COALESCE(
  (
    SELECT min_by(
      concat(
        'user_name: ', coalesce(u.user_name, 'unknown'),
        '; department: ', coalesce(u.department, 'unknown'),
        '; email: ', coalesce(u.email, 'unknown'),
        '; ip_address: ', u.ip_address,
        '; location: ', coalesce(u.location, 'unknown')
      ),
      u.user_id
    )
    FROM ${catalog}.${schema}.user_info AS u
    WHERE u.ip_address = trim(get_user_info.source_ip)
  ),
  concat('No user has the IP address ''', coalesce(trim(get_user_info.source_ip), ''), '''.')
);
