-- gitleaks-style allowlists of a rule, as JSON: each with what its regexes
-- are matched against (the secret, the whole match or the message line) and
-- whether all its parts must hold. '' means none.
ALTER TABLE regexes ADD COLUMN allowlists TEXT NOT NULL DEFAULT '';
