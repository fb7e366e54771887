-- Adjudication inputs: the buyer's recent history, found by indexed queries.

-- The same complaint text sent to several shops is a risk signal; compare a
-- normalised hash (case and runs of white space do not matter).
ALTER TABLE cases ADD COLUMN description_hash text
    GENERATED ALWAYS AS (md5(lower(regexp_replace(description, '\s+', ' ', 'g')))) STORED;
CREATE INDEX cases_description_hash_idx ON cases (description_hash, created_at);
