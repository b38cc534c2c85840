//! Accounts: sign-up and sign-in with passkeys, email one-time codes and recovery codes as
//! ways back in, adding and removing passkeys, re-verification (the fresh-UV check), sign-out,
//! account deletion, and the account and activity pages.

mod email;
mod pages;
mod passkeys;
mod recovery;

use axum::Router;

use crate::error::AppError;
use crate::state::AppState;

pub use email::OUTBOX_DIR;

/// Routes behind the CSRF guard.
pub fn browser_routes() -> Router<AppState> {
    Router::new()
        .merge(pages::routes())
        .merge(passkeys::routes())
        .merge(email::routes())
        .merge(recovery::routes())
}

/// Trims and lower-cases an email address and checks its shape.
pub fn normalize_email(raw: &str) -> Result<String, AppError> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(AppError::BadRequest("enter a valid email address".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails() {
        assert_eq!(normalize_email(" A@B.example ").unwrap(), "a@b.example");
        assert!(normalize_email("nobody").is_err());
        assert!(normalize_email("a@b@c").is_err());
        assert!(normalize_email("a b@c").is_err());
    }
}
