//! Tokio shells: sockets, the core task, timers.
