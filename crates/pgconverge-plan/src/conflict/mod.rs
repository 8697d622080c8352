//! Conflict-resolution objects (columns, tables, functions, triggers) generated per node.
