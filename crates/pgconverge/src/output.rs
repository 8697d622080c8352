//! Terminal conventions: colour only on a terminal, never with --no-color or NO_COLOR.

use std::io::IsTerminal;

use crate::cli::GlobalArgs;

pub fn use_color(global: &GlobalArgs) -> bool {
    !global.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal()
}
