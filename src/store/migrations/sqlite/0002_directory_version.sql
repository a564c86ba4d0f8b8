-- Dialtone schema, version 2: a change counter for the extension directory, bumped by
-- triggers, so a running server notices edits made by another process (the CLI).

CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0);

CREATE TRIGGER extensions_ins AFTER INSERT ON extensions
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER extensions_upd AFTER UPDATE ON extensions
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER extensions_del AFTER DELETE ON extensions
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
