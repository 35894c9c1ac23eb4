-- Distinct (user, item) purchases, kept as one sorted basket per user. Items get dense integer
-- ids in asin order, so `i < j` on ids is `asin_i < asin_j` (the published src_asin < dst_asin
-- comes free). Users keep their own ids: mapping millions of them costs a sort and buys
-- little, as they are only ever a grouping key. `purchases` is a view over the canonical
-- reviews (restricted to usable items when metadata was given).
--
-- `purchase_rows` (rows per item, duplicates included) bounds the item's distinct buyers from
-- above, which is all the exact pruning needs, without a DISTINCT over (user, item).
CREATE OR REPLACE TEMP TABLE item_ids AS
SELECT asin, (row_number() OVER (ORDER BY asin) - 1)::INTEGER AS iid, purchase_rows
FROM (
    SELECT asin, count(*) AS purchase_rows
    FROM purchases
    WHERE asin IS NOT NULL AND user_id IS NOT NULL
    GROUP BY asin
);

-- One row per user with the sorted, distinct ids of their items. Grouping into lists is
-- cheaper than a DISTINCT over 20M (user, item) rows, and the projection wants each basket
-- sorted anyway; duplicates are then adjacent and dropped by comparing with the neighbour.
CREATE OR REPLACE TEMP TABLE baskets AS
SELECT uid, list_filter(items, lambda x, k: k = 1 OR x != items[k - 1]) AS items
FROM (
    SELECT p.user_id AS uid, list_sort(list(i.iid)) AS items
    FROM purchases p JOIN item_ids i USING (asin)
    WHERE p.user_id IS NOT NULL
    GROUP BY p.user_id
);
