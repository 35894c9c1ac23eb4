-- Per-user purchase counts over classes, for users who bought at least two graph nodes.
-- Views expected: bipartite(user_id, asin), nodes(asin), classes(asin, class).
-- Users with a single graph purchase are left out: they cannot co-purchase any edge.
WITH purchases AS (
    SELECT DISTINCT b.user_id, b.asin, c.class
    FROM bipartite AS b
    JOIN nodes AS n ON n.asin = b.asin
    JOIN classes AS c ON c.asin = b.asin
),
eligible AS (
    SELECT user_id
    FROM purchases
    GROUP BY user_id
    HAVING count(*) >= 2
)
SELECT p.user_id, p.class, count(*) AS n
FROM purchases AS p
JOIN eligible AS e ON e.user_id = p.user_id
GROUP BY p.user_id, p.class
ORDER BY p.user_id, p.class
