//! The schema's versions, applied in order by `rusqlite_migration` (user_version). Each file in
//! `migrations/` is one version; a new concern adds the next file here, never edits a shipped one.

use rusqlite_migration::{Migrations, M};

/// All versions, oldest first.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_core.sql")),
        M::up(include_str!("migrations/0002_oidc.sql")),
        M::up(include_str!("migrations/0003_approve.sql")),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }
}
