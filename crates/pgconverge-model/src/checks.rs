//! The names of CHECK constraints: given in the config, or derived as PostgreSQL derives them.

use crate::config::{CheckConfig, TableConfig, TypeConfig};
use crate::types::expression_names;

/// The name of each of a table's checks, in config order. An unnamed check is called as
/// PostgreSQL would call it: `<table>_<column>_check` when its expression mentions exactly one
/// of the table's columns, `<table>_check` otherwise, with `1`, `2`, … appended when that
/// name is taken by an earlier check. A derived name may be longer than 63 bytes (validation
/// says so; PostgreSQL would cut it).
pub fn table_check_names(table: &TableConfig) -> Vec<String> {
    derived_names(&table.checks, |check| {
        let columns: Vec<String> = expression_names(&check.expression)
            .into_iter()
            .filter(|name| table.column(name).is_some())
            .collect();
        match columns.as_slice() {
            [column] => format!("{}_{column}_check", table.name),
            _ => format!("{}_check", table.name),
        }
    })
}

/// The name of each of a domain's checks: unnamed ones are `<domain>_check`, numbered when
/// taken, as PostgreSQL names them.
pub fn domain_check_names(domain: &TypeConfig) -> Vec<String> {
    derived_names(&domain.checks, |_| format!("{}_check", domain.name))
}

fn derived_names(checks: &[CheckConfig], base: impl Fn(&CheckConfig) -> String) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for check in checks {
        let name = match &check.name {
            Some(name) => name.clone(),
            None => {
                let base = base(check);
                let taken = |n: &String| {
                    names.contains(n) || checks.iter().any(|c| c.name.as_ref() == Some(n))
                };
                let mut name = base.clone();
                let mut counter = 0;
                while taken(&name) {
                    counter += 1;
                    name = format!("{base}{counter}");
                }
                name
            }
        };
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ColumnConfig, TableConfig};

    fn table(checks: &[(Option<&str>, &str)]) -> TableConfig {
        let column = |name: &str| ColumnConfig {
            name: name.into(),
            data_type: "numeric".into(),
            nullable: true,
            default: None,
            renamed_from: None,
            identity: None,
            generated: None,
        };
        TableConfig {
            name: "items".into(),
            schema: "public".into(),
            columns: vec![column("id"), column("price"), column("Cost")],
            primary_key: vec!["id".into()],
            unique: Vec::new(),
            foreign_keys: Vec::new(),
            indexes: Vec::new(),
            checks: checks
                .iter()
                .map(|(name, expression)| CheckConfig {
                    name: name.map(str::to_string),
                    expression: expression.to_string(),
                })
                .collect(),
            conflict: Default::default(),
            legacy_columns: Default::default(),
            dropped_columns: Vec::new(),
            partition_by: None,
            partitions: Vec::new(),
            dropped_partitions: Vec::new(),
        }
    }

    #[test]
    fn unnamed_checks_are_named_as_postgres_names_them() {
        let t = table(&[
            (None, "price >= 0"),
            (None, "price < 1000000 AND abs(price) = price"),
            (None, "price > \"Cost\""),
            (Some("items_check"), "id > 0"),
            (None, "\"Cost\" >= 0"),
            (None, "true"),
        ]);
        assert_eq!(
            table_check_names(&t),
            [
                "items_price_check",
                "items_price_check1",
                "items_check1",
                "items_check",
                "items_Cost_check",
                "items_check2",
            ]
        );
    }
}
