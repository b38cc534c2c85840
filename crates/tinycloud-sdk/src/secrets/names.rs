//! Secret names, scopes and paths: the deny list of names that change how a process runs
//! (refused when storing, granting and running), the name syntax, scope canonicalization and
//! the KV path convention (`vault/secrets/<NAME>`, `vault/secrets/scoped/<scope>/<NAME>`).

use crate::error::{Error, Result};

/// Names a secret may not have, because as an environment variable they change how a
/// process (its loader, shell, interpreter, VM, TLS stack, or a `tc` it runs) behaves rather
/// than carrying a value: a secret of that name would let whoever can write the vault run code
/// in every `secrets run`. Refused when storing, granting and running.
pub const DENIED_NAMES: &[&str] = &[
    // Where programs and libraries are found, and the shell's own behaviour.
    "PATH",
    "HOME",
    "SHELL",
    "ENV",
    "BASH_ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    "GLOBIGNORE",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "ZDOTDIR",
    "TMPDIR",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "LESSOPEN",
    "LESSCLOSE",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    // The C library and the loader.
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "LOCPATH",
    "NLSPATH",
    // Interpreters and VMs.
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "RUBYOPT",
    "RUBYLIB",
    "PERLLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "DOTNET_STARTUP_HOOKS",
    "RUSTC_WRAPPER",
    "GOFLAGS",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    // Where network traffic goes (a planted proxy sees every request; a planted `NO_PROXY`
    // routes around the one the user relies on), and which Docker daemon (and credential
    // helpers) a `docker` talks to.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    // TLS trust and key logging.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SSLKEYLOGFILE",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
];

/// Name prefixes refused for the same reason (`LD_PRELOAD`, `DYLD_INSERT_LIBRARIES`,
/// `PYTHONSTARTUP`, `PERL5OPT`, `GIT_SSH_COMMAND`, exported bash functions, npm's config,
/// `tc`'s and the node's own settings, …).
pub const DENIED_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "PYTHON",
    "PERL5",
    "GIT_",
    "BASH_FUNC_",
    "LUA_INIT",
    "LUA_PATH",
    "LUA_CPATH",
    "NPM_CONFIG_",
    "MALLOC_",
    "CORECLR_",
    "COR_",
    "TC_",
    "TINYCLOUD_",
];

/// Why `name` may not be a secret, if it is on the deny list.
pub fn denied(name: &str) -> Option<&'static str> {
    if DENIED_NAMES.contains(&name) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Some("as an environment variable it changes how programs run")
    } else {
        None
    }
}

/// Checks a secret name's form: `^[A-Z][A-Z0-9_]*$` (after trimming). Names on the deny list
/// pass (so they can be read, listed and deleted); see [`check_name`].
pub fn check_name_syntax(name: &str) -> Result<&str> {
    let n = name.trim();
    let ok = n.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && n.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(n)
    } else {
        Err(Error::InvalidInput(format!(
            "invalid secret name {name:?}: use A-Z, 0-9 and _, starting with a letter"
        )))
    }
}

/// Checks a name a secret may be stored, granted or run under: [`check_name_syntax`] and not
/// on the deny list ([`DENIED_NAMES`], [`DENIED_PREFIXES`]).
pub fn check_name(name: &str) -> Result<&str> {
    let n = check_name_syntax(name)?;
    match denied(n) {
        Some(why) => Err(Error::InvalidInput(format!(
            "secret name {n} is refused: {why}"
        ))),
        None => Ok(n),
    }
}

/// Checks a value: an environment cannot carry a NUL byte, so such a value could never be
/// run with.
pub fn check_value(value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidInput(
            "a secret value cannot contain a NUL byte (environment variables cannot carry one)"
                .into(),
        ));
    }
    Ok(())
}

/// Canonicalizes a scope: lower case, other characters to `-`, runs collapsed, trimmed;
/// `default` and `global` are reserved.
pub fn canonical_scope(scope: &str) -> Result<String> {
    let t = scope.trim();
    if t.is_empty() {
        return Err(Error::InvalidInput(
            "Secret scope must be non-empty; omit scope for global secrets.".into(),
        ));
    }
    let mut out = String::new();
    for c in t.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        return Err(Error::InvalidInput(
            "Secret scope must contain at least one letter or number.".into(),
        ));
    }
    if out == "default" || out == "global" {
        return Err(Error::InvalidInput(format!(
            "Secret scope {out:?} is reserved; omit scope for global secrets."
        )));
    }
    Ok(out)
}

/// The KV path of a secret: `vault/secrets/<NAME>` or `vault/secrets/scoped/<scope>/<NAME>`.
pub fn resolve_secret_path(name: &str, scope: Option<&str>) -> Result<String> {
    let n = check_name_syntax(name)?;
    Ok(match scope {
        None => format!("vault/secrets/{n}"),
        Some(s) => format!("vault/secrets/scoped/{}/{n}", canonical_scope(s)?),
    })
}

/// The list prefix of a scope.
pub fn list_prefix(scope: Option<&str>) -> Result<String> {
    Ok(match scope {
        None => "vault/secrets/".into(),
        Some(s) => format!("vault/secrets/scoped/{}/", canonical_scope(s)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_convention() {
        assert_eq!(
            resolve_secret_path("API_KEY", None).unwrap(),
            "vault/secrets/API_KEY"
        );
        assert_eq!(
            resolve_secret_path(" API_KEY ", None).unwrap(),
            "vault/secrets/API_KEY"
        );
        assert_eq!(
            resolve_secret_path("DB_URL", Some("  My App!! v2 ")).unwrap(),
            "vault/secrets/scoped/my-app-v2/DB_URL"
        );
        for bad in ["api_key", "1KEY", "", "KEY-1", "KÉY"] {
            assert!(resolve_secret_path(bad, None).is_err(), "{bad:?}");
        }
        // Deny-listed names have a path (to read or delete a planted one) but are refused.
        assert!(resolve_secret_path("LD_PRELOAD", None).is_ok());
        for denied in [
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "ENV",
            "IFS",
            "NODE_OPTIONS",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "GIT_SSH_COMMAND",
            "BASH_FUNC_X",
            "TC_HOME",
        ] {
            let e = check_name(denied).unwrap_err().to_string();
            assert!(e.contains("changes how programs run"), "{denied}: {e}");
        }
        for fine in [
            "API_KEY",
            "PATHS_FILE",
            "OPENAI_API_KEY",
            "DATABASE_URL",
            "ENVIRONMENT",
        ] {
            assert_eq!(check_name(fine).unwrap(), fine);
        }
        assert!(check_value("a\0b").is_err());
        assert!(check_value("ok").is_ok());
        for bad in ["", "  ", "!!!", "default", "Global", "--"] {
            assert!(canonical_scope(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            list_prefix(Some("prod")).unwrap(),
            "vault/secrets/scoped/prod/"
        );
    }
}
