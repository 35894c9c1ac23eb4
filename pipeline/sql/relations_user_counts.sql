-- How many users bought exactly one graph node, and how many bought two or more.
-- Views expected: bipartite(user_id, asin), nodes(asin).
WITH per_user AS (
    SELECT b.user_id, count(DISTINCT b.asin) AS n_items
    FROM bipartite AS b
    JOIN nodes AS n ON n.asin = b.asin
    GROUP BY b.user_id
)
SELECT
    coalesce(sum(CASE WHEN n_items = 1 THEN 1 ELSE 0 END), 0)::BIGINT AS users_single,
    coalesce(sum(CASE WHEN n_items >= 2 THEN 1 ELSE 0 END), 0)::BIGINT AS users_multi
FROM per_user
