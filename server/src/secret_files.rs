//! File names whose contents never leave the machine and are never indexed:
//! the one list the index, the cloud path and remote engines share.

/// File names never sent anywhere. Globs on the file name (`*`, `?`); a
/// pattern with a `/` matches the end of the path.
pub const SECRET_FILES: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
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
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "id_rsa_*",
    "id_ed25519_*",
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
    "credentials.json",
    "service-account*.json",
    "secrets.*",
    "*.tfvars",
    "*.tfstate",
];

/// Names that match a pattern above but are known templates without secrets.
const TEMPLATES: &[&str] = &[".env.example", ".env.sample", ".env.template", ".env.dist"];

/// The pattern a path matches, if it is a secret file.
pub fn secret_file_pattern(path: &str, extra: &[String]) -> Option<String> {
    let path = path.replace('\\', "/");
    let name = path.rsplit('/').next().unwrap_or(&path);
    if TEMPLATES.contains(&name) || name.ends_with(".pub") {
        return None;
    }
    SECRET_FILES.iter().map(|p| p.to_string()).chain(extra.iter().cloned()).find(|p| {
        if p.contains('/') {
            let parts = p.split('/').count();
            let tail: Vec<&str> = path.rsplit('/').take(parts).collect::<Vec<_>>().into_iter().rev().collect();
            glob(p, &tail.join("/"))
        } else {
            glob(p, name)
        }
    })
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
        assert_eq!(secret_file_pattern("/home/u/.ssh/id_rsa", &[]).as_deref(), Some("id_rsa"));
        assert_eq!(secret_file_pattern("/home/u/.aws/credentials", &[]).as_deref(), Some(".aws/credentials"));
        assert_eq!(secret_file_pattern("/home/u/.ssh/id_rsa.pub", &[]), None);
        assert_eq!(secret_file_pattern("/home/u/proj/.env.example", &[]), None);
        assert_eq!(secret_file_pattern("/home/u/proj/main.py", &[]), None);
        assert_eq!(secret_file_pattern("/p/conf/prod.yaml", &["prod.*".into()]).as_deref(), Some("prod.*"));
        assert!(glob("a*b?c", "axxbyc"));
        assert!(!glob("a*b?c", "axxbc"));
    }
}
