//! config.yml: schema, loading, validation.
