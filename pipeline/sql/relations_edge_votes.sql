-- Table `edge_votes` (i, j, cluster, n): how many co-buyers of each cluster every final edge
-- has. Views expected: edges(src_asin, dst_asin), bipartite(user_id, asin),
-- user_clusters(user_id, cluster).
--
-- Co-buyers are counted from each clustered user's sorted basket of graph items, as the
-- graph stage counts pairs (sql/pair_instances.sql): item i with every later item of the
-- basket, no join of buyers to buyers. Only instances that are final edges survive the semi
-- join, so the aggregate holds at most edges x clusters rows. Rows formed: the sum over users
-- of C(d, 2) (d = the user's graph items), not one per edge per buyer of its source item.
CREATE OR REPLACE TEMP TABLE edge_items AS
SELECT asin, (row_number() OVER (ORDER BY asin) - 1)::INTEGER AS iid
FROM (SELECT src_asin AS asin FROM edges UNION SELECT dst_asin AS asin FROM edges);

CREATE OR REPLACE TEMP TABLE edge_ids AS
SELECT e.src_asin, e.dst_asin, least(s.iid, d.iid) AS i, greatest(s.iid, d.iid) AS j
FROM edges AS e
JOIN edge_items AS s ON s.asin = e.src_asin
JOIN edge_items AS d ON d.asin = e.dst_asin;

CREATE OR REPLACE TEMP TABLE vote_baskets AS
SELECT cluster, items
FROM (
    SELECT u.cluster, list_sort(list_distinct(list(g.iid))) AS items
    FROM bipartite AS b
    JOIN edge_items AS g ON g.asin = b.asin
    JOIN user_clusters AS u ON u.user_id = b.user_id
    GROUP BY b.user_id, u.cluster
)
WHERE len(items) >= 2;

-- The instances stream into the semi join, with the edges as its build side: DuckDB's
-- optimizer would otherwise flip it (it underestimates the unnest) and hash every instance,
-- twice the CPU and memory for the instances' size. Reset right after.
SET disabled_optimizers = 'build_side_probe_side';

CREATE OR REPLACE TEMP TABLE edge_votes AS
WITH positions AS (
    SELECT cluster, items, unnest(items) AS i, generate_subscripts(items, 1) AS pos
    FROM vote_baskets
),
instances AS (
    SELECT cluster, i, unnest(items[pos + 1:]) AS j FROM positions WHERE pos < len(items)
)
SELECT x.i, x.j, x.cluster, count(*)::BIGINT AS n
FROM instances AS x
SEMI JOIN edge_ids AS e ON e.i = x.i AND e.j = x.j
GROUP BY x.i, x.j, x.cluster;

RESET disabled_optimizers;
