-- One user partition's share of the projection (pipeline/graph_partitions.py): every pair its
-- baskets form, with how many of its users bought both. No threshold here: a pair bought by
-- one user in each of three partitions still reaches 3 once the partials are summed
-- (sql/merge_pairs.sql), so a partition cannot drop pairs it sees rarely.
CREATE OR REPLACE TEMP TABLE partial_pairs AS
SELECT i, j, count(*)::BIGINT AS c
FROM instances
GROUP BY i, j;
