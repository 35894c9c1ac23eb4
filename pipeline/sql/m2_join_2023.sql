-- Amazon-M2 products joined with Amazon 2023 (or 2018) metadata by ASIN (views `m2_items`:
-- the staged good rows of products_train.csv, `other_items`: those of the other metadata
-- dumps). The M2 rows are the items (their text, locale, brand ...); the other metadata
-- gives what M2 lacks: the image URL, the category path (the class taxonomy) and the main
-- category, matched on M2's bare item id (the asin itself with one market selected). Of
-- an ASIN listed more than once there, the row with an image and the longest path wins.
CREATE OR REPLACE TEMP VIEW staged AS
WITH other AS (
    SELECT asin, image_url, categories, main_category
    FROM other_items
    QUALIFY row_number() OVER (
        PARTITION BY asin ORDER BY (image_url IS NULL), len(categories) DESC, image_url,
        main_category) = 1
)
SELECT
    m2_items.* REPLACE (
        coalesce(m2_items.image_url, other.image_url) AS image_url,
        CASE WHEN len(m2_items.categories) > 0 THEN m2_items.categories
             ELSE coalesce(other.categories, m2_items.categories) END AS categories,
        coalesce(m2_items.main_category, other.main_category) AS main_category
    )
FROM m2_items
LEFT JOIN other ON other.asin = m2_items.item_id
