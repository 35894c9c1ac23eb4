-- Distinct (user, item) purchases. Items get dense integer ids in asin order, so `i < j` on
-- ids is `asin_i < asin_j` (the published src_asin < dst_asin comes free) and a pair packs
-- into one BIGINT. Users keep their own ids: mapping millions of them costs a sort and
-- buys little, as they are only ever a join key. `purchases` is a view over the canonical
-- reviews (restricted to usable items when metadata was given).
CREATE OR REPLACE TEMP TABLE item_ids AS
SELECT asin, (row_number() OVER (ORDER BY asin) - 1)::INTEGER AS iid
FROM (SELECT DISTINCT asin FROM purchases);

CREATE OR REPLACE TEMP TABLE bp AS
SELECT DISTINCT p.user_id AS uid, i.iid
FROM purchases p JOIN item_ids i USING (asin);
