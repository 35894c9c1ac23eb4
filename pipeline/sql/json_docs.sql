-- The JSON formats (reviews_20xx.sql, items_20xx.sql) read view `lines` through this one: a
-- line that is valid JSON but for a lone surrogate escape is repaired (U+FFFD, the macro in
-- ingest_macros.sql) and keeps `ok = false`, so the staging query can count it.
CREATE OR REPLACE TEMP VIEW docs AS
SELECT line, ok, CASE WHEN ok THEN line ELSE lone_surrogates_replaced(line) END AS doc
FROM (SELECT line, json_valid(line) AS ok FROM lines WHERE line IS NOT NULL AND trim(line) <> '')
