-- Item quality rules. The first failing rule is the reject reason; a usable item has a
-- title, a description (the features list stands in when the description is empty, as
-- Amazon 2023 often has one and not the other) and an http(s) image URL.
CREATE OR REPLACE TEMP TABLE judged AS
WITH prepared AS (
    SELECT
        * EXCLUDE (description),
        list_filter(description, lambda d: length(trim(d)) > 0) AS description_raw,
        list_filter(features, lambda d: length(trim(d)) > 0) AS features_nonempty
    FROM read_parquet($items)
), described AS (
    SELECT
        * EXCLUDE (description_raw, features_nonempty),
        CASE WHEN len(description_raw) > 0 OR NOT $features_as_description THEN description_raw
             ELSE features_nonempty END AS description
    FROM prepared
)
SELECT
    *,
    CASE
        WHEN title IS NULL OR length(trim(title)) < $min_title_chars THEN 'no_title'
        WHEN length(array_to_string(description, ' ')) < $min_description_chars THEN 'no_description'
        -- $need_image false: a text-only build (pipeline/modality.py), no image expected
        WHEN $need_image AND (image_url IS NULL OR NOT regexp_matches(image_url, '^https?://'))
            THEN 'no_image'
    END AS reject_reason
FROM described
