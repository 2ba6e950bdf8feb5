//! The routing rule for refactors: where the text goes. Explanations and
//! completions always stay local.

pub use crate::config::Route;

/// What to do with a refactor of `lines` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Local only; a failure is final.
    Local,
    /// Local, then the cloud if the local result fails validation.
    LocalThenCloud { ask: bool },
    /// Straight to the cloud.
    Cloud { ask: bool },
}

/// The plan for an ordinary refactor (`explicit_cloud`: "Refactor with cloud").
pub fn plan(route: Route, max_local_lines: usize, lines: usize, explicit_cloud: bool) -> Result<Plan, String> {
    match (route, explicit_cloud) {
        (Route::Never, true) => Err("cloud escalation is off (`cloud.route` is \"never\"): nothing was sent".into()),
        (Route::Never, false) => Ok(Plan::Local),
        (Route::Ask, true) => Ok(Plan::Cloud { ask: true }),
        (Route::Ask, false) => Ok(Plan::LocalThenCloud { ask: true }),
        (_, true) => Ok(Plan::Cloud { ask: false }),
        (Route::LongerThan, false) if lines > max_local_lines => Ok(Plan::Cloud { ask: false }),
        (Route::LongerThan, false) => Ok(Plan::Local),
        (Route::OnValidationFailure, false) => Ok(Plan::LocalThenCloud { ask: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_rules() {
        assert_eq!(plan(Route::Never, 10, 500, false), Ok(Plan::Local));
        assert!(plan(Route::Never, 10, 5, true).unwrap_err().contains("off"));
        assert_eq!(plan(Route::Ask, 10, 5, false), Ok(Plan::LocalThenCloud { ask: true }));
        assert_eq!(plan(Route::Ask, 10, 5, true), Ok(Plan::Cloud { ask: true }));
        assert_eq!(plan(Route::LongerThan, 10, 11, false), Ok(Plan::Cloud { ask: false }));
        assert_eq!(plan(Route::LongerThan, 10, 10, false), Ok(Plan::Local));
        assert_eq!(plan(Route::OnValidationFailure, 10, 3, false), Ok(Plan::LocalThenCloud { ask: false }));
        assert_eq!(plan(Route::OnValidationFailure, 10, 3, true), Ok(Plan::Cloud { ask: false }));
    }
}
