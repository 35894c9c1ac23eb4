-- Macros shared by the staging queries (reviews_*.sql, items_*.sql): one definition of each
-- reject reason, whatever the dump's format. Loaded once per connection by ingest.

-- A line that is not valid JSON only because of a lone UTF-16 surrogate escape (\ud800 with
-- no low half, or a low half alone): each lone one becomes \ufffd, a valid pair stays. Pairs
-- are parked behind chr(30) first (a raw control character cannot be in valid JSON, so the
-- marker cannot clash with a line that would otherwise parse), RE2 having no lookaround.
CREATE OR REPLACE MACRO lone_surrogates_replaced(s) AS regexp_replace(regexp_replace(regexp_replace(s,
    '\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})', chr(30) || '\1\2', 'g'),
    '\\u[dD][89a-fA-F][0-9a-fA-F]{2}', '\\ufffd', 'g'),
    chr(30) || '([0-9a-fA-F]{4})([0-9a-fA-F]{4})', '\\u\1\\u\2', 'g');

-- Valid JSON text that is an object: its first non-blank character is `{` (no second parse,
-- unlike json_type).
CREATE OR REPLACE MACRO is_object_text(doc) AS ltrim(doc, ' ' || chr(9) || chr(10) || chr(13))[1] = '{';

-- An object that names a top-level key twice (`keys`: its json_keys): DuckDB would silently
-- keep the first value.
CREATE OR REPLACE MACRO has_duplicate_key(keys) AS list_unique(keys) <> len(keys);

-- The raw JSON value of an id is a string or an integer (NULL: absent).
CREATE OR REPLACE MACRO bad_id_type(v) AS json_type(v) NOT IN ('VARCHAR', 'BIGINT', 'UBIGINT');

-- Why a staged review is rejected (NULL: kept). `r`: the parsed struct (NULL: not a JSON
-- object); keys: its top-level keys; raw_*: raw JSON values; other_user: the other format's user id (a 2018 line in a
-- 2023 file, or the reverse); user_id .. ts: the typed values.
CREATE OR REPLACE MACRO review_reject_reason(
    r, keys, raw_user, raw_item, raw_rating, raw_ts, other_user, user_id, asin, rating, ts
) AS CASE
    WHEN r IS NULL THEN 'bad_json'
    WHEN has_duplicate_key(keys) THEN 'duplicate_key'
    WHEN raw_user IS NULL AND other_user IS NOT NULL THEN 'other_format'
    WHEN bad_id_type(raw_user) THEN 'wrong_type:user_id'
    WHEN raw_item IS NOT NULL AND bad_id_type(raw_item) THEN 'wrong_type:asin'
    WHEN user_id IS NULL OR user_id = '' THEN 'missing_user'
    WHEN asin IS NULL OR asin = '' THEN 'missing_item'
    WHEN rating IS NULL AND raw_rating IS NOT NULL AND json_type(raw_rating) <> 'NULL'
        THEN 'wrong_type:rating'
    WHEN NOT isfinite(rating) THEN 'bad_rating'
    WHEN ts IS NULL AND raw_ts IS NOT NULL AND json_type(raw_ts) <> 'NULL'
        THEN 'wrong_type:timestamp'
END;

-- Why a staged item is rejected (NULL: kept).
CREATE OR REPLACE MACRO item_reject_reason(r, keys, asin) AS CASE
    WHEN r IS NULL THEN 'bad_json'
    WHEN has_duplicate_key(keys) THEN 'duplicate_key'
    WHEN asin IS NULL OR asin = '' THEN 'missing_item'
END;
