-- The stats update trigger compares the decision's severity only for a
-- complaint. 027's WHEN read OLD.decision->>'severity' and NEW's on every
-- case update that changed nothing else it watches, which is most of them
-- (a note, a message, an offer on an open case): decision is json, so each
-- read parses the whole text (about 1.7 kB for a refund), twice per update.
-- Severity counts only in the major_complaints gauge, and only for kind =
-- 'complaint' (arbiter_stats_gauge_rows, 027); a change of kind is caught
-- by the kind term before it, so skipping the comparison for other kinds
-- changes no count. Notes/s, 030's WHEN over 027's, median of alternating
-- rounds: tests/bench/stats_when.py.
DROP TRIGGER cases_stats_update ON cases;
CREATE TRIGGER cases_stats_update AFTER UPDATE ON cases
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.outcome IS DISTINCT FROM NEW.outcome
          OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.reason IS DISTINCT FROM NEW.reason
          OR OLD.sku IS DISTINCT FROM NEW.sku
          OR OLD.manual_review IS DISTINCT FROM NEW.manual_review
          OR (NEW.kind = 'complaint'
              AND (OLD.decision->>'severity') IS DISTINCT FROM (NEW.decision->>'severity'))
          -- not the service's writes: a repair, a test's backdating
          OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.shop_id IS DISTINCT FROM NEW.shop_id
          OR (NEW.state IN ('refunded', 'closed') AND OLD.updated_at IS DISTINCT FROM NEW.updated_at))
    EXECUTE FUNCTION arbiter_stats_on_case();
