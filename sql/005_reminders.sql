-- When each deadline was armed: a reminder never comes before half of the
-- deadline's time has passed (a 4-hour complaint deadline with a 24-hour
-- reminder would otherwise remind at once).
ALTER TABLE case_deadlines ADD COLUMN armed_at timestamptz NOT NULL DEFAULT now();
