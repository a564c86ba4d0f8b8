//! REST API (axum).
