-- Dialtone schema, version 5: pjsip.conf compatibility.
-- Endpoint options of an extension (defaults are Asterisk's), the options Dialtone keeps
-- verbatim for export (JSON), and the other pjsip objects of an imported pjsip.conf
-- (transports, global, trunks, identify, registration, ...).

ALTER TABLE extensions ADD COLUMN direct_media         INTEGER NOT NULL DEFAULT 1;
ALTER TABLE extensions ADD COLUMN rtp_symmetric        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE extensions ADD COLUMN force_rport          INTEGER NOT NULL DEFAULT 1;
ALTER TABLE extensions ADD COLUMN rewrite_contact      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE extensions ADD COLUMN dtmf_mode            TEXT    NOT NULL DEFAULT 'rfc4733';
ALTER TABLE extensions ADD COLUMN mailboxes            TEXT;
ALTER TABLE extensions ADD COLUMN subscribe_context    TEXT;
ALTER TABLE extensions ADD COLUMN device_state_busy_at INTEGER NOT NULL DEFAULT 0;
-- JSON object: {"endpoint": [[k, v], ...], "auth": [...], "aor": [...], "transport_name": ..., "comments": [...]}
ALTER TABLE extensions ADD COLUMN pjsip_extra          TEXT    NOT NULL DEFAULT '{}';

CREATE TABLE pjsip_objects (
    kind     TEXT    NOT NULL,
    name     TEXT    NOT NULL,
    -- Export order.
    position INTEGER NOT NULL,
    -- JSON array of [key, value] pairs, in order, repeats kept.
    options  TEXT    NOT NULL,
    -- JSON array of comment lines written before the section.
    comments TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

CREATE TRIGGER pjsip_objects_ins AFTER INSERT ON pjsip_objects
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pjsip_objects_upd AFTER UPDATE ON pjsip_objects
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER pjsip_objects_del AFTER DELETE ON pjsip_objects
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
