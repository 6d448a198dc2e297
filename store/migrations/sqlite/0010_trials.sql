-- Trial rules (regex add --trial): a rule in trial is stored in monitor and
-- switched to delete when trial_until (unix ms) has passed; 0 means no trial.
ALTER TABLE regexes ADD COLUMN trial_until INTEGER NOT NULL DEFAULT 0;
