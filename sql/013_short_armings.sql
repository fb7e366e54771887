-- The scheduler refills its timer wheel with only what is new (src/sla.c):
-- deadlines that time brings into its 30 s horizon come from
-- case_deadlines_due_idx; deadlines armed (inserted, or re-armed by an
-- ON CONFLICT update, both setting armed_at = now()) so close to their
-- due_at that they land inside the horizon at once are found here, by
-- armed_at. The predicate keeps every ordinary arming (hours to days) out
-- of the index, so a create or an action that arms a 5-day deadline only
-- evaluates it and writes no index entry; only short armings (tests,
-- tiny policy durations) are indexed. It must stay word for word the
-- condition of store_due_refill's third part (STORE_SHORT_ARMING_MS).
CREATE INDEX case_deadlines_short_idx ON case_deadlines (armed_at)
    WHERE due_at - armed_at < interval '5 minutes';
