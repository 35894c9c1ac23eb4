-- Canonical rows of one Amazon-M2 sessions file (view `m2_rows`: row_no, prev_items,
-- next_item, locale; see pipeline/sources/m2.py). prev_items is a numpy-printed list of
-- item ids in one field: "['B09W9FND7K' 'B09JSPLN1M']", space (or comma) separated,
-- possibly wrapped over lines. A good session gives one row per item: its prev_items at
-- positions 0..n-1, then next_item (is_next) when the file has one. A bad session gives one
-- row with its reject_reason and the raw fields. The review columns (rating ... text) make
-- the rows a drop-in for the staged reviews of pipeline/ingest.py: the session is the "user".
-- Parameters: $prefix (session ids are '<prefix>:<row_no>'), $locales (the selected
-- markets), $bare (one market selected: the asin is the bare id, else '<LOCALE>:<id>'),
-- $has_next (a train file, with next_item).
WITH typed AS (
    SELECT
        row_no,
        prev_items,
        next_item,
        locale,
        upper(trim(locale)) AS loc,
        trim(next_item) AS nxt,
        regexp_extract_all(prev_items, '''([A-Za-z0-9]+)''', 1) AS items
    FROM m2_rows
), judged AS (
    SELECT
        *,
        CASE
            WHEN prev_items IS NULL OR trim(prev_items) = '' THEN 'missing_prev_items'
            -- numpy summarises arrays of more than 1000 items with '...': ids are lost
            WHEN contains(prev_items, '...') THEN 'truncated_list'
            WHEN NOT regexp_full_match(prev_items, '\s*\[\s*(''[A-Za-z0-9]+''[\s,]*)*\]\s*')
                THEN 'bad_list'
            WHEN len(items) = 0 THEN 'empty_session'
            WHEN loc IS NULL OR loc = '' THEN 'missing_locale'
            WHEN loc NOT IN ('DE', 'ES', 'FR', 'IT', 'JP', 'UK') THEN 'unknown_locale'
            WHEN $has_next AND (nxt IS NULL OR nxt = '') THEN 'missing_next_item'
            WHEN $has_next AND NOT regexp_full_match(nxt, '[A-Za-z0-9]+') THEN 'bad_next_item'
            WHEN NOT list_contains($locales, loc) THEN 'other_locale'
        END AS reject_reason
    FROM typed
), good AS (
    SELECT
        row_no,
        loc,
        CASE WHEN $has_next THEN list_append(items, nxt) ELSE items END AS seq
    FROM judged
    WHERE reject_reason IS NULL
), items AS (
    -- two lists of one length unnest side by side: item i and its position i
    SELECT row_no, loc, unnest(seq) AS item_id, unnest(range(len(seq))) AS position,
           len(seq) AS n
    FROM good
)
SELECT
    $prefix || ':' || row_no AS user_id,
    CASE WHEN $bare THEN item_id ELSE loc || ':' || item_id END AS asin,
    CAST(NULL AS DOUBLE) AS rating,
    CAST(NULL AS BIGINT) AS ts,
    CAST(NULL AS BOOLEAN) AS verified,
    CAST(0 AS BIGINT) AS helpful_votes,
    CAST(NULL AS VARCHAR) AS title,
    CAST(NULL AS VARCHAR) AS text,
    item_id,
    CAST(position AS BIGINT) AS position,
    loc AS locale,
    $has_next AND position = n - 1 AS is_next,
    row_no,
    CAST(NULL AS VARCHAR) AS reject_reason,
    CAST(NULL AS VARCHAR) AS raw
FROM items
UNION ALL
SELECT
    $prefix || ':' || row_no, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL,
    loc, NULL, row_no, reject_reason,
    -- other_locale is a selection, not a fault: no raw sample kept
    CASE WHEN reject_reason <> 'other_locale' THEN
        array_to_string(
            list_transform([prev_items, next_item, locale], lambda x: coalesce(x, '')), ','
        ) END
FROM judged
WHERE reject_reason IS NOT NULL
ORDER BY row_no, position
