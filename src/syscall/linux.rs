//! The real kernel backend (placeholder until the Linux backend lands).
