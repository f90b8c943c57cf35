-- Rasa's tracker store gets its own database beside the reports database (POSTGRES_DB):
-- the purge job reads both, nothing joins them. Run once, when the data volume is new.
CREATE DATABASE rasa OWNER hotline;
