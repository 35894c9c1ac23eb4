-- Majority relation of every final edge.
-- Views expected: edges(src_asin, dst_asin), bipartite(user_id, asin),
-- user_clusters(user_id, cluster).
-- Co-buyers are found per edge (users of src joined to users of dst on (user, asin)), so
-- only pairs that are final edges are ever formed, never all item pairs of a user.
-- relation_id: the cluster holding most co-buyers, lowest cluster id on ties;
-- NULL when no clustered user bought both endpoints (the caller applies its fallback).
-- relation_users: all clustered co-buyers; majority_users: those in the chosen cluster.
WITH graph_asins AS (
    SELECT src_asin AS asin FROM edges
    UNION
    SELECT dst_asin AS asin FROM edges
),
buyers AS (
    SELECT DISTINCT b.user_id, b.asin, u.cluster
    FROM bipartite AS b
    JOIN user_clusters AS u ON u.user_id = b.user_id
    JOIN graph_asins AS g ON g.asin = b.asin
),
votes AS (
    SELECT e.src_asin, e.dst_asin, s.cluster, count(*) AS n
    FROM edges AS e
    JOIN buyers AS s ON s.asin = e.src_asin
    JOIN buyers AS d ON d.user_id = s.user_id AND d.asin = e.dst_asin
    GROUP BY e.src_asin, e.dst_asin, s.cluster
),
ranked AS (
    SELECT
        src_asin,
        dst_asin,
        cluster,
        n,
        sum(n) OVER (PARTITION BY src_asin, dst_asin) AS total,
        row_number() OVER (
            PARTITION BY src_asin, dst_asin ORDER BY n DESC, cluster ASC
        ) AS rk
    FROM votes
)
SELECT
    e.src_asin,
    e.dst_asin,
    r.cluster::BIGINT AS relation_id,
    coalesce(r.total, 0)::BIGINT AS relation_users,
    coalesce(r.n, 0)::BIGINT AS majority_users
FROM edges AS e
LEFT JOIN ranked AS r
    ON r.src_asin = e.src_asin AND r.dst_asin = e.dst_asin AND r.rk = 1
ORDER BY e.src_asin, e.dst_asin
