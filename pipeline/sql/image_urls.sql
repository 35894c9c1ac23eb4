-- Image-URL lists (SQID's product_image_urls.csv / supp_product_image_urls.csv; view
-- `image_url_rows`: file_no, row_no, product_id, image_url) judged row by row: the first
-- failing rule is the reject reason. A URL on the registry's placeholder list
-- ($patterns, shell patterns as pipeline/images/config.py PLACEHOLDER_URLS) is refused by
-- rule, unfetched. A product listed several times keeps its first good URL (file order,
-- then row order), the rest are counted as duplicate_product.
CREATE OR REPLACE TEMP TABLE image_urls_judged AS
WITH typed AS (
    SELECT file_no, row_no, trim(product_id) AS product_id, trim(image_url) AS url
    FROM image_url_rows
), judged AS (
    SELECT
        *,
        CASE
            WHEN product_id IS NULL OR product_id = '' THEN 'missing_product_id'
            WHEN url IS NULL OR url = '' THEN 'missing_url'
            WHEN NOT regexp_matches(url, '^https?://') THEN 'bad_url'
            WHEN len(list_filter($patterns, lambda p: url GLOB p)) > 0 THEN 'placeholder_url'
        END AS reason
    FROM typed
)
SELECT
    *
    REPLACE (
        CASE
            WHEN reason IS NOT NULL THEN reason
            WHEN row_number() OVER (
                PARTITION BY product_id, reason IS NULL ORDER BY file_no, row_no
            ) > 1 THEN 'duplicate_product'
        END AS reason
    )
FROM judged;

-- The items (view `items_keyed`: the items plus key_value, the asin or M2's bare item_id) with
-- the image URL from the lists where theirs is not usable (missing, not http(s), or a
-- placeholder), or always with $prefer. used_list: whether the URL came from a list.
CREATE OR REPLACE TEMP TABLE items_with_urls AS
WITH good AS (
    SELECT product_id, url FROM image_urls_judged WHERE reason IS NULL
), items AS (
    SELECT
        *,
        image_url IS NOT NULL AND regexp_matches(image_url, '^https?://')
            AND len(list_filter($patterns, lambda p: image_url GLOB p)) = 0 AS usable
    FROM items_keyed
)
SELECT
    items.* EXCLUDE (usable, key_value) REPLACE (
        CASE
            WHEN good.url IS NOT NULL AND ($prefer OR NOT usable) THEN good.url
            ELSE items.image_url
        END AS image_url
    ),
    good.url IS NOT NULL AND ($prefer OR NOT usable) AS used_list
FROM items
LEFT JOIN good ON good.product_id = items.key_value
ORDER BY items.asin;
