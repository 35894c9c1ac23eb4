-- Co-purchase projection: weight = number of distinct users who bought both items, kept when
-- weight >= min_copurchase.
--
-- The naive self-join hashes every pair instance (sum of C(d, 2) over users; 244M on the 20M
-- benchmark set, most of them pairs seen once or twice) into one huge GROUP BY. Here each
-- sorted basket emits its pairs directly (view `instances`, sql/pair_instances.sql), and the
-- instances are sorted per item i by the window: in the sorted run of a pair seen w times,
-- the rows whose (min_copurchase - 1)-th successor is the same j are exactly the first
-- w - min_copurchase + 1, so only pairs that reach the threshold leave the window, and the
-- final GROUP BY sees a few percent of the instances.
CREATE OR REPLACE TEMP TABLE pairs AS
WITH runs AS (
    SELECT i, j, lead(j, $min_copurchase - 1) OVER (PARTITION BY i ORDER BY j) AS j_ahead
    FROM instances
)
SELECT i, j, count(*) + $min_copurchase - 1 AS w
FROM runs
WHERE j = j_ahead
GROUP BY i, j;
