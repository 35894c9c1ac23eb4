-- Canonical items from Amazon 2018 metadata (view `lines`: JSON lines, or the elements of
-- one JSON array). High-resolution image first; `category` is the taxonomy path.
WITH parsed AS (
    SELECT
        line,
        CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN json_transform(line, '{
            "asin": "JSON", "title": "JSON", "description": "JSON", "feature": "JSON",
            "category": "JSON", "main_cat": "JSON", "brand": "JSON",
            "imageURLHighRes": "JSON", "imageURL": "JSON"}') END AS r
    FROM lines
    WHERE line IS NOT NULL AND trim(line) <> ''
), typed AS (
    SELECT
        line, r,
        r.asin ->> '$' AS asin,
        r.title ->> '$' AS title,
        CASE json_type(r.description)
            WHEN 'ARRAY' THEN json_transform(r.description, '["VARCHAR"]')
            WHEN 'VARCHAR' THEN [r.description ->> '$'] END AS description,
        CASE json_type(r.feature)
            WHEN 'ARRAY' THEN json_transform(r.feature, '["VARCHAR"]')
            WHEN 'VARCHAR' THEN [r.feature ->> '$'] END AS features,
        CASE json_type(r.category)
            WHEN 'ARRAY' THEN json_transform(r.category, '["VARCHAR"]') END AS categories,
        r.main_cat ->> '$' AS main_category,
        r.brand ->> '$' AS store,
        CASE WHEN json_type(r.imageURLHighRes) = 'ARRAY'
            THEN json_transform(r.imageURLHighRes, '["VARCHAR"]')[1] END AS hi,
        CASE WHEN json_type(r.imageURL) = 'ARRAY'
            THEN json_transform(r.imageURL, '["VARCHAR"]')[1] END AS lo
    FROM parsed
)
SELECT
    asin, title,
    coalesce(description, []) AS description,
    coalesce(features, []) AS features,
    coalesce(categories, []) AS categories,
    main_category,
    nullif(coalesce(hi, lo), '') AS image_url,
    store,
    CASE
        WHEN r IS NULL THEN 'bad_json'
        WHEN asin IS NULL OR asin = '' THEN 'missing_item'
    END AS reject_reason,
    line AS raw
FROM typed
