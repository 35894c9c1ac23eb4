-- Canonical items of an Amazon-M2 products_train.csv (view `m2_product_rows`: row_no and
-- the file's columns id, locale, title, price, brand, color, size, model, material, author,
-- desc, all text; desc is named description_raw there, DESC being an SQL keyword). The
-- columns of pipeline/ingest.py's items come first (description is desc as a one-element
-- list; M2 has no taxonomy and no image: categories [], image_url NULL; store is the
-- brand), then M2's own. The same id may be listed in several locales: the asin is the bare
-- id when one market is selected ($bare), else '<LOCALE>:<id>'.
-- Parameters: $locales (the selected markets), $bare.
WITH typed AS (
    SELECT
        *,
        trim(id) AS item_id,
        upper(trim(locale)) AS loc,
        nullif(trim(description_raw), '') AS description_text,
        TRY_CAST(price AS DOUBLE) AS price_value
    FROM m2_product_rows
), judged AS (
    SELECT
        *,
        CASE
            WHEN item_id IS NULL OR item_id = '' THEN 'missing_item'
            WHEN NOT regexp_full_match(item_id, '[A-Za-z0-9]+') THEN 'bad_item_id'
            WHEN loc IS NULL OR loc = '' THEN 'missing_locale'
            WHEN loc NOT IN ('DE', 'ES', 'FR', 'IT', 'JP', 'UK') THEN 'unknown_locale'
            WHEN price_value IS NULL AND coalesce(trim(price), '') <> '' THEN 'wrong_type:price'
            WHEN NOT list_contains($locales, loc) THEN 'other_locale'
        END AS reject_reason
    FROM typed
)
SELECT
    CASE
        WHEN reject_reason IS NOT NULL THEN NULL
        WHEN $bare THEN item_id
        ELSE loc || ':' || item_id
    END AS asin,
    nullif(trim(title), '') AS title,
    CASE WHEN description_text IS NULL THEN [] ELSE [description_text] END AS description,
    CAST([] AS VARCHAR[]) AS features,
    CAST([] AS VARCHAR[]) AS categories,
    CAST(NULL AS VARCHAR) AS main_category,
    CAST(NULL AS VARCHAR) AS image_url,
    nullif(trim(brand), '') AS store,
    item_id,
    loc AS locale,
    price_value AS price,
    nullif(trim(brand), '') AS brand,
    nullif(trim(color), '') AS color,
    nullif(trim(size), '') AS size,
    nullif(trim(model), '') AS model,
    nullif(trim(material), '') AS material,
    nullif(trim(author), '') AS author,
    row_no,
    reject_reason,
    CASE WHEN reject_reason IS NOT NULL AND reject_reason <> 'other_locale' THEN
        array_to_string(list_transform(
            [id, locale, title, price, brand, color, size, model, material, author,
             description_raw], lambda x: coalesce(x, '')), ',') END AS raw
FROM judged
ORDER BY row_no
