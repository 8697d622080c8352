//! Normalisation of PostgreSQL type names and default expressions, so config spellings
//! (`int`, `varchar(20)`, `timestamptz`) compare equal to what `format_type` prints.
