-- One row per good session of the staged M2 sessions (view `m2_staged`: the rows of
-- m2_sessions.sql without rejects): its id, market, items in order (prev_items) and the
-- next item (NULL for the test files), for next-item tasks.
SELECT
    user_id AS session_id,
    any_value(locale) AS locale,
    list(asin ORDER BY position) FILTER (WHERE NOT is_next) AS items,
    any_value(asin) FILTER (WHERE is_next) AS next_item,
    any_value(row_no) AS row_no
FROM m2_staged
GROUP BY user_id
ORDER BY split_part(session_id, ':', 1), row_no
