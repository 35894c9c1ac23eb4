-- Amazon 2018 metadata (view `docs`, json_docs.sql: JSON lines, or the elements of one JSON
-- array) -> view `item_typed`, which items_checked.sql turns into canonical items.
-- High-resolution image first; `category` is the taxonomy path.
CREATE OR REPLACE TEMP VIEW item_typed AS
WITH parsed AS (
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
), with_image AS (
    SELECT * EXCLUDE (hi, lo), nullif(coalesce(hi, lo), '') AS image_url FROM typed
)
SELECT * FROM with_image
