//! Test support: starts real PostgreSQL servers for integration tests.
