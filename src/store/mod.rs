//! Persistent store (sqlx; SQLite by default) behind the `Store` trait.
