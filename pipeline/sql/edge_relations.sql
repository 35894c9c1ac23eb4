-- The relations of every final edge, from table `edge_votes` (relations_edge_votes.sql).
-- relation_ids / relation_shares: the clusters of its clustered co-buyers and the share of
-- co-buyers in each, largest share first, lowest cluster id on ties (shares sum to 1);
-- relation_id: the first of them (the majority); relation_users: all clustered co-buyers;
-- majority_users: those in relation_id. All NULL (users 0) when no clustered user bought
-- both endpoints: the caller applies its fallback.
WITH dist AS (
    SELECT
        i,
        j,
        list(cluster ORDER BY n DESC, cluster ASC) AS ids,
        list(n ORDER BY n DESC, cluster ASC) AS counts,
        sum(n) AS total
    FROM edge_votes
    GROUP BY i, j
)
SELECT
    e.src_asin,
    e.dst_asin,
    d.ids[1]::BIGINT AS relation_id,
    coalesce(d.total, 0)::BIGINT AS relation_users,
    coalesce(d.counts[1], 0)::BIGINT AS majority_users,
    d.ids::BIGINT[] AS relation_ids,
    list_transform(d.counts, lambda c: c::DOUBLE / d.total::DOUBLE) AS relation_shares
FROM edge_ids AS e
LEFT JOIN dist AS d ON d.i = e.i AND d.j = e.j
ORDER BY e.src_asin, e.dst_asin
