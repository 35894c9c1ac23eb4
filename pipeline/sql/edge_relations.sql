-- Every final edge's votes (relations_edge_votes.sql) with the share of its co-buyers in
-- each cluster, in the order of its relation distribution: most co-buyers first, lowest
-- cluster id on ties. The caller cuts them into one list per edge
-- (pipeline.relations.votes.edge_distributions).
SELECT
    i,
    j,
    cluster::BIGINT AS cluster,
    n,
    n::DOUBLE / sum(n) OVER (PARTITION BY i, j)::DOUBLE AS share
FROM edge_votes
ORDER BY i, j, n DESC, cluster
