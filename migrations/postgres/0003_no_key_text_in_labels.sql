-- Keys were once labelled by their first 8 characters (key_prefix), and a key
-- created without a name was called "key-" and that label, a name the history
-- copied as the user of its promotions. For a key the caller chose, those
-- characters are part of a secret (all of it, for a chosen key of 8 characters).
-- A stored row cannot tell a chosen key from a generated one, so every label is
-- replaced by the start of the key's hash, and so are default names, in the
-- keys and in the history rows that copied them.
UPDATE promotions
SET user_name = (SELECT 'key-sha256:' || substr(k.key_hash, 1, 8) FROM api_keys k WHERE k.id = promotions.api_key_id)
WHERE EXISTS (
    SELECT 1 FROM api_keys k
    WHERE k.id = promotions.api_key_id
      AND k.name = 'key-' || k.key_prefix
      AND promotions.user_name = k.name
);

UPDATE api_keys
SET name = CASE WHEN name = 'key-' || key_prefix THEN 'key-sha256:' || substr(key_hash, 1, 8) ELSE name END,
    key_prefix = 'sha256:' || substr(key_hash, 1, 8);
