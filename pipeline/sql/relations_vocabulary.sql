-- The relation vocabulary (RCML A.2): users are described by the subcategories of all their
-- purchases in the category. Views expected: bipartite(user_id, asin), nodes(asin),
-- reviews(user_id, asin), items(asin, categories). Parameter: level (0 = the main category,
-- 1 = its first-level subcategories).
--
-- eligible: the users to describe, those who bought at least two graph nodes (in the
-- bipartite table): only they can co-purchase an edge.
CREATE OR REPLACE TEMP TABLE eligible AS
SELECT b.user_id
FROM (SELECT DISTINCT user_id, asin FROM bipartite) AS b
SEMI JOIN nodes AS n ON n.asin = b.asin
GROUP BY b.user_id
HAVING count(*) >= 2;

-- user_items: every distinct item an eligible user reviewed in the category, graph node or
-- not, usable item or not (the reviews, not the bipartite table).
CREATE OR REPLACE TEMP TABLE user_items AS
SELECT DISTINCT r.user_id, r.asin
FROM reviews AS r
SEMI JOIN eligible AS e ON e.user_id = r.user_id
WHERE r.asin IS NOT NULL;

-- item_keys: each item's category path down to the level, names trimmed (as the classes stage
-- reads them); items whose path is shorter, or whose label there is empty or "Other" (not a
-- category to name), have none.
CREATE OR REPLACE TEMP TABLE item_keys AS
SELECT asin, min(key) AS key
FROM (
    SELECT
        asin,
        list_transform(
            categories[1:$level + 1],
            lambda x: coalesce(regexp_replace(x, '^\s+|\s+$', '', 'g'), '')
        ) AS key
    FROM items
    WHERE len(categories) > $level
        AND lower(coalesce(regexp_replace(categories[$level + 1], '^\s+|\s+$', '', 'g'), ''))
        NOT IN ('', 'other')
)
GROUP BY asin;
