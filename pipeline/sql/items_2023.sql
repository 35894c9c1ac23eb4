-- Amazon Reviews 2023 metadata lines (view `docs`, json_docs.sql) -> view `item_typed`, which
-- items_checked.sql turns into canonical items. The best image is the MAIN one if any, else
-- the first; hi_res preferred over large.
CREATE OR REPLACE TEMP VIEW item_typed AS
WITH parsed AS (
    SELECT
        line, doc, NOT ok AS repaired,
        CASE WHEN (ok OR json_valid(doc)) AND is_object_text(doc) THEN json_transform(doc, '{
            "parent_asin": "JSON", "asin": "JSON", "title": "JSON", "description": "JSON",
            "features": "JSON", "categories": "JSON", "main_category": "JSON", "store": "JSON",
            "images": [{"hi_res": "VARCHAR", "large": "VARCHAR", "variant": "VARCHAR"}]}') END AS r
    FROM docs
), typed AS (
    SELECT
        line, repaired, r,
        CASE WHEN r IS NOT NULL THEN json_keys(doc) END AS keys,
        coalesce(r.parent_asin ->> '$', r.asin ->> '$') AS asin,
        r.title ->> '$' AS title,
        CASE json_type(r.description)
            WHEN 'ARRAY' THEN json_transform(r.description, '["VARCHAR"]')
            WHEN 'VARCHAR' THEN [r.description ->> '$'] END AS description,
        CASE json_type(r.features)
            WHEN 'ARRAY' THEN json_transform(r.features, '["VARCHAR"]')
            WHEN 'VARCHAR' THEN [r.features ->> '$'] END AS features,
        CASE json_type(r.categories)
            WHEN 'ARRAY' THEN json_transform(r.categories, '["VARCHAR"]') END AS categories,
        r.main_category ->> '$' AS main_category,
        r.store ->> '$' AS store,
        coalesce(
            list_filter(r.images, lambda x: x.variant = 'MAIN')[1],
            r.images[1]
        ) AS img
    FROM parsed
), with_image AS (
    SELECT * EXCLUDE (img), nullif(coalesce(img.hi_res, img.large), '') AS image_url FROM typed
)
SELECT * FROM with_image
