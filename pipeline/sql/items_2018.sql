-- Canonical items from Amazon 2018 metadata (view `lines`: JSON lines, or the elements of
-- one JSON array). High-resolution image first; `category` is the taxonomy path.
WITH docs AS (
    SELECT line, ok, CASE WHEN ok THEN line ELSE lone_surrogates_replaced(line) END AS doc
    FROM (SELECT line, json_valid(line) AS ok FROM lines WHERE line IS NOT NULL AND trim(line) <> '')
), parsed AS (
    SELECT
        line, doc, NOT ok AS repaired,
        CASE WHEN (ok OR json_valid(doc)) AND is_object_text(doc) THEN json_transform(doc, '{
            "asin": "JSON", "title": "JSON", "description": "JSON", "feature": "JSON",
            "category": "JSON", "main_cat": "JSON", "brand": "JSON",
            "imageURLHighRes": "JSON", "imageURL": "JSON"}') END AS r
    FROM docs
), typed AS (
    SELECT
        line, repaired, r,
        CASE WHEN r IS NOT NULL THEN json_keys(doc) END AS keys,
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
), checked AS (
    SELECT
        asin, title,
        coalesce(description, []) AS description,
        coalesce(features, []) AS features,
        coalesce(categories, []) AS categories,
        main_category,
        nullif(coalesce(hi, lo), '') AS image_url,
        store,
        item_reject_reason(r, keys, asin) AS reject_reason,
        line, repaired
    FROM typed
)
SELECT * EXCLUDE (line, repaired),
    CASE WHEN reject_reason IS NOT NULL THEN line END AS raw,
    repaired AND reject_reason IS NULL AS repaired
FROM checked
