//! File names whose contents never leave the machine and are never indexed:
//! the one list the index, the cloud path and remote engines share (with
//! `cloud.refuseFiles` added to it everywhere). Matching ignores case:
//! `SERVER.PEM` is as secret as `server.pem`.

/// File names never sent anywhere. Globs on the file name (`*`, `?`); a
/// pattern with a `/` matches the end of the path.
pub const SECRET_FILES: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
    ".secrets",
    ".secrets.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "*.ppk",
    "*.asc",
    "*.gpg",
    "*.crt",
    "*.der",
    "*.ovpn",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "known_hosts",
    "authorized_keys",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    ".dockercfg",
    ".docker/config.json",
    ".aws/credentials",
    ".kube/config",
    "credentials",
    "credentials.*",
    "credentials-*",
    "credentials_*",
    "service-account*.json",
    "secrets.*",
    "secret.*",
    "*.tfvars",
    "*.tfstate",
];

/// Names that match a pattern above but are known templates without secrets.
const TEMPLATES: &[&str] = &[".env.example", ".env.sample", ".env.template", ".env.dist"];

/// The pattern a path (or a `file://` URI) matches, if it is a secret file.
/// `extra` is `cloud.refuseFiles`, which has no templates exempted.
pub fn secret_file_pattern(path: &str, extra: &[String]) -> Option<String> {
    let path = path.replace('\\', "/").to_lowercase();
    let name = path.rsplit('/').next().unwrap_or(&path);
    let template = TEMPLATES.contains(&name) || name.ends_with(".pub");
    let matches = |p: &str| {
        let p = p.to_lowercase();
        if p.contains('/') {
            let parts = p.split('/').count();
            let tail: Vec<&str> = path.rsplit('/').take(parts).collect::<Vec<_>>().into_iter().rev().collect();
            glob(&p, &tail.join("/"))
        } else {
            glob(&p, name)
        }
    };
    let builtin = SECRET_FILES.iter().find(|p| !template && matches(p)).map(|p| p.to_string());
    builtin.or_else(|| extra.iter().find(|p| !p.trim().is_empty() && matches(p.trim())).cloned())
}

/// `*` and `?` glob over a whole string.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files() {
        assert_eq!(secret_file_pattern("/home/u/proj/.env", &[]).as_deref(), Some(".env"));
        assert_eq!(secret_file_pattern("/home/u/proj/.env.production", &[]).as_deref(), Some(".env.*"));
        assert_eq!(secret_file_pattern("/srv/tls/server.pem", &[]).as_deref(), Some("*.pem"));
        assert_eq!(secret_file_pattern("/home/u/.ssh/id_rsa", &[]).as_deref(), Some("id_rsa*"));
        assert_eq!(secret_file_pattern("/home/u/.aws/credentials", &[]).as_deref(), Some(".aws/credentials"));
        assert_eq!(secret_file_pattern("/home/u/.ssh/id_rsa.pub", &[]), None);
        assert_eq!(secret_file_pattern("/home/u/proj/.env.example", &[]), None);
        assert_eq!(secret_file_pattern("/home/u/proj/main.py", &[]), None);
        assert_eq!(secret_file_pattern("/p/conf/prod.yaml", &["prod.*".into()]).as_deref(), Some("prod.*"));
        assert_eq!(secret_file_pattern("file:///home/u/proj/.env", &[]).as_deref(), Some(".env"));
        assert!(glob("a*b?c", "axxbyc"));
        assert!(!glob("a*b?c", "axxbc"));
    }

    /// The names the index and the cloud path used to disagree on (issue 17).
    #[test]
    fn one_list_that_ignores_case() {
        for (name, secret) in [
            ("Server.PEM", true),
            (".ENV", true),
            ("secret.rs", true),
            ("secrets.yaml", true),
            ("credentials.py", true),
            ("credentials-prod.json", true),
            ("ca.crt", true),
            ("client.der", true),
            ("office.ovpn", true),
            ("id_rsa_work", true),
            ("ID_ED25519", true),
            (".secrets.toml", true),
            ("known_hosts", true),
            ("store.P12", true),
            ("id_ed25519.pub", false),
            (".env.example", false),
            ("keys.rs", false),
            ("tokens.py", false),
            ("environment.py", false),
            ("credential_store.rs", false),
            ("secretary.py", false),
            ("main.rs", false),
        ] {
            assert_eq!(secret_file_pattern(&format!("/p/{name}"), &[]).is_some(), secret, "{name}");
        }
        assert!(secret_file_pattern("C:\\Users\\u\\.AWS\\Credentials", &[]).is_some());
        // refuseFiles ignores case too, and has no template exemption.
        assert!(secret_file_pattern("/p/Conf/PROD.yaml", &["prod.*".into()]).is_some());
        assert!(secret_file_pattern("/p/.env.example", &[".env.*".into()]).is_some());
        assert!(secret_file_pattern("/p/main.py", &["".into()]).is_none());
    }
}
