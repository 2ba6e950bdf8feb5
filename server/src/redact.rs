//! The privacy guard: secrets are replaced by placeholders before anything
//! leaves the machine, and put back locally into what comes back. Files
//! whose names match secret patterns are refused outright
//! ([`crate::secret_files`]).
//!
//! Rules, in priority order (an earlier rule wins an overlap): private-key
//! blocks, provider tokens in their published formats, JWTs, passwords in
//! URLs and connection strings, `.netrc` passwords, values assigned to
//! secret-looking names, and finally high-entropy strings. Over-redaction is
//! cheap (placeholders are restored locally); a leak is not.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

struct Rule {
    kind: &'static str,
    re: Regex,
    /// Capture group holding the secret (0: the whole match).
    group: usize,
}

fn rule(kind: &'static str, re: &str, group: usize) -> Rule {
    Rule { kind, re: Regex::new(re).unwrap_or_else(|e| panic!("redaction rule {kind}: {e}")), group }
}

/// Secret-looking names: a value assigned to one of them is redacted.
const SECRET_NAME: &str = r"[A-Za-z0-9_.\-]*(?i:password|passwd|passphrase|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|authorization|auth[_\-]?(?:token|key|header)|credential|private[_\-]?key|client[_\-]?secret|signing[_\-]?key|encryption[_\-]?key|session[_\-]?key|conn(?:ection)?[_\-]?str(?:ing)?|dsn)[A-Za-z0-9_.\-]*";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            "private-key",
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
            0,
        ),
        rule("anthropic-key", r"\bsk-ant-[a-z]+[0-9]*-[A-Za-z0-9_\-]{20,}", 0),
        rule("openai-key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}", 0),
        rule("aws-access-key-id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}\b", 0),
        rule("aws-secret-access-key", r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*(?:[:=]|=>)\s*["']?([A-Za-z0-9/+=]{40})"#, 1),
        rule("github-token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b", 0),
        rule("github-pat", r"\bgithub_pat_[A-Za-z0-9_]{22,}", 0),
        rule("gitlab-token", r"\bgl(?:pat|dt|ptt|rt)-[A-Za-z0-9_\-]{20,}", 0),
        rule("slack-token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", 0),
        rule("slack-webhook", r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]+", 0),
        rule("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", 0),
        rule("stripe-webhook-secret", r"\bwhsec_[A-Za-z0-9]{24,}", 0),
        rule("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}", 0),
        rule("google-oauth-secret", r"\bGOCSPX-[A-Za-z0-9_\-]{20,}", 0),
        rule("google-oauth-token", r"\bya29\.[A-Za-z0-9_\-]{20,}", 0),
        rule("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}", 0),
        rule("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
        rule("pypi-token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}", 0),
        rule("sendgrid-key", r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}", 0),
        rule("twilio-key", r"\bSK[0-9a-fA-F]{32}\b", 0),
        rule("mailgun-key", r"\bkey-[0-9a-f]{32}\b", 0),
        rule("shopify-token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b", 0),
        rule("digitalocean-token", r"\bdo[poa]_v1_[a-f0-9]{64}\b", 0),
        rule("databricks-token", r"\bdapi[a-f0-9]{32}\b", 0),
        rule("telegram-bot-token", r"\b[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}\b", 0),
        rule("discord-webhook", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_\-]+", 0),
        rule("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", 0),
        rule("azure-account-key", r"(?i)(?:AccountKey|SharedAccessKey|SharedSecretValue)\s*=\s*([A-Za-z0-9+/=]{20,})", 1),
        rule("azure-sas-signature", r"(?i)\bsig=([A-Za-z0-9%+/=]{20,})", 1),
        // user:password@ in any URL or connection string (postgres, mysql, mongodb+srv, redis, amqp, https...).
        rule("url-password", r#"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'"]*:([^\s@/'"]+)@"#, 1),
        // Password=...; in ADO/ODBC-style connection strings.
        rule("connection-string-password", r#"(?im)\b(?:password|pwd)\s*=\s*([^;"'\s()\[\]]+)(?:;|["']|$)"#, 1),
        rule("basic-auth", r"(?i)\bBasic\s+([A-Za-z0-9+/]{12,}={0,2})", 1),
        rule("bearer-token", r"(?i)\bBearer\s+([A-Za-z0-9\-._~+/]{12,}=*)", 1),
        // .netrc: `machine h login u password p`, on one line or several.
        rule("netrc-password", r"(?m)\b(?:password|passwd)\s+([^\s]+)\s*$", 1),
        rule("netrc-password", r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+(\S+)", 1),
        // name = "value", name: 'value', "name": "value", let name: &str = "value", NAME => "value".
        rule(
            "secret-assignment",
            &format!(r#"\b{SECRET_NAME}["']?[^"'\n]{{0,40}}?(?::=|=>|==|=|:)\s*(?:[rbfu]|br|rb)?(?:"([^"\n]+)"|'([^'\n]+)')"#),
            1,
        ),
        // NAME=value and name: value in .env, ini, yaml, toml-ish files.
        rule("secret-assignment", &format!(r#"\b{SECRET_NAME}\s*(?:=|:)[ \t]*([^\s"'=,;#(){{}}\[\]<>]{{4,}})"#), 1),
    ]
});

static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/_\-=]{20,}").unwrap());
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"REDACTED_[A-Z0-9_]+_[0-9]+").unwrap());

/// One redaction made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redaction {
    pub kind: String,
    pub placeholder: String,
    /// 1-based line in the text it was found in.
    pub line: usize,
}

/// Redacts texts with one shared table, so the same secret gets the same
/// placeholder everywhere, and restores them in text that comes back.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// secret -> placeholder
    table: BTreeMap<String, String>,
    pub redactions: Vec<Redaction>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text with every secret found replaced by a placeholder.
    pub fn redact(&mut self, text: &str) -> String {
        let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
        let overlaps = |spans: &[(usize, usize, &str)], s: usize, e: usize| spans.iter().any(|&(a, b, _)| s < b && a < e);
        for r in RULES.iter() {
            for caps in r.re.captures_iter(text) {
                let m = if r.group == 0 { caps.get(0) } else { (r.group..caps.len()).find_map(|g| caps.get(g)) };
                let Some(m) = m else { continue };
                let (s, e) = (m.start(), m.end());
                if e <= s || overlaps(&spans, s, e) || is_benign(r.kind, m.as_str(), &text[e..]) {
                    continue;
                }
                spans.push((s, e, r.kind));
            }
        }
        for m in CANDIDATE.find_iter(text) {
            let tok = m.as_str().trim_end_matches('=');
            let (s, e) = (m.start(), m.start() + tok.len());
            if !overlaps(&spans, s, e) && high_entropy(tok) {
                spans.push((s, e, "high-entropy-string"));
            }
        }
        spans.sort_by_key(|&(s, _, _)| s);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (s, e, kind) in spans {
            out.push_str(&text[last..s]);
            let secret = &text[s..e];
            let placeholder = match self.table.get(secret) {
                Some(p) => p.clone(),
                None => {
                    let p = format!("REDACTED_{}_{}", kind.to_ascii_uppercase().replace('-', "_"), self.table.len() + 1);
                    self.table.insert(secret.to_string(), p.clone());
                    p
                }
            };
            let line = text[..s].matches('\n').count() + 1;
            self.redactions.push(Redaction { kind: kind.to_string(), placeholder: placeholder.clone(), line });
            out.push_str(&placeholder);
            last = e;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Puts the secrets back into text that came back.
    pub fn restore(&self, text: &str) -> String {
        let by_placeholder: BTreeMap<&str, &str> = self.table.iter().map(|(s, p)| (p.as_str(), s.as_str())).collect();
        PLACEHOLDER
            .replace_all(text, |c: &regex::Captures<'_>| {
                let p = c.get(0).unwrap().as_str();
                by_placeholder.get(p).map(|s| s.to_string()).unwrap_or_else(|| p.to_string())
            })
            .into_owned()
    }

    /// Placeholder-like words in `text` that `original` did not contain and
    /// that are not (any longer) ours: a reply that mangled a placeholder.
    pub fn stray_placeholders(&self, original: &str, text: &str) -> Vec<String> {
        PLACEHOLDER.find_iter(text).map(|m| m.as_str().to_string()).filter(|p| !original.contains(p.as_str())).collect()
    }

    /// Redactions per kind, for the audit log and the preview.
    pub fn summary(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in &self.redactions {
            *m.entry(r.kind.clone()).or_insert(0) += 1;
        }
        m
    }
}

/// Values that look like code rather than a literal secret.
fn is_benign(kind: &str, value: &str, after: &str) -> bool {
    if kind != "secret-assignment" && kind != "netrc-password" && kind != "connection-string-password" {
        return false;
    }
    let v = value.trim();
    let keyword = matches!(
        v.to_ascii_lowercase().as_str(),
        "none" | "null" | "nil" | "true" | "false" | "undefined" | "str" | "string" | "bytes" | "int" | "bool" | "optional"
    );
    // A call, attribute, index or type: `get_password()`, `os.environ[...]`, `&str`.
    let expr = after.starts_with('(') || after.starts_with('[') || after.starts_with("::") || v.starts_with('$') || v.starts_with('&');
    let placeholder = PLACEHOLDER.is_match(v);
    let number = v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    // `cfg.max_tokens`, `self.password`, `settings.API_KEY`: an attribute path.
    let path = v.contains('.')
        && v.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    let number = number || path;
    keyword || expr || placeholder || number
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Random-looking tokens: hex of 32+ chars with letters and digits, or
/// base64/base62 of 20+ chars mixing upper, lower and digits, switching
/// character class often (identifiers switch rarely) and with high entropy.
pub fn high_entropy(tok: &str) -> bool {
    let len = tok.len();
    if len < 20 {
        return false;
    }
    let digits = tok.bytes().filter(u8::is_ascii_digit).count();
    let lower = tok.bytes().filter(u8::is_ascii_lowercase).count();
    let upper = tok.bytes().filter(u8::is_ascii_uppercase).count();
    let is_hex = tok.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        return len >= 32 && digits > 0 && digits < len && entropy(tok) >= 3.0;
    }
    if digits < 2 || lower == 0 || upper == 0 {
        return false;
    }
    let class = |b: u8| {
        if b.is_ascii_digit() {
            0
        } else if b.is_ascii_lowercase() {
            1
        } else if b.is_ascii_uppercase() {
            2
        } else {
            3
        }
    };
    let bytes = tok.as_bytes();
    let switches = bytes.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    let ideal = (len as f64).log2().min(5.0);
    switches * 4 >= len && entropy(tok) >= 0.8 * ideal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(s: &str) -> (String, Redactor) {
        let mut r = Redactor::new();
        (r.redact(s), r)
    }

    #[test]
    fn redacts_and_restores_with_stable_placeholders() {
        let src = "KEY = \"AKIAIOSFODNN7EXAMPLE\"\nother = \"AKIAIOSFODNN7EXAMPLE\"\nname = \"ok\"\n";
        let (out, r) = redacted(src);
        assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        assert_eq!(out.matches("REDACTED_AWS_ACCESS_KEY_ID_1").count(), 2, "{out}");
        assert!(out.contains("name = \"ok\""));
        assert_eq!(r.restore(&out), src);
        assert_eq!(r.summary().get("aws-access-key-id"), Some(&2));
        assert_eq!(r.redactions[1].line, 2);
    }

    #[test]
    fn passwords_in_code_but_not_code_expressions() {
        let (out, _) = redacted("db_password: str = \"hunter2hunter2\"\n");
        assert!(!out.contains("hunter2"), "{out}");
        let (out, _) = redacted("password = get_password()\ntoken = None\n");
        assert_eq!(out, "password = get_password()\ntoken = None\n");
        let (out, _) = redacted("let api_key: &str = \"abc-123-xyz\";");
        assert!(!out.contains("abc-123-xyz"), "{out}");
    }

    #[test]
    fn connection_strings_keep_their_shape() {
        let (out, _) = redacted("url = 'postgres://app:s3cr3t-Pa55@db.internal:5432/app'");
        assert!(!out.contains("s3cr3t-Pa55"), "{out}");
        assert!(out.contains("postgres://app:REDACTED_"), "{out}");
    }

    #[test]
    fn ordinary_code_is_left_alone() {
        let code = "def compute_the_average_of_values(values):\n    total_number_of_items = len(values)\n    return sum(values) / total_number_of_items\n\nclass HttpRequestHandlerFactory2:\n    pass\n# see https://example.com/docs/getting-started\n";
        let (out, r) = redacted(code);
        assert_eq!(out, code, "{:?}", r.redactions);
    }

    #[test]
    fn entropy_rules() {
        assert!(high_entropy("q8Fz2LmX0pRt7VbN4kWs9YcJ"));
        assert!(high_entropy("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"));
        assert!(!high_entropy("getUserAccountDetails2"));
        assert!(!high_entropy("total_number_of_items_in_cart"));
        assert!(!high_entropy("abcdefabcdefabcdefabcdefabcdefabcdef"));
    }

    #[test]
    fn stray_placeholders_are_found() {
        let (out, r) = redacted("token = \"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"\n");
        assert!(r.stray_placeholders(&out, "token = \"REDACTED_GITHUB_TOKEN_9\"").len() == 1);
        assert!(r.stray_placeholders("", &out).len() == 1);
        assert!(r.stray_placeholders(&out, &out).is_empty());
    }
}
