-- Majority relation of every final edge, from table `edge_votes` (relations_edge_votes.sql).
-- relation_id: the cluster holding most co-buyers, lowest cluster id on ties;
-- NULL when no clustered user bought both endpoints (the caller applies its fallback).
-- relation_users: all clustered co-buyers; majority_users: those in the chosen cluster.
WITH ranked AS (
    SELECT
        i,
        j,
        cluster,
        n,
        sum(n) OVER (PARTITION BY i, j) AS total,
        row_number() OVER (PARTITION BY i, j ORDER BY n DESC, cluster ASC) AS rk
    FROM edge_votes
)
SELECT
    e.src_asin,
    e.dst_asin,
    r.cluster::BIGINT AS relation_id,
    coalesce(r.total, 0)::BIGINT AS relation_users,
    coalesce(r.n, 0)::BIGINT AS majority_users
FROM edge_ids AS e
LEFT JOIN ranked AS r ON r.i = e.i AND r.j = e.j AND r.rk = 1
ORDER BY e.src_asin, e.dst_asin
