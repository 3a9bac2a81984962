//! Reading the environment's settings: one way for every variable, blank meaning unset.

use crate::error::InitError;

/// The first of `vars` that is set to a non-blank value, and that value as given.
pub(crate) fn first(vars: &[&'static str]) -> Option<(&'static str, String)> {
    vars.iter().find_map(|&var| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v))
    })
}

/// The number `var` holds: `None` when it is unset or blank, an error naming it when it is not
/// a non-negative integer (not read as the default without a word).
pub(crate) fn number(var: &'static str) -> Result<Option<u64>, InitError> {
    let Some((_, value)) = first(&[var]) else {
        return Ok(None);
    };
    value.trim().parse().map(Some).map_err(|_| {
        InitError::InvalidConfig(format!("{var} `{value}` is not a non-negative integer"))
    })
}
