-- What a user's share vector counts: view `counted` (user_id, col), one row per distinct
-- purchase of a graph node by a user who bought at least two of them; col = the column of
-- the node's class (classes in id order). Users with a single graph purchase are left out:
-- they cannot co-purchase any edge.
-- Views expected: bipartite(user_id, asin), nodes(asin), classes(asin, class).
CREATE OR REPLACE TEMP VIEW class_cols AS
SELECT class, (row_number() OVER (ORDER BY class) - 1)::BIGINT AS col
FROM (SELECT DISTINCT class FROM classes);

CREATE OR REPLACE TEMP TABLE graph_purchases AS
SELECT DISTINCT b.user_id, b.asin, k.col
FROM bipartite AS b
JOIN nodes AS n ON n.asin = b.asin
JOIN classes AS c ON c.asin = b.asin
JOIN class_cols AS k ON k.class = c.class;

CREATE OR REPLACE TEMP VIEW counted AS
SELECT p.user_id, p.col
FROM graph_purchases AS p
SEMI JOIN (
    SELECT user_id FROM graph_purchases GROUP BY user_id HAVING count(*) >= 2
) AS e ON e.user_id = p.user_id;
