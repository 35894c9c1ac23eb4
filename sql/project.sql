-- Co-purchase projection: weight = number of distinct users who bought both items, kept when
-- weight >= min_copurchase. The pair is packed into one BIGINT (i << 32 | j) so the
-- aggregation hashes one column instead of two.
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT
    (key >> 32)::INTEGER AS i,
    (key & 4294967295)::INTEGER AS j,
    w
FROM (
    SELECT (a.iid::BIGINT << 32) | b.iid::BIGINT AS key, count(*) AS w
    FROM bp a JOIN bp b ON a.uid = b.uid AND a.iid < b.iid
    GROUP BY key
    HAVING count(*) >= $min_copurchase
);
