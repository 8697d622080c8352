//! Triggers of the conflict machinery: created when missing, replaced when their function,
//! firing or definition differs, dropped when pgconverge created them and they are no longer
//! wanted. Definitions are compared by what the planner controls, as the server prints them.

use std::collections::BTreeSet;

use pgconverge_model::catalog::{QualifiedName, TriggerCatalog};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::TriggerDef;
use crate::diff::NodeDiffInput;
use crate::statement::Statement;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out: Vec<Change> = input
        .desired
        .triggers
        .iter()
        .filter_map(|t| {
            let live = input
                .observed
                .tables
                .get(&t.table)
                .and_then(|table| table.triggers.iter().find(|lt| lt.name == t.name));
            match live {
                None => Some(input.change(
                    address(&t.table, &t.name),
                    Action::Create,
                    t.create_sql.iter().map(Statement::sql).collect(),
                )),
                Some(lt) => replaced(input, t, lt),
            }
        })
        .collect();
    out.extend(dropped(input));
    out
}

fn address(table: &QualifiedName, name: &str) -> ObjectAddress {
    ObjectAddress::Trigger {
        table: table.clone(),
        name: name.to_string(),
    }
}

/// The replacement of a live trigger whose function, firing or definition differs.
fn replaced(input: &NodeDiffInput<'_>, t: &TriggerDef, lt: &TriggerCatalog) -> Option<Change> {
    let firing_differs = lt.enabled != t.enabled.tgenabled();
    if lt.function == t.function && !firing_differs && trigger_definition_matches(&lt.definition, t)
    {
        return None;
    }
    let mut statements = vec![Statement::sql(&t.drop_sql)];
    statements.extend(t.create_sql.iter().map(Statement::sql));
    let mut c = input.change(address(&t.table, &t.name), Action::Replace, statements);
    c.reason = Some(if firing_differs {
        format!("firing {} → {}", lt.enabled, t.enabled.tgenabled())
    } else {
        "definition differs".into()
    });
    Some(c)
}

/// Triggers pgconverge created that are no longer wanted.
fn dropped(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let desired: BTreeSet<(&QualifiedName, &str)> = input
        .desired
        .triggers
        .iter()
        .map(|t| (&t.table, t.name.as_str()))
        .collect();
    let mut out = Vec::new();
    for (table, live) in &input.observed.tables {
        for lt in &live.triggers {
            let address = address(table, &lt.name);
            if !desired.contains(&(table, lt.name.as_str())) && input.manages(&address) {
                out.push(input.change(
                    address,
                    Action::Delete,
                    vec![Statement::sql(ddl::drop_trigger_sql(table, &lt.name))],
                ));
            }
        }
    }
    out
}

/// Compares the parts of `pg_get_triggerdef` that the planner controls: timing and events.
fn trigger_definition_matches(live: &str, desired: &TriggerDef) -> bool {
    let wanted = desired
        .create_sql
        .first()
        .map(|sql| trigger_shape(sql))
        .unwrap_or_default();
    trigger_shape(live) == wanted
        && live_trigger_condition(live).map(comparable_condition)
            == desired.when.as_deref().map(comparable_condition)
}

/// The `WHEN` condition of a `pg_get_triggerdef` definition: what follows `FOR EACH ROW WHEN`
/// up to the last `EXECUTE FUNCTION`.
fn live_trigger_condition(definition: &str) -> Option<&str> {
    let after_level = definition
        .find(" FOR EACH ROW ")
        .map(|at| &definition[at + " FOR EACH ROW ".len()..])?;
    let condition = after_level.strip_prefix("WHEN ")?;
    let end = condition.rfind(" EXECUTE FUNCTION ")?;
    Some(&condition[..end])
}

/// A condition without what the server adds when it prints one back: parentheses, spacing
/// and the `::text` cast of string literals compared with a text column. Escape-string
/// literals (`E'a\\b'`, as `quote_literal` writes a value with a backslash) are spelled
/// the standard way the server prints them (`'a\b'`).
fn comparable_condition(condition: &str) -> String {
    pgconverge_sql::standard_string_literals(condition)
        .replace("::text", "")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')')
        .collect()
}

/// Timing, events (in a fixed order: PostgreSQL prints them its own way) and level of a
/// trigger definition, without names.
fn trigger_shape(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let pick = |set: &[&str]| {
        let mut found: Vec<&str> = words.iter().copied().filter(|w| set.contains(w)).collect();
        found.sort_unstable();
        found.dedup();
        found.join(" ")
    };
    [
        pick(&["BEFORE", "AFTER", "INSTEAD"]),
        pick(&["INSERT", "UPDATE", "DELETE", "TRUNCATE"]),
        pick(&["ROW", "STATEMENT"]),
    ]
    .join(" ")
}

pub(super) mod ddl {
    use pgconverge_model::catalog::QualifiedName;

    use crate::diff::table_sql_name;
    use pgconverge_sql::quote_ident;

    pub fn drop_trigger_sql(table: &QualifiedName, trigger: &str) -> String {
        format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            quote_ident(trigger),
            table_sql_name(table)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgconverge_sql::quote_literal;

    #[test]
    fn trigger_shapes_ignore_names_and_quoting() {
        assert_eq!(
            trigger_shape("CREATE TRIGGER x BEFORE INSERT OR UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION f()"),
            "BEFORE INSERT UPDATE ROW"
        );
        assert_eq!(
            trigger_shape("CREATE TRIGGER x AFTER INSERT OR DELETE OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()"),
            trigger_shape("CREATE TRIGGER x AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION f()"),
        );
    }

    #[test]
    fn trigger_conditions_compare_as_the_server_prints_them() {
        let printed = "CREATE TRIGGER \"_pgc_apply_t_1\" BEFORE INSERT ON _pgconverge.changes \
            FOR EACH ROW WHEN ((new.tbl = '\"public\".\"t\"'::text)) \
            EXECUTE FUNCTION _pgconverge.\"apply_t_1\"()";
        let condition = live_trigger_condition(printed);
        assert_eq!(condition, Some("((new.tbl = '\"public\".\"t\"'::text))"));
        assert_eq!(
            condition.map(comparable_condition),
            Some(comparable_condition("new.tbl = '\"public\".\"t\"'"))
        );
        assert_ne!(
            condition.map(comparable_condition),
            Some(comparable_condition("new.tbl = '\"public\".\"u\"'"))
        );
        let unconditional = "CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()";
        assert_eq!(live_trigger_condition(unconditional), None);
    }

    #[test]
    fn escape_string_conditions_compare_with_what_the_server_prints() {
        // quote_literal of `"public"."a\b"` and the server's printing of the same value.
        let desired = format!("new.tbl = {}", quote_literal("\"public\".\"a\\b\""));
        assert!(desired.contains("E'"), "{desired}");
        let printed = "CREATE TRIGGER x BEFORE INSERT ON _pgconverge.changes FOR EACH ROW \
            WHEN ((new.tbl = '\"public\".\"a\\b\"'::text)) EXECUTE FUNCTION f()";
        assert_eq!(
            live_trigger_condition(printed).map(comparable_condition),
            Some(comparable_condition(&desired))
        );
        // Doubled quotes inside stay doubled; a value that differs still differs.
        let quoted = format!("new.tbl = {}", quote_literal("it's \\ here"));
        assert_eq!(
            comparable_condition(&quoted),
            comparable_condition("new.tbl = 'it''s \\ here'::text")
        );
        assert_ne!(
            comparable_condition(&desired),
            comparable_condition("new.tbl = '\"public\".\"a\\\\b\"'::text")
        );
    }
}
