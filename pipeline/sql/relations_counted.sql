-- What a user's share vector counts: view `counted` (user_id, col), one row per distinct
-- purchase of an eligible user, col = the column of the item's subcategory, or that of the
-- vocab row without a key (purchases without a subcategory: a path too short, or no
-- metadata), present when there are such purchases.
-- Tables expected: user_items, item_keys (relations_vocabulary.sql), vocab(key, col).
CREATE OR REPLACE TEMP TABLE vocab_items AS
SELECT k.asin, v.col
FROM item_keys AS k
JOIN vocab AS v ON v.key = k.key;

CREATE OR REPLACE TEMP VIEW counted AS
SELECT u.user_id, coalesce(v.col, (SELECT col FROM vocab WHERE key IS NULL)) AS col
FROM user_items AS u
LEFT JOIN vocab_items AS v ON v.asin = u.asin;
