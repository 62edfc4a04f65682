//! The kernel model backend (placeholder until the model lands).
