-- Canonical item rows + reject reason from view `item_typed` (items_2018.sql or
-- items_2023.sql): the checks and the raw sample are the same for both formats.
WITH checked AS (
    SELECT
        asin, title,
        coalesce(description, []) AS description,
        coalesce(features, []) AS features,
        coalesce(categories, []) AS categories,
        main_category,
        image_url,
        store,
        item_reject_reason(r, keys, asin) AS reject_reason,
        line, repaired
    FROM item_typed
)
SELECT * EXCLUDE (line, repaired),
    CASE WHEN reject_reason IS NOT NULL THEN line END AS raw,
    repaired AND reject_reason IS NULL AS repaired
FROM checked
