-- Distinct (user, item) purchases as dense integers. Item ids follow asin order, so
-- `i < j` on ids is `asin_i < asin_j` and the published src_asin < dst_asin comes free.
-- `purchases` is a view over the canonical reviews (restricted to usable items when
-- metadata was given).
CREATE OR REPLACE TEMP TABLE bp_text AS
SELECT DISTINCT user_id, asin FROM purchases;

CREATE OR REPLACE TEMP TABLE item_ids AS
SELECT asin, (row_number() OVER (ORDER BY asin) - 1)::INTEGER AS iid
FROM (SELECT DISTINCT asin FROM bp_text);

CREATE OR REPLACE TEMP TABLE user_ids AS
SELECT user_id, (row_number() OVER (ORDER BY user_id) - 1)::INTEGER AS uid
FROM (SELECT DISTINCT user_id FROM bp_text);

CREATE OR REPLACE TEMP TABLE bp AS
SELECT u.uid, i.iid
FROM bp_text b JOIN user_ids u USING (user_id) JOIN item_ids i USING (asin);
