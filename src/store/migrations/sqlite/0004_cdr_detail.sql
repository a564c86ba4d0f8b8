-- Dialtone schema, version 4: CDR detail — Q.850 cause, negotiated codecs, per-leg RTP stats.
-- Leg a is the caller's side, leg b the callee's; stats count what the relay received from
-- that leg's phone.

ALTER TABLE cdr ADD COLUMN q850_cause     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN codec_a        TEXT;
ALTER TABLE cdr ADD COLUMN codec_b        TEXT;
ALTER TABLE cdr ADD COLUMN a_packets      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN a_bytes        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN a_lost         INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN a_jitter_ms    REAL    NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN b_packets      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN b_bytes        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN b_lost         INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN b_jitter_ms    REAL    NOT NULL DEFAULT 0;
