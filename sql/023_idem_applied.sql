-- An action's Idempotency-Key record learns, in the action's own
-- transaction, that the change committed (issue 26): a retry whose first
-- attempt's reply was lost (the service died, or the primary failed over
-- between COMMIT and the stored reply) is answered with the case instead
-- of running the action again against a case that has moved on (412).
ALTER TABLE idempotency_keys
    ADD COLUMN applied_case text,
    ADD COLUMN applied_version integer;
