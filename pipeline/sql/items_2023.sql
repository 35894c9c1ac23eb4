-- Canonical items from Amazon Reviews 2023 metadata lines (view `lines`). The best image is
-- the MAIN one if any, else the first; hi_res preferred over large.
WITH parsed AS (
    SELECT
        line,
        CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN json_transform(line, '{
            "parent_asin": "JSON", "asin": "JSON", "title": "JSON", "description": "JSON",
            "features": "JSON", "categories": "JSON", "main_category": "JSON", "store": "JSON",
            "images": [{"hi_res": "VARCHAR", "large": "VARCHAR", "variant": "VARCHAR"}]}') END AS r
    FROM lines
    WHERE line IS NOT NULL AND trim(line) <> ''
), typed AS (
    SELECT
        line, r,
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
)
SELECT
    asin, title,
    coalesce(description, []) AS description,
    coalesce(features, []) AS features,
    coalesce(categories, []) AS categories,
    main_category,
    nullif(coalesce(img.hi_res, img.large), '') AS image_url,
    store,
    CASE
        WHEN r IS NULL THEN 'bad_json'
        WHEN asin IS NULL OR asin = '' THEN 'missing_item'
    END AS reject_reason,
    line AS raw
FROM typed
