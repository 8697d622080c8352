//! SQL statements as plan values: text plus the one kind of secret a plan may need (a peer's
//! password inside a subscription's connection string), kept as a reference so plans, plan
//! files and logs never hold it.

use serde::{Deserialize, Serialize};

use pgconverge_sql::{quote_conninfo_value, quote_literal, REDACTED};

/// One SQL statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Literal SQL text, already quoted where needed.
    Sql(String),
    /// A libpq connection string rendered as a SQL string literal.
    Conninfo(ConninfoSpec),
}

/// Where a subscription connects: the publisher's peer-facing address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConninfoSpec {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub sslmode: Option<String>,
    /// CA file on the subscriber's server that the publisher's certificate is checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
    /// Client certificate file on the subscriber's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<String>,
    /// Private key file of `sslcert` on the subscriber's server (a path, never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<String>,
    /// Node whose password goes into the string at execution time, if it has one; `None`
    /// when the subscription authenticates with its client certificate alone.
    pub password_of: Option<String>,
}

impl ConninfoSpec {
    /// The connection string with the password, if any, taken from `password`.
    pub fn render(&self, password: Option<&str>) -> String {
        let (before, after) = self.around_password();
        match password {
            // Asterisks need no quoting in a conninfo; shown bare it reads as redacted.
            Some(REDACTED) => format!("{before} password={REDACTED} {after}"),
            Some(pw) => format!("{before} password={} {after}", quote_conninfo_value(pw)),
            None => format!("{before} {after}"),
        }
    }

    /// The connection string's pairs before and after where the password goes (a script
    /// that takes the password from elsewhere puts it in between).
    pub fn around_password(&self) -> (String, String) {
        let mut before = vec![
            format!("host={}", quote_conninfo_value(&self.host)),
            format!("port={}", self.port),
            format!("dbname={}", quote_conninfo_value(&self.dbname)),
            format!("user={}", quote_conninfo_value(&self.user)),
        ];
        for (key, value) in [
            ("sslmode", &self.sslmode),
            ("sslrootcert", &self.sslrootcert),
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
        ] {
            if let Some(value) = value {
                before.push(format!("{key}={}", quote_conninfo_value(value)));
            }
        }
        (before.join(" "), "application_name=pgconverge".to_string())
    }
}

impl Statement {
    pub fn sql(text: impl Into<String>) -> Self {
        Statement {
            segments: vec![Segment::Sql(text.into())],
        }
    }

    /// The statement as shown to people: passwords replaced by [`REDACTED`].
    pub fn redacted(&self) -> String {
        self.render_with(&|spec: &ConninfoSpec| {
            spec.password_of.as_ref().map(|_| REDACTED.to_string())
        })
    }

    /// The statement as executed; `password` maps a node name to its password.
    pub fn render(&self, password: &dyn Fn(&str) -> Option<String>) -> String {
        self.render_with(&|spec: &ConninfoSpec| spec.password_of.as_deref().and_then(password))
    }

    fn render_with(&self, password: &dyn Fn(&ConninfoSpec) -> Option<String>) -> String {
        self.render_conninfo_as(&|spec: &ConninfoSpec| {
            quote_literal(&spec.render(password(spec).as_deref()))
        })
    }

    /// The statement with each connection string written as `conninfo` gives it: a SQL
    /// literal, or something a client fills in (a psql variable holding one).
    pub fn render_conninfo_as(&self, conninfo: &dyn Fn(&ConninfoSpec) -> String) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Sql(text) => out.push_str(text),
                Segment::Conninfo(spec) => out.push_str(&conninfo(spec)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConninfoSpec {
        ConninfoSpec {
            host: "10.0.0.2".into(),
            port: 5432,
            dbname: "app db".into(),
            user: "repl".into(),
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            password_of: Some("n2".into()),
        }
    }

    #[test]
    fn passwords_only_appear_when_rendering_for_execution() {
        let stmt = Statement {
            segments: vec![
                Segment::Sql("CREATE SUBSCRIPTION s CONNECTION ".into()),
                Segment::Conninfo(spec()),
                Segment::Sql(" PUBLICATION p".into()),
            ],
        };
        let shown = stmt.redacted();
        assert!(shown.contains("password=********"), "{shown}");
        assert!(shown.contains("dbname=''app db''"), "{shown}");
        let run = stmt.render(&|n| (n == "n2").then(|| "it's $$ \\ secret".to_string()));
        // conninfo escaping (\' and \\) inside an E'' literal (quotes and backslashes doubled)
        assert!(
            run.contains(r"password=''it\\''s $$ \\\\ secret''"),
            "{run}"
        );
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn certificate_paths_are_quoted_and_certificate_auth_carries_no_password() {
        let spec = ConninfoSpec {
            sslmode: Some("verify-full".into()),
            sslrootcert: Some("/etc/pg certs/ca.crt".into()),
            sslcert: Some("/etc/pg/client.crt".into()),
            sslkey: Some("/etc/pg/client.key".into()),
            password_of: None,
            ..spec()
        };
        let text = spec.render(None);
        assert!(
            text.contains("sslmode=verify-full sslrootcert='/etc/pg certs/ca.crt' sslcert=/etc/pg/client.crt sslkey=/etc/pg/client.key"),
            "{text}"
        );
        let stmt = Statement {
            segments: vec![Segment::Conninfo(spec)],
        };
        let run = stmt.render(&|_| Some("never-used".to_string()));
        assert!(!run.contains("password"), "{run}");
    }
}
