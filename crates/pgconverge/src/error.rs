//! The error every command returns: a message, optional details and a hint, always exit 1.

use std::fmt::Display;

#[derive(Debug)]
pub struct CommandError {
    pub message: String,
    pub details: Vec<String>,
    pub hint: Option<String>,
}

impl CommandError {
    pub fn new(message: impl Into<String>) -> Self {
        CommandError {
            message: message.into(),
            details: Vec::new(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    pub fn report(&self) {
        eprintln!("error: {}", self.message);
        for d in &self.details {
            eprintln!("  {d}");
        }
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
    }
}

/// Shorthand: any displayable error becomes a command error with context.
pub fn context<E: Display>(what: impl Into<String>) -> impl FnOnce(E) -> CommandError {
    let what = what.into();
    move |err| CommandError::new(format!("{what}: {err}"))
}
