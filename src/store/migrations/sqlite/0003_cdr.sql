-- Dialtone schema, version 3: call detail records (one row per call).

CREATE TABLE cdr (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id        TEXT    NOT NULL,
    from_extension TEXT    NOT NULL,
    to_extension   TEXT    NOT NULL,
    -- Unix milliseconds.
    start_time     INTEGER NOT NULL,
    answer_time    INTEGER,
    end_time       INTEGER NOT NULL,
    -- ANSWERED, NO ANSWER, BUSY, FAILED, CANCELLED (Asterisk's words).
    disposition    TEXT    NOT NULL,
    -- Seconds from start to end, and from answer to end.
    duration       INTEGER NOT NULL,
    billsec        INTEGER NOT NULL,
    recording_file TEXT,
    -- SIP status of the call's end, and who ended it (caller, callee, system).
    hangup_cause   INTEGER NOT NULL,
    hung_up_by     TEXT    NOT NULL
);

CREATE INDEX cdr_start_time ON cdr (start_time);
