-- cases_shop_sku_idx served the batch-defect count until 008 gave that
-- count its own partial index (cases_sku_quality_idx); no statement has
-- used it since. Every create and every transition of a case (a non-HOT
-- update) paid for it with an index insert.
DROP INDEX IF EXISTS cases_shop_sku_idx;
