-- The sum merge of the partitioned projection, one bucket of pairs at a time: a pair's weight
-- is the sum of its partial counts (each user is in exactly one partition, so no buyer is
-- counted twice), kept when it reaches min_copurchase. Over all buckets, the same `pairs` as
-- sql/project.sql builds in one pass.
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT i, j, sum(c)::BIGINT AS w
FROM partial_pairs
GROUP BY i, j
HAVING sum(c) >= $min_copurchase;
