-- Dialtone schema, version 1: the extension directory and persisted registrar bindings.

CREATE TABLE extensions (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    number            TEXT    NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    email             TEXT,
    -- SIP digest secret, plaintext: digest authentication needs the password itself.
    secret            TEXT    NOT NULL,
    enabled           INTEGER NOT NULL DEFAULT 1,
    context           TEXT    NOT NULL DEFAULT 'from-internal',
    transport         TEXT,
    -- Codec names in preference order, comma separated (ulaw,alaw,g722).
    codecs            TEXT    NOT NULL DEFAULT 'ulaw,alaw,g722',
    max_contacts      INTEGER NOT NULL DEFAULT 1,
    remove_existing   INTEGER NOT NULL DEFAULT 1,
    qualify_frequency INTEGER NOT NULL DEFAULT 60,
    caller_id         TEXT,
    voicemail_enabled INTEGER NOT NULL DEFAULT 0,
    voicemail_pin     TEXT,
    allow_external    INTEGER NOT NULL DEFAULT 0,
    is_admin          INTEGER NOT NULL DEFAULT 0,
    notes             TEXT,
    -- Unix seconds.
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- One row per (AOR, Contact) binding; rewritten in batches by the binding writer.
CREATE TABLE bindings (
    aor           TEXT    NOT NULL,
    contact       TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    transport     TEXT    NOT NULL,
    call_id       TEXT    NOT NULL,
    cseq          INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    user_agent    TEXT,
    instance      TEXT,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (aor, contact)
) WITHOUT ROWID;

CREATE INDEX bindings_expires_at ON bindings (expires_at);
