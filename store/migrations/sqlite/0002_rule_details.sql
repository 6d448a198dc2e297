-- What a rule carries besides its pattern: where it came from, and the
-- checks that drop matches which are not leaks (gitleaks' secretGroup,
-- entropy, keywords and allowlists; validators such as Luhn).
ALTER TABLE regexes ADD COLUMN source         TEXT    NOT NULL DEFAULT ''; -- builtin:NAME, gitleaks:ID, file:NAME
ALTER TABLE regexes ADD COLUMN validator      TEXT    NOT NULL DEFAULT ''; -- luhn, iban, us-ssn, jwt
ALTER TABLE regexes ADD COLUMN secret_group   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE regexes ADD COLUMN entropy        REAL    NOT NULL DEFAULT 0;  -- minimum Shannon entropy of the secret
ALTER TABLE regexes ADD COLUMN keywords       TEXT    NOT NULL DEFAULT ''; -- one per line; one must occur (any case)
ALTER TABLE regexes ADD COLUMN allow_patterns TEXT    NOT NULL DEFAULT ''; -- one per line; a secret matching one is not a leak
ALTER TABLE regexes ADD COLUMN stopwords      TEXT    NOT NULL DEFAULT ''; -- one per line; a secret containing one is not a leak
