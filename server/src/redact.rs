//! The privacy guard: secrets are replaced by placeholders before anything
//! leaves the machine, and put back locally into what comes back. Files
//! whose names match secret patterns are refused outright
//! ([`crate::secret_files`]).
//!
//! What is found, in priority order (an earlier rule wins an overlap):
//! - private-key blocks, and provider tokens in their published formats
//!   (gitleaks' rule set is the reference), JWTs;
//! - passwords in URLs and connection strings, `Basic`/`Bearer` credentials,
//!   `.netrc` passwords;
//! - command-line credentials: `curl -u user:pass`, `mysql -pSECRET`,
//!   `twine upload -p TOKEN`, `sshpass -p`, `docker login -p`,
//!   `redis-cli -a`, `--password[= ]...` and other secret-named long options;
//! - values assigned to secret-named keys, in every quoting style (`"..."`,
//!   `'...'`, `r"..."`, `"""..."""`, `r#"..."#`, backticks, bare `.env` and
//!   YAML values). A quoted value is always a secret, however benign it
//!   looks (`"123456789"`, `"changeme"`), unless it is no value at all: empty,
//!   a mask (`"****"`), or only references and templates (`"${DB_PASS}"`,
//!   `"{{ secrets.X }}"`, `"<your-token>"`, `f"Bearer {token}"`). A bare value
//!   must also not read as code (`get_password()`, `None`, `os.environ[...]`,
//!   `self.password`, a type). On a line shaped like a YAML, ini,
//!   `.properties` or `.env` line (the key first, one word ending the line)
//!   the whole word is the value (`password = p@ss;word`), and a word of
//!   letters only counts too where the shape is unambiguous
//!   (`password: hunter`, `password=hunter`; not `password = hunter`, an
//!   assignment in most languages). Under a YAML block scalar
//!   (`password: |`, `token: >-`, `password: !vault |`) every line of the
//!   value is one;
//! - passwords in prose and comments ("the password is hunter2");
//! - high-entropy strings (random-looking tokens of 20+ characters).
//!
//! Every occurrence of a secret found is replaced, also where no rule would
//! see it (`connect(password="hunter2")` after `DATABASE = {"PASSWORD":
//! "hunter2"}`), and in every later text redacted by the same [`Redactor`].
//! Over-redaction is cheap (placeholders are restored locally); a leak is not.
//!
//! Placeholders read `REDACTED_<KIND>_<n>_<nonce>`: the nonce is derived from
//! the first text a [`Redactor`] sees and chosen so that it occurs in no text redacted so far, so
//! source text cannot collide with a placeholder. Restoring puts a secret
//! back only for placeholders this redactor issued, and at most as many
//! times as the placeholder was sent ([`Redactor::restore_checked`]): a model
//! that repeats or moves a placeholder does not get the secret written into
//! a new place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// How a matched value is vetted before it is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// A published token format: always a secret.
    Format,
    /// The context says it is a secret (`user:pass@`, `-pSECRET`): anything
    /// but references, templates and masks.
    Context,
    /// `Basic x`, `Bearer x`, `--token x`, `-u user:pass`: as Context, and not
    /// a plain word or a documentation stand-in (`TOKEN`, `<token>`).
    Credential,
    /// Prose ("the password is hunter2"): quoted values, or words that do not
    /// read as English (a digit, a symbol, inner capitals).
    Prose,
}

struct Rule {
    kind: &'static str,
    re: Regex,
    /// Capture group holding the secret (0: the whole match).
    group: usize,
    check: Check,
}

fn rule(kind: &'static str, re: &str, group: usize, check: Check) -> Rule {
    Rule { kind, re: Regex::new(re).unwrap_or_else(|e| panic!("redaction rule {kind}: {e}")), group, check }
}

/// Provider tokens: (kind, format). Formats follow gitleaks' rule set.
const FORMATS: &[(&str, &str)] = &[
    ("anthropic-key", r"\bsk-ant-[a-z]+[0-9]*-[A-Za-z0-9_\-]{20,}"),
    ("openai-key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]*[0-9][A-Za-z0-9_\-]*[A-Z][A-Za-z0-9_\-]*"),
    ("aws-access-key-id", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}\b"),
    ("github-token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b"),
    ("github-pat", r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    ("gitlab-token", r"\bgl(?:pat|dt|ptt|rt|cbt|ft|imt|agent|oas|soat|ffct)-[A-Za-z0-9_\-]{20,}"),
    ("gitlab-runner-registration-token", r"\bGR1348941[A-Za-z0-9_\-]{20}"),
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"),
    ("slack-config-token", r"\bxoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{100,}"),
    ("slack-app-token", r"(?i)\bxapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]+"),
    ("slack-webhook", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-+]+"),
    ("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test|prod)_[A-Za-z0-9]{10,}"),
    ("stripe-webhook-secret", r"\bwhsec_[A-Za-z0-9]{24,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("google-oauth-secret", r"\bGOCSPX-[A-Za-z0-9_\-]{20,}"),
    ("google-oauth-token", r"\bya29\.[A-Za-z0-9_\-]{20,}"),
    ("huggingface-token", r"\b(?:hf_[A-Za-z0-9]{30,}|api_org_[A-Za-z]{34})\b"),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi-token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),
    ("sendgrid-key", r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"),
    ("twilio-key", r"\bSK[0-9a-fA-F]{32}\b"),
    ("mailgun-key", r"\b(?:key|pubkey)-[0-9a-f]{32}\b"),
    ("mailchimp-key", r"\b[0-9a-f]{32}-us[0-9]{1,2}\b"),
    ("shopify-token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b"),
    ("digitalocean-token", r"\bdo[por]_v1_[a-f0-9]{64}\b"),
    ("databricks-token", r"\bdapi[a-f0-9]{32}\b"),
    ("telegram-bot-token", r"\b[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}\b"),
    ("discord-webhook", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_\-]+"),
    ("teams-webhook", r"https://[a-z0-9]+\.webhook\.office\.com/webhookb2/[^\s'\x22<>]+"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("atlassian-api-token", r"\bATATT3[A-Za-z0-9_\-=]{150,}"),
    ("azure-ad-client-secret", r"(?:^|[\\'\x22`\s>=:(,)])([a-zA-Z0-9_~.]{3}[0-9]Q~[a-zA-Z0-9_~.\-]{31,34})(?:$|[\\'\x22`\s<),])"),
    ("heroku-api-key", r"\bHRKU-AA[0-9a-zA-Z_\-]{58}\b"),
    ("postman-api-token", r"\bPMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}\b"),
    ("linear-api-key", r"\blin_api_[A-Za-z0-9]{40}\b"),
    ("doppler-token", r"\bdp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{40,44}\b"),
    ("age-secret-key", r"\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
    ("1password-secret-key", r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b"),
    ("1password-service-token", r"\bops_eyJ[A-Za-z0-9+/]{100,}={0,3}"),
    ("artifactory-token", r"\b(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})\b"),
    ("alibaba-access-key-id", r"\bLTAI[A-Za-z0-9]{20}\b"),
    ("adobe-client-secret", r"\bp8e-[A-Za-z0-9]{32}\b"),
    ("clojars-token", r"\bCLOJARS_[A-Za-z0-9]{60}\b"),
    ("dynatrace-token", r"\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}\b"),
    ("easypost-token", r"\bEZ[AT]K[A-Za-z0-9]{54}\b"),
    ("duffel-token", r"\bduffel_(?:test|live)_[A-Za-z0-9_\-=]{43}"),
    ("flutterwave-key", r"\bFLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{12,32}(?:-X)?"),
    ("flyio-token", r"\b(?:fo1_[A-Za-z0-9_\-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3})"),
    ("frameio-token", r"\bfio-u-[A-Za-z0-9_\-=]{64}"),
    ("grafana-token", r"\b(?:glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b|eyJrIjoi[A-Za-z0-9]{70,400}={0,3})"),
    ("terraform-token", r"\b[a-zA-Z0-9]{14}\.atlasv1\.[a-zA-Z0-9_\-=]{60,70}"),
    ("vault-token", r"\bhv[sb]\.[A-Za-z0-9_\-]{90,300}"),
    ("infracost-token", r"\bico-[a-zA-Z0-9]{32}\b"),
    ("notion-token", r"\bntn_[0-9]{11}[A-Za-z0-9]{35}\b"),
    ("openshift-token", r"\bsha256~[A-Za-z0-9_\-]{43}"),
    ("perplexity-key", r"\bpplx-[A-Za-z0-9]{48}\b"),
    ("planetscale-token", r"\bpscale_(?:tkn|oauth|pw)_[A-Za-z0-9_=.\-]{32,64}"),
    ("prefect-token", r"\bpnu_[A-Za-z0-9]{36}\b"),
    ("pulumi-token", r"\bpul-[a-f0-9]{40}\b"),
    ("readme-token", r"\brdme_[a-z0-9]{70}\b"),
    ("rubygems-token", r"\brubygems_[a-f0-9]{48}\b"),
    ("scalingo-token", r"\btk-us-[A-Za-z0-9_\-]{48}"),
    ("sendinblue-key", r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b"),
    ("sentry-token", r"\b(?:sntryu_[a-f0-9]{64}\b|sntrys_eyJ[A-Za-z0-9+/=_]{50,})"),
    ("shippo-token", r"\bshippo_(?:live|test)_[a-fA-F0-9]{40}\b"),
    ("square-token", r"\bsq0(?:atp|csp)-[A-Za-z0-9_\-]{22,60}"),
    ("maxmind-key", r"\b[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk\b"),
    ("new-relic-key", r"\bNR(?:AK-[A-Za-z0-9]{27}|II-[A-Za-z0-9\-]{32}|JS-[a-f0-9]{19})\b"),
    ("sourcegraph-token", r"\bsgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}\b"),
    ("harness-token", r"\b(?:pat|sat)\.[a-zA-Z0-9_\-]{22}\.[a-zA-Z0-9]{24}\.[a-zA-Z0-9]{20}\b"),
    ("facebook-token", r"\bEAA[MC][A-Za-z0-9]{100,}"),
    ("typeform-token", r"\btfp_[a-zA-Z0-9_\-.=]{59}"),
    ("cloudflare-origin-ca-key", r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}\b"),
    ("octopus-deploy-key", r"\bAPI-[A-Z0-9]{26}\b"),
    ("settlemint-token", r"\bsm_(?:aat|pat|sat)_[a-zA-Z0-9]{16}\b"),
];

/// Keys whose value is a secret for the provider they name.
const NAMED_FORMATS: &[(&str, &str)] = &[
    // Heroku's classic API key is a UUID, and Atlassian's older one 24 characters: secret only under such a key.
    (
        "heroku-api-key",
        r#"(?i)heroku[\w.\-]{0,30}["']?[ \t]*(?:[:=]|=>)[ \t]*["']?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"#,
    ),
    (
        "atlassian-api-token",
        r#"(?i)(?:atlassian|jira|confluence)[\w.\-]{0,30}["']?[ \t]*(?:[:=]|=>)[ \t]*["']?([a-z0-9]{20}[a-f0-9]{4})\b"#,
    ),
    ("aws-secret-access-key", r#"(?i)aws_?secret_?(?:access_?)?key["']?[ \t]*(?:[:=]|=>)[ \t]*["']?([A-Za-z0-9/+=]{40})"#),
];

/// What stands between a key and its value: `=`, `:`, `:=`, `=>`, `==`,
/// after an optional type annotation (`: str`, `: &'static str`).
const ASSIGN: &str = r#"(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)["'\]]{0,2}(?:[ \t]*:[ \t]*[&A-Za-z_][\w&'<>\[\]., ]{0,40}?)?[ \t]*(?P<op>:=|=>|==|\?=|=|:)[ \t]*(?:\*\*|__)?[ \t]*"#;

/// Every quoting style a literal can take, and the bare value of `.env`,
/// YAML and ini files. Group names tell the style.
const VALUE: &str = concat!(
    r#"(?:"#,
    r#"(?:[rRbBuUfF]{1,2})?"""(?P<tq2>[\s\S]*?)""""#,
    r#"|(?:[rRbBuUfF]{1,2})?'''(?P<tq1>[\s\S]*?)'''"#,
    r###"|b?r##"(?P<rr2>[\s\S]*?)"##"###,
    r##"|b?r#"(?P<rr1>[\s\S]*?)"#"##,
    r#"|(?:[rRbBuUfF@]{1,2})?"(?P<dq>(?:[^"\\\n]|\\.)*)""#,
    r#"|(?:[rRbBuUfF$]{1,2})?'(?P<sq>(?:[^'\\\n]|\\.)*)'"#,
    r#"|`(?P<bt>[^`\n]*)`"#,
    r#"|(?P<bare>[^\s"'`,;(){}\[\]<>#][^\s"'`,;(){}\[\]<>]*)"#,
    r#")"#
);

static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"\b{ASSIGN}{VALUE}")).unwrap());

/// A line of a YAML, ini, `.properties` or `.env` file: a key first on its
/// line (after a list dash, `export` or a comment sign), then one unquoted
/// word that ends the line (but for a trailing comment). The whole word is
/// the value, whatever it holds (`p@ss;word`, `sec:ret9`, `abc,def9`).
static CONFIG_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^[ \t]*(?:-[ \t]+|export[ \t]+|(?:#|//|;)[ \t]*)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<before>[ \t]*)(?P<op>[:=])(?P<after>[ \t]*)(?P<value>[^\s\x22'`][^\s]*?)(?:[ \t]+[#;][^\n]*)?[ \t]*\r?$",
    )
    .unwrap()
});

/// A YAML block scalar under a key (`password: |`, `key: >-`, `token:
/// !vault |`): its value is the lines below that are indented deeper than
/// the key (see `block_values`).
static BLOCK_SCALAR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^[ \t]*(?:-[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*:[ \t]*(?:![^\s]*[ \t]+)?[|>][0-9+\-]{0,2}[ \t]*(?:#[^\n]*)?\r?$",
    )
    .unwrap()
});

/// Long options that take a secret: `--password x`, `--api-key=x`.
const SECRET_OPTION: &str = r"(?:[a-z0-9]+-)*(?:password|passwd|pass|token|secret|api-?key|apikey|auth|private-key)";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    use Check::*;
    let mut v = vec![rule(
        "private-key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
        0,
        Format,
    )];
    v.extend(FORMATS.iter().map(|&(kind, re)| rule(kind, re, 0, Format)));
    v.extend(NAMED_FORMATS.iter().map(|&(kind, re)| rule(kind, re, 1, Format)));
    v.extend([
        rule("azure-account-key", r"(?i)(?:AccountKey|SharedAccessKey|SharedSecretValue)\s*=\s*([A-Za-z0-9+/=]{20,})", 1, Format),
        rule("azure-sas-signature", r"(?i)\bsig=([A-Za-z0-9%+/=]{20,})", 1, Format),
        // user:password@ in any URL or connection string (postgres, mysql, mongodb+srv, redis, amqp, https...).
        rule("url-password", r#"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'"]*:([^\s@/'"]+)@"#, 1, Context),
        // Password=...; in ADO/ODBC-style connection strings.
        rule("connection-string-password", r#"(?i)\b(?:password|pwd)\s*=\s*([^;"'\s()\[\]]+);"#, 1, Context),
        rule("basic-auth", r"(?i)\bBasic\s+([A-Za-z0-9+/]{12,}={0,2})", 1, Credential),
        rule("bearer-token", r"(?i)\bBearer\s+([A-Za-z0-9\-._~+/]{12,}=*)", 1, Credential),
        // .netrc: `machine h login u password p`, on one line or several.
        rule("netrc-password", r"(?m)^[ \t]*(?:password|passwd)[ \t]+(\S+)[ \t]*$", 1, Context),
        rule("netrc-password", r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+(\S+)", 1, Context),
        // Command lines.
        rule("cli-user-password", r#"(?:^|[\s'"])(?:-u|--user|-a|--auth|--proxy-user)(?:=|[ \t]+)["']?[^\s:"'$]+:([^\s"']+)"#, 1, Credential),
        rule("cli-password", r#"\b(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb|mariadb-dump)\b[^\n|;&]*?[ \t]-p["']?([^\s"'\-][^\s"']*)"#, 1, Context),
        rule("cli-password", r#"\bsshpass[ \t]+-p[ \t]*["']?([^\s"']+)"#, 1, Credential),
        rule("cli-password", r#"\btwine\b[^\n|;&]*?[ \t](?:-p|--password)(?:=|[ \t]+)["']?([^\s"'\-][^\s"']*)"#, 1, Credential),
        rule(
            "cli-password",
            r#"\b(?:docker|podman|buildah|skopeo|nerdctl|oras|helm[ \t]+registry)[ \t]+login\b[^\n|;&]*?[ \t](?:-p|--password)(?:=|[ \t]+)["']?([^\s"'\-][^\s"']*)"#,
            1,
            Credential,
        ),
        rule("cli-password", r#"\bredis-cli\b[^\n|;&]*?[ \t](?:-a|--pass)[ \t]+["']?([^\s"'\-][^\s"']*)"#, 1, Credential),
        rule("cli-password", r#"\bsqlcmd\b[^\n|;&]*?[ \t]-P[ \t]+["']?([^\s"'\-][^\s"']*)"#, 1, Credential),
        rule("cli-password", &format!(r#"(?:^|[\s'"])--{SECRET_OPTION}(?:=|[ \t]+)["']?([^\s"'\-\\][^\s"']*)"#), 1, Credential),
        // Prose and comments: "the password is hunter2", "our API key was `abc`".
        rule(
            "prose-password",
            r#"(?i)\b(?:password|passwd|passphrase|pass\s?word|pw|pwd|pin|secret|token|api[ _\-]?key)s?(?:\s+(?:for|of|to|on|at)(?:\s+[\w.@\-]+){1,3})?\s+(?:is|was|would\s+be|will\s+be|set\s+to|becomes|remains)\s*:?\s+(?:"([^"\n]+)"|'([^'\n]+)'|`([^`\n]+)`|([^\s"'`]+))"#,
            1,
            Prose,
        ),
    ]);
    v
});

/// Random-looking token candidates for the entropy rule.
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/_\-=]{20,}").unwrap());
/// Anything that reads as a placeholder, ours or not.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"REDACTED_[A-Z0-9_]*[A-Z0-9](?:_[a-z0-9]+)?").unwrap());
/// References and templates: no literal value (`${X}`, `$X`, `{{ x }}`, `<x>`, `%(x)s`, `{x}`, `$(cmd)`).
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{[^}]*\}|\$\([^)]*\)|\$[A-Z_][A-Z0-9_]*\b|\{\{[^}]*\}\}|<[^<>\n]*>|%\([A-Za-z_]\w*\)[sdr]|%[sd]\b|\{[A-Za-z_0-9.\[\]'\x22:!]*\}|(?i:\b(?:bearer|basic|token|digest)\b)")
        .unwrap()
});

/// One redaction made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redaction {
    pub kind: String,
    pub placeholder: String,
    /// 1-based line in the text it was found in.
    pub line: usize,
}

/// Why an answer's placeholders cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    /// Placeholders that occur more often than they were sent: (placeholder, sent, found).
    pub repeated: Vec<(String, usize, usize)>,
    /// Placeholders of this redactor's form that it never issued.
    pub unknown: Vec<String>,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.repeated.iter().map(|(p, sent, found)| format!("{p} {found} times, sent {sent}")).collect();
        parts.extend(self.unknown.iter().map(|p| format!("{p} never sent")));
        write!(f, "{}", parts.join(", "))
    }
}

/// Redacts texts with one shared table, so the same secret gets the same
/// placeholder everywhere, and restores them in text that comes back.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// secret -> (placeholder, kind)
    table: BTreeMap<String, (String, &'static str)>,
    /// placeholder -> secret
    secrets: HashMap<String, String>,
    /// placeholder -> times it occurs in the texts redacted so far
    sent: HashMap<String, usize>,
    /// Placeholder-like words already present in texts redacted: never issued.
    taken: BTreeSet<String>,
    /// Ends every placeholder; empty until the first text.
    nonce: String,
    pub redactions: Vec<Redaction>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text with every secret found replaced by a placeholder.
    pub fn redact(&mut self, text: &str) -> String {
        self.redact_with(text, Vec::new())
    }

    /// [`Self::redact`] for a text in which the document around the cursor
    /// stands in pieces: `runs`, byte ranges of `text` in the document's
    /// order (a FIM prompt's prefix, typed middle and suffix). What is a
    /// secret in the runs joined is replaced in each of them, so a cursor
    /// inside a secret leaks neither half, and a value whose key is on the
    /// other side of the cursor is still found.
    pub fn redact_runs(&mut self, text: &str, runs: &[std::ops::Range<usize>]) -> String {
        let joined: String = runs.iter().map(|r| &text[r.clone()]).collect();
        let mut forced = Vec::new();
        for (s, e, kind) in find_secrets(&joined) {
            if PLACEHOLDER.is_match(&joined[s..e]) {
                continue;
            }
            // The whole value too: it is replaced wherever else it occurs.
            if self.nonce.is_empty() {
                self.nonce = fresh_nonce(text);
            }
            self.placeholder(&joined[s..e], kind);
            let mut at = 0;
            for r in runs {
                let (a, b) = (s.max(at), e.min(at + r.len()));
                if a < b {
                    forced.push((r.start + a - at, r.start + b - at, kind));
                }
                at += r.len();
            }
        }
        self.redact_with(text, forced)
    }

    /// Redacts `text`; `forced` spans (non-overlapping) are replaced whatever
    /// the rules find there.
    fn redact_with(&mut self, text: &str, forced: Vec<(usize, usize, &'static str)>) -> String {
        if self.nonce.is_empty() {
            self.nonce = fresh_nonce(text);
        }
        for m in PLACEHOLDER.find_iter(text) {
            self.taken.insert(m.as_str().to_string());
        }
        let mut spans = forced;
        for (s, e, kind) in find_secrets(text) {
            if !overlaps(&spans, s, e) {
                spans.push((s, e, kind));
            }
        }
        // Every other occurrence of a secret found here or in an earlier text.
        let mut known: Vec<(String, &'static str)> = spans.iter().map(|&(s, e, k)| (text[s..e].to_string(), k)).collect();
        known.extend(self.table.iter().map(|(s, &(_, k))| (s.clone(), k)));
        known.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        known.dedup_by(|a, b| a.0 == b.0);
        for (secret, kind) in known.iter().filter(|(s, _)| repeatable(s)) {
            for (s, _) in text.match_indices(secret.as_str()) {
                let e = s + secret.len();
                if bounded(text, s, e) && !overlaps(&spans, s, e) {
                    spans.push((s, e, kind));
                }
            }
        }
        // A snippet cut short inside a secret (an error message quoting 40
        // characters of code): its start, up to a backtick, ellipsis or the end.
        for (secret, kind) in known.iter().filter(|(s, _)| s.len() >= 12 && s.is_char_boundary(6)) {
            for (s, _) in text.match_indices(&secret[..6]) {
                let common = text[s..].bytes().zip(secret.bytes()).take_while(|(a, b)| a == b).count();
                let e = s + common;
                let rest = &text[e..];
                let truncated = rest.is_empty() || rest.starts_with(['`', '\u{2026}']) || rest.starts_with("...");
                if common < secret.len() && text.is_char_boundary(e) && truncated && bounded(text, s, e) && !overlaps(&spans, s, e) {
                    spans.push((s, e, kind));
                }
            }
        }
        spans.sort_by_key(|&(s, _, _)| s);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (s, e, kind) in spans {
            out.push_str(&text[last..s]);
            let placeholder = self.placeholder(&text[s..e], kind);
            *self.sent.entry(placeholder.clone()).or_insert(0) += 1;
            let line = text[..s].matches('\n').count() + 1;
            self.redactions.push(Redaction { kind: kind.to_string(), placeholder: placeholder.clone(), line });
            out.push_str(&placeholder);
            last = e;
        }
        out.push_str(&text[last..]);
        out
    }

    fn placeholder(&mut self, secret: &str, kind: &'static str) -> String {
        if let Some((p, _)) = self.table.get(secret) {
            return p.clone();
        }
        let name = kind.to_ascii_uppercase().replace('-', "_");
        let mut n = self.table.len() + 1;
        let p = loop {
            let p = format!("REDACTED_{name}_{n}_{}", self.nonce);
            if !self.taken.contains(&p) {
                break p;
            }
            n += 1;
        };
        self.table.insert(secret.to_string(), (p.clone(), kind));
        self.secrets.insert(p.clone(), secret.to_string());
        p
    }

    /// Puts the secrets back into text that came back: each placeholder this
    /// redactor issued, at most as many times as the texts it redacted held
    /// it (further occurrences stay placeholders; see [`Self::restore_checked`]).
    pub fn restore(&self, text: &str) -> String {
        let Some(ours) = self.ours() else { return text.to_string() };
        let mut left = self.sent.clone();
        ours.replace_all(text, |c: &regex::Captures<'_>| {
            let p = c.get(0).unwrap().as_str();
            match (self.secrets.get(p), left.get_mut(p)) {
                (Some(secret), Some(n)) if *n > 0 => {
                    *n -= 1;
                    secret.clone()
                }
                _ => p.to_string(),
            }
        })
        .into_owned()
    }

    /// Placeholders of this redactor's form, issued or not (they may be
    /// glued to a word: `-pREDACTED_CLI_PASSWORD_1_...`).
    fn ours(&self) -> Option<Regex> {
        (!self.nonce.is_empty()).then(|| Regex::new(&format!("REDACTED_[A-Z0-9_]*?_[0-9]+_{}", self.nonce)).unwrap())
    }

    /// Restores `answer`, the reply to the redacted text `sent`, only if
    /// every placeholder of this redactor's form in it was issued and occurs
    /// at most as often as in `sent`; otherwise says which do not.
    pub fn restore_checked(&self, sent: &str, answer: &str) -> Result<String, RestoreError> {
        let Some(ours) = self.ours() else { return Ok(answer.to_string()) };
        let count = |t: &str| {
            let mut m: BTreeMap<String, usize> = BTreeMap::new();
            for p in ours.find_iter(t) {
                *m.entry(p.as_str().to_string()).or_insert(0) += 1;
            }
            m
        };
        let (allowed, found) = (count(sent), count(answer));
        let mut err = RestoreError { repeated: vec![], unknown: vec![] };
        for (p, &n) in &found {
            match (self.secrets.contains_key(p), allowed.get(p).copied().unwrap_or(0)) {
                (false, _) => err.unknown.push(p.clone()),
                (true, a) if n > a => err.repeated.push((p.clone(), a, n)),
                _ => {}
            }
        }
        if err.repeated.is_empty() && err.unknown.is_empty() {
            Ok(self.restore(answer))
        } else {
            Err(err)
        }
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

/// Six characters that do not occur in `text`, derived from it (sha256), so
/// the same text gets the same placeholders: the preview is byte for byte
/// what a send carries.
fn fresh_nonce(text: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    for attempt in 0u64.. {
        let mut h = Sha256::new();
        h.update(attempt.to_le_bytes());
        h.update(text.as_bytes());
        let d = h.finalize();
        // A letter first, so the nonce never reads as a number.
        let nonce: String =
            d.iter().take(6).enumerate().map(|(i, b)| ALPHABET[*b as usize % if i == 0 { 24 } else { 32 }] as char).collect();
        if !text.contains(&nonce) {
            return nonce;
        }
    }
    unreachable!()
}

fn overlaps(spans: &[(usize, usize, &str)], s: usize, e: usize) -> bool {
    spans.iter().any(|&(a, b, _)| s < b && a < e)
}

/// A secret long or odd enough to be replaced wherever it occurs (`pass`
/// and `admin` are not, `hunter2` is).
fn repeatable(secret: &str) -> bool {
    let odd = secret.bytes().any(|b| !b.is_ascii_lowercase());
    secret.len() >= 8 || (secret.len() >= 4 && odd)
}

/// The occurrence at s..e is not part of a longer word.
fn bounded(text: &str, s: usize, e: usize) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let glued_before = word(text[s..e].chars().next()) && word(text[..s].chars().next_back());
    let glued_after = word(text[s..e].chars().next_back()) && word(text[e..].chars().next());
    !glued_before && !glued_after
}

/// Every secret in `text`: (start, end, kind), non-overlapping.
fn find_secrets(text: &str) -> Vec<(usize, usize, &'static str)> {
    let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
    let add = |spans: &mut Vec<(usize, usize, &'static str)>, s: usize, e: usize, kind: &'static str| {
        if e > s && !overlaps(spans, s, e) && !PLACEHOLDER.is_match(&text[s..e]) {
            spans.push((s, e, kind));
        }
    };
    let rules = &*RULES;
    // Formats and contexts first, then assignments, then prose, then entropy.
    let (early, prose): (Vec<&Rule>, Vec<&Rule>) = rules.iter().partition(|r| r.check != Check::Prose);
    for r in early {
        for caps in r.re.captures_iter(text) {
            // A format with a group (its boundary is not part of the token) means that group.
            let group = if r.group == 0 && caps.len() > 1 { 1 } else { r.group };
            let m = if group == 0 { caps.get(0) } else { (group..caps.len()).find_map(|g| caps.get(g)) };
            let Some(m) = m else { continue };
            let (s, e) = trim_value(text, m.start(), m.end(), r.check);
            if vetted(r.check, &text[s..e], &text[e..]) {
                add(&mut spans, s, e, r.kind);
            }
        }
    }
    // Config lines: the whole word after the key is the value. A rule's
    // match inside it (`password = p@ss;word` read as a connection string's
    // `p@ss;`) gives way to the whole.
    for caps in CONFIG_LINE.captures_iter(text) {
        let (key, value) = (caps.name("key").unwrap(), caps.name("value").unwrap());
        if secret_key(key.as_str()) != Some(Strength::Strong) {
            continue;
        }
        let (before, after) = (!caps["before"].is_empty(), !caps["after"].is_empty());
        if !config_value(key.as_str(), &caps["op"], before, after, value.as_str()) {
            continue;
        }
        let (s, e) = (value.start(), value.end());
        if spans.iter().any(|&(a, b, _)| a <= s && e <= b) {
            continue;
        }
        spans.retain(|&(a, b, _)| !(s <= a && b <= e));
        add(&mut spans, s, e, "secret-assignment");
    }
    // YAML block scalars under a secret-named key: every line of the value,
    // whatever it holds (a rule's match inside a line gives way to it).
    for caps in BLOCK_SCALAR.captures_iter(text) {
        let key = caps.name("key").unwrap();
        if secret_key(key.as_str()) != Some(Strength::Strong) {
            continue;
        }
        for (s, e) in block_values(text, key.start(), caps.get(0).unwrap().end()) {
            spans.retain(|&(a, b, _)| !(s <= a && b <= e));
            add(&mut spans, s, e, "secret-block");
        }
    }
    // Overlapping matches: `cli: "tool --password=x"` holds an assignment inside the value of another.
    let mut at = 0;
    while let Some(caps) = ASSIGNMENT.captures_at(text, at) {
        let key_match = caps.name("key").unwrap();
        let key = key_match.as_str();
        // `Outcome::Pass => "pass"`: an enum variant's label.
        let variant = text[..key_match.start()].ends_with("::");
        let Some(strength) = secret_key(key).filter(|_| !variant) else {
            at = key_match.end();
            continue;
        };
        at = caps.get(0).unwrap().end();
        let op = caps.name("op").unwrap().as_str();
        let quoted = ["tq2", "tq1", "rr2", "rr1", "dq", "sq"].iter().find_map(|g| caps.name(g));
        let (m, ok) = match (quoted, caps.name("bt").or(caps.name("bare"))) {
            (Some(m), _) => (m, quoted_secret(strength, m.as_str())),
            // Backticks quote code in Markdown and comments, a template in JS: vetted as bare.
            (None, Some(m)) => {
                let v = m.as_str();
                let env_style = op == "=" && key.bytes().all(|b| !b.is_ascii_lowercase()) && caps[0].ends_with(&format!("{key}={v}"));
                let rest = text[m.end()..].split('\n').next().unwrap_or("").trim_start_matches(['`', '"', '\'']).trim();
                // `key: value` is YAML when the value ends the line; "token: OpenAI-compatible servers" is prose.
                let yaml = op != ":" || rest.is_empty() || rest.starts_with(['#', ',', '}']) || rest.starts_with("//");
                (m, yaml && bare_secret(strength, v, &text[m.end()..], env_style))
            }
            (None, None) => continue,
        };
        if ok {
            add(&mut spans, m.start(), m.end(), "secret-assignment");
        }
    }
    for r in prose {
        for caps in r.re.captures_iter(text) {
            let quoted = (1..4).find_map(|g| caps.get(g));
            let Some(m) = quoted.or_else(|| caps.get(4)) else { continue };
            let (s, e) = trim_value(text, m.start(), m.end(), r.check);
            let v = &text[s..e];
            let ok = if quoted.is_some() { !non_value(v) } else { vetted(r.check, v, &text[e..]) };
            if ok {
                add(&mut spans, s, e, r.kind);
            }
        }
    }
    for m in CANDIDATE.find_iter(text) {
        // In a URL, path segments are judged one by one (`/2HtQXvg7iKc/xOJeipH6KLMJ` is two ids).
        // The separator may be wider than a byte (U+2028 is whitespace).
        let word_start = text[..m.start()]
            .char_indices()
            .rfind(|&(_, c)| c.is_whitespace() || "\"'`(<".contains(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let in_url = text[word_start..m.start()].contains("://");
        let pieces: Vec<(usize, &str)> = if in_url {
            m.as_str()
                .split('/')
                .scan(m.start(), |at, p| {
                    let s = *at;
                    *at += p.len() + 1;
                    Some((s, p))
                })
                .collect()
        } else {
            vec![(m.start(), m.as_str())]
        };
        for (s, piece) in pieces {
            let tok = piece.trim_end_matches('=');
            if high_entropy(tok) {
                add(&mut spans, s, s + tok.len(), "high-entropy-string");
            } else if random_hex(tok) && !names_a_digest(&text[text.floor_char_boundary(s.saturating_sub(48))..s]) {
                add(&mut spans, s, s + tok.len(), "high-entropy-hex");
            }
        }
    }
    spans
}

/// The lines of a YAML block scalar whose header (`key: |`) ends at
/// `header_end`, the key at `key_start`: the byte range of each non-blank
/// line's text, up to the first line not indented deeper than the key
/// (blank lines belong to the block).
fn block_values(text: &str, key_start: usize, header_end: usize) -> Vec<(usize, usize)> {
    let column = key_start - text[..key_start].rfind('\n').map_or(0, |i| i + 1);
    let mut values = Vec::new();
    let Some(mut at) = text[header_end..].find('\n').map(|i| header_end + i + 1) else { return values };
    while at < text.len() {
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let line = text[at..end].trim_end_matches('\r');
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if !line.trim().is_empty() {
            if indent <= column {
                break;
            }
            values.push((at + indent, at + line.trim_end().len()));
        }
        at = end + 1;
    }
    values
}

/// Trailing sentence punctuation is not part of a value found in prose or
/// on a command line.
fn trim_value(text: &str, s: usize, e: usize, check: Check) -> (usize, usize) {
    if matches!(check, Check::Prose | Check::Credential) {
        let v = text[s..e].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        return (s, s + v.len());
    }
    (s, e)
}

/// The value found by a rule of this kind is a secret.
fn vetted(check: Check, v: &str, after: &str) -> bool {
    match check {
        Check::Format => true,
        Check::Context => !non_value(v),
        Check::Credential => !non_value(v) && !plain_word(v) && !stand_in(v) && !short_number(v),
        Check::Prose => {
            !non_value(v)
                && !plain_word(v)
                && !stand_in(v)
                && !v.contains(['(', '[', '{', '<'])
                && !after.starts_with(['(', '['])
                && !is_code_word(v)
                && !short_number(v)
                && !dotted_path(v)
                && v.len() >= 4
        }
    }
}

/// Ports, ids and counts: `-u 1000:1000`, "the pin is 42".
fn short_number(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_digit()) && v.len() < 6
}

/// `self.password`, `settings.API_KEY`: an attribute path (digits make it a value: `Pass.word.42`).
fn dotted_path(v: &str) -> bool {
    v.contains('.')
        && v.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && p.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
        })
}

/// No value at all: empty, a mask (`****`, `xxxx`), our placeholders, or
/// nothing but references and templates (`${DB_PASS}`, `{{ x }}`, `<token>`).
fn non_value(v: &str) -> bool {
    let v = v.trim();
    if v.is_empty() || PLACEHOLDER.is_match(v) {
        return true;
    }
    let mask = v.chars().all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '•' | '#' | '-' | '_' | '?'));
    mask || !REFERENCE.replace_all(v, "").chars().any(char::is_alphanumeric)
}

/// A word of one case, letters only: prose, not a password.
fn plain_word(v: &str) -> bool {
    let rest = v.get(1..).unwrap_or("");
    v.chars().all(|c| c.is_ascii_alphabetic() || c == '-' || c == '\'') && !rest.chars().any(|c| c.is_ascii_uppercase())
}

/// Documentation stand-ins: `TOKEN`, `YOUR_API_KEY`, `PASSWORD`.
fn stand_in(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == '-')
}

/// Keywords and type names: a value in code that is not a literal.
fn is_code_word(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "none"
            | "null"
            | "nil"
            | "true"
            | "false"
            | "undefined"
            | "str"
            | "string"
            | "bytes"
            | "int"
            | "bool"
            | "optional"
            | "self"
            | "this"
            | "usize"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "i32"
            | "i64"
            | "number"
            | "any"
            | "boolean"
            | "object"
            | "unknown"
            | "never"
            | "void"
            | "symbol"
            | "bigint"
            | "float"
            | "double"
            | "char"
            | "long"
            | "list"
            | "dict"
            | "tuple"
            | "integer"
            | "secretstr"
            | "required"
            | "yes"
            | "no"
            | "on"
            | "off"
    )
}

/// How sure a key's name makes us that its value is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// `password`, `api_key`, `SMTP_PASS`, `client_secret`: any literal.
    Strong,
    /// `MASTER_KEY`, `LICENSE_KEY`: only values that do not read as names.
    Weak,
}

/// The lower-case words of a name: `smtpPass` and `SMTP_PASS` give
/// `smtp`, `pass`; `XMLHttpToken` gives `xml`, `http`, `token`.
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        let boundary = c.is_ascii_uppercase()
            && (prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next.is_ascii_lowercase()));
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Words that name a secret on their own.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passwort",
    "passphrase",
    "pwd",
    "pw",
    "pass",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "creds",
    "dsn",
    "authorization",
    "privatekey",
    "secretkey",
    "accesskey",
    "masterkey",
    "signingkey",
    "connstr",
    "connectionstring",
];
/// `<word> key` pairs that name a secret.
const SECRET_KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "auth",
    "private",
    "secret",
    "signing",
    "encryption",
    "session",
    "master",
    "account",
    "shared",
    "admin",
    "app",
    "client",
];
/// A last word that makes the name about a secret, not the secret: `token_url`, `secret_name`.
const NOT_SECRET_LAST: &[&str] = &[
    "name",
    "names",
    "id",
    "ids",
    "length",
    "len",
    "size",
    "type",
    "types",
    "kind",
    "file",
    "files",
    "path",
    "paths",
    "dir",
    "url",
    "uri",
    "urls",
    "endpoint",
    "host",
    "env",
    "var",
    "vars",
    "field",
    "fields",
    "label",
    "count",
    "counts",
    "limit",
    "max",
    "min",
    "budget",
    "index",
    "idx",
    "pos",
    "offset",
    "re",
    "regex",
    "regexp",
    "pattern",
    "prefix",
    "suffix",
    "format",
    "fmt",
    "template",
    "hint",
    "help",
    "prompt",
    "placeholder",
    "description",
    "desc",
    "doc",
    "message",
    "msg",
    "error",
    "err",
    "class",
    "style",
    "policy",
    "separator",
    "sep",
    "char",
    "chars",
    "mode",
    "scope",
    "scopes",
    "ttl",
    "expiry",
    "expires",
    "timeout",
    "header",
    "headers",
    "param",
    "column",
    "table",
    "key",
    "keys",
    "list",
    "map",
    "set",
    "manager",
    "provider",
    "store",
    "cache",
    "source",
    "input",
    "widget",
    "hash",
    "hasher",
    "helper",
    "tokens",
    "secrets",
    "passwords",
    "kinds",
    "stream",
    "iter",
    "ref",
    "ptr",
    "id_",
    "ids_",
    "span",
    "spans",
    "start",
    "end",
    "text",
    "str",
    "value",
    "values",
    "encryption",
    "algorithm",
    "method",
    "strategy",
    "backend",
];
/// A first word that makes the name about a secret: `is_token`, `max_tokens`, `next_token`.
const NOT_SECRET_FIRST: &[&str] = &[
    "is", "has", "use", "uses", "should", "needs", "allow", "enable", "enabled", "show", "hide", "require", "requires", "validate",
    "check", "num", "n", "max", "min", "count", "total", "last", "next", "prev", "first", "on", "with", "no", "get", "set", "read",
    "write", "parse", "forgot", "reset", "new", "old",
];
/// `*_KEY` names that are not secrets.
const NOT_SECRET_KEY_QUALIFIERS: &[&str] = &[
    "primary",
    "foreign",
    "sort",
    "cache",
    "partition",
    "routing",
    "hash",
    "range",
    "public",
    "publishable",
    "lookup",
    "row",
    "composite",
    "unique",
    "index",
    "group",
    "order",
    "map",
    "dict",
    "config",
    "settings",
    "env",
    "state",
    "storage",
    "local",
    "event",
    "query",
    "i18n",
    "translation",
    "message",
    "field",
    "column",
    "attr",
    "prop",
    "context",
    "react",
    "ssh",
    "gpg",
    "idempotency",
    "object",
    "bucket",
];

fn secret_key(key: &str) -> Option<Strength> {
    let w = words(key);
    let (first, last) = (w.first()?, w.last()?);
    if NOT_SECRET_LAST.contains(&last.as_str()) && !(last == "key" && w.len() >= 2) {
        return None;
    }
    if w.len() > 1 && NOT_SECRET_FIRST.contains(&first.as_str()) {
        return None;
    }
    let strong_word = |x: &String| {
        SECRET_WORDS.contains(&x.as_str())
            || ["password", "passwd", "passphrase"].iter().any(|s| x.contains(s))
            || ["secret", "token", "apikey", "privatekey", "secretkey", "accesskey"].iter().any(|s| x.ends_with(s))
    };
    if w.iter().any(strong_word) {
        return Some(Strength::Strong);
    }
    if last == "key" && w.len() >= 2 {
        let q = w[w.len() - 2].as_str();
        if SECRET_KEY_QUALIFIERS.contains(&q) {
            return Some(Strength::Strong);
        }
        let upper = !key.bytes().any(|b| b.is_ascii_lowercase());
        if upper && !NOT_SECRET_KEY_QUALIFIERS.contains(&q) {
            return Some(Strength::Weak);
        }
    }
    if w.iter().any(|x| x == "auth") && w.len() <= 2 {
        return Some(Strength::Weak);
    }
    None
}

/// A quoted value under a secret-named key.
fn quoted_secret(strength: Strength, v: &str) -> bool {
    if non_value(v) {
        return false;
    }
    match strength {
        Strength::Strong => true,
        Strength::Weak => !v.contains(char::is_whitespace) && v.len() >= 6 && !name_like(v),
    }
}

/// A bare value under a secret-named key: the literal of a `.env`, YAML or
/// ini file, not an expression in code.
fn bare_secret(strength: Strength, v: &str, after: &str, env_style: bool) -> bool {
    if non_value(v) || is_code_word(v) || v.starts_with(['$', '&', '*', '@', '!', '%', '.', '/', '\\', '-', '+', '=', '|', ':', '?']) {
        return false;
    }
    let trailing_expr = after.starts_with(['(', '[', '<', '.']) && !after.starts_with(". ") && !after.starts_with(".\n");
    if trailing_expr || after.starts_with("::") || v.ends_with(['.', ':']) || v.contains("::") || v.contains("->") {
        return false;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.len() >= 6;
    }
    let identifier = v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let letters_only = identifier && !v.bytes().any(|b| b.is_ascii_digit());
    if (letters_only || dotted_path(v)) && !env_style {
        return false;
    }
    match strength {
        Strength::Strong => v.len() >= 4,
        Strength::Weak => v.len() >= 6 && !name_like(v),
    }
}

/// The unquoted word that ends a config line under a secret-named key is
/// its value, unless it reads as code: a call, an index, a path of
/// attributes, a type, a keyword, a reference or YAML's own syntax. A word
/// of letters only is a value in YAML (`password: hunter`, no space before
/// the colon; a capitalised word is a type there) and in `.env` and
/// `.properties` files (`password=hunter`, no spaces); `password = hunter`
/// is an assignment in too many languages to tell.
fn config_value(key: &str, op: &str, space_before: bool, space_after: bool, v: &str) -> bool {
    // Quotes inside: a literal of code (`r"^x$"`), not a config value.
    if non_value(v)
        || is_code_word(v)
        || stand_in(v)
        || v.starts_with(['$', '*', '&', '!', '|', '>', '/', '~', '\\', ':'])
        || v.contains(['"', '\'', '`'])
    {
        return false;
    }
    // Settings that name a choice: `id-token: write`, `credential=always-impersonate`, `true|false`.
    if CONFIG_WORDS.contains(&v.to_ascii_lowercase().as_str()) || (v.contains(['-', '|']) && name_like(&v.replace('|', "-"))) {
        return false;
    }
    // `-x`, `.5`, `@decorator`: an operator before a name or a number.
    let body = v.trim_start_matches(['-', '.', '%', '@', '=', '+', '^', '?']);
    let plain = |t: &str| t.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') || t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if body.is_empty() || (body.len() < v.len() && plain(body)) {
        return false;
    }
    let name_then =
        |c: char| v.find(c).is_some_and(|i| i > 0 && v[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'));
    let code = name_then('(')
        || name_then('[')
        || (v.contains('(') && v.contains(')'))
        || v.ends_with([')', ':'])
        || ["::", "->", "=>", "&&", "||", "==", "!=", "()"].iter().any(|op| v.contains(op));
    if code || v.ends_with([',', ';', '{', '(', '[']) || dotted_path(v) {
        return false;
    }
    // The key's own name, or secret words only: a reference (`password: password`).
    if v.eq_ignore_ascii_case(key) || words(v).iter().all(|w| SECRET_WORDS.contains(&w.as_str())) {
        return false;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.len() >= 6;
    }
    if v.len() < 4 {
        return false;
    }
    if !v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
        return true;
    }
    // Letters only: a name in code, unless the line's shape is a config file's.
    if v.contains('_') {
        return false;
    }
    match op {
        ":" => !space_before && !v.starts_with(|c: char| c.is_ascii_uppercase()),
        _ => !space_before && !space_after && !v.chars().skip(1).any(|c| c.is_ascii_uppercase()),
    }
}

/// Values of settings that choose, not secrets (`permissions: id-token: write`).
const CONFIG_WORDS: &[&str] = &[
    "write",
    "read",
    "all",
    "always",
    "never",
    "auto",
    "default",
    "optional",
    "enabled",
    "disabled",
    "enable",
    "disable",
    "inherit",
    "public",
    "private",
    "empty",
    "unset",
    "none",
    "ask",
    "prompt",
    "env",
    "file",
    "plain",
    "hidden",
    "masked",
    "redacted",
    "random",
    "generated",
    "required",
];

/// Reads as a name, not a key: `app-state`, `created_at`, `user.settings`.
fn name_like(v: &str) -> bool {
    v.split(['-', '_', '.', ':', '/']).all(|p| p.bytes().all(|b| b.is_ascii_alphabetic()))
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

/// Random-looking tokens: 20+ characters of base62/base64 that mix letters
/// with digits or both cases, are not an alphabet run, and read neither as
/// words nor as an identifier. Two signs of randomness, either enough: many
/// digits and class switches (`q8Fz2LmX0pRt7VbN4kWs`), or letter pairs that
/// are rare in English and in names (`XopTHBPgrufJWLMpuKq`): identifiers such
/// as `getUserAccountDetails2` are mostly common pairs. Hex is judged apart
/// ([`random_hex`]): it is a secret unless its context names a digest.
pub fn high_entropy(tok: &str) -> bool {
    let len = tok.len();
    if len < 20 {
        return false;
    }
    let b = tok.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let lower = b.iter().filter(|c| c.is_ascii_lowercase()).count();
    let upper = b.iter().filter(|c| c.is_ascii_uppercase()).count();
    if b.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let classes = [digits, lower, upper].iter().filter(|&&n| n > 0).count();
    if classes < 2 || (lower + upper) < len / 3 {
        return false;
    }
    // ABCDEFGHIJ..., 0123456789...: alphabets and test patterns.
    let sequential = b.windows(2).filter(|w| w[1] == w[0].wrapping_add(1)).count();
    if sequential * 4 >= len || entropy(tok) < 0.75 * (len as f64).log2().min(6.0) {
        return false;
    }
    let (pairs, common) = letter_pairs(b);
    let readable = pairs >= 6 && common * 2 >= pairs;
    let class = |c: u8| (c.is_ascii_digit() as u8) + 2 * (c.is_ascii_lowercase() as u8) + 3 * (c.is_ascii_uppercase() as u8);
    let switches = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    let mixed = digits >= 2 && lower > 0 && upper > 0 && switches * 4 >= len && !readable;
    let unreadable = pairs >= 6 && common * 10 < pairs * 4 && lower > 0 && upper > 0;
    mixed || unreadable
}

/// Hex of 32+ characters mixing letters and digits: a key, or a digest.
fn random_hex(tok: &str) -> bool {
    let b = tok.as_bytes();
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    tok.len() >= 32 && b.iter().all(u8::is_ascii_hexdigit) && digits > 0 && digits < tok.len() && entropy(tok) >= 3.0
}

/// The text before a hex string says it is a digest (a checksum, a commit,
/// a content hash), not a key.
fn names_a_digest(before: &str) -> bool {
    let b = before.to_ascii_lowercase();
    ["sha", "md5", "hash", "digest", "checksum", "commit", "rev", "etag", "integrity", "crc", "blake", "oid"].iter().any(|w| b.contains(w))
}

/// The 120 most frequent letter pairs in names of real code (counted over
/// 129,000 candidate tokens of crates.io sources and HumanEval-X), which
/// cover 74% of their pairs; random text hits them 18% of the time.
const COMMON_PAIRS: &str = "ab ac ad ag al am an ap ar as at bl ca ce ch ck cl co cr ct da de di do ea eb ec ed el em en er es et ev ex fi fl fo ge ha he ic id il im in io is it ke la le li ll lo lu ma me mp na nc nd ne nf ng no ns nt oc od ol om on op or ot ou pa pe pi po pr pt ra re rg ri ro rr rs rt ry sa sc se si so sp ss st ta te th ti to tr ts tt tu ty ue un ur us ut va ve vi yp";

/// Pairs of adjacent letters (case-insensitive, not across digits or
/// separators), and how many are common.
fn letter_pairs(b: &[u8]) -> (usize, usize) {
    static COMMON: LazyLock<[bool; 676]> = LazyLock::new(|| {
        let mut t = [false; 676];
        for p in COMMON_PAIRS.split(' ').map(str::as_bytes) {
            t[(p[0] - b'a') as usize * 26 + (p[1] - b'a') as usize] = true;
        }
        t
    });
    let mut pairs = 0;
    let mut common = 0;
    for w in b.windows(2) {
        if w[0].is_ascii_alphabetic() && w[1].is_ascii_alphabetic() {
            pairs += 1;
            let (x, y) = (w[0].to_ascii_lowercase() - b'a', w[1].to_ascii_lowercase() - b'a');
            common += COMMON[x as usize * 26 + y as usize] as usize;
        }
    }
    (pairs, common)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(s: &str) -> (String, Redactor) {
        let mut r = Redactor::new();
        (r.redact(s), r)
    }

    /// The kinds redacted in `text`, in order.
    fn kinds(text: &str) -> Vec<String> {
        redacted(text).1.redactions.into_iter().map(|r| r.kind).collect()
    }

    /// `secret` is gone from `text`, redacted as `kind`, and restores; else why not.
    fn caught(kind: &str, text: &str, secret: &str) -> Option<String> {
        let (out, r) = redacted(text);
        if out.contains(secret) {
            return Some(format!("{kind}: {secret:?} left in {out:?}"));
        }
        if !r.redactions.iter().any(|x| x.kind == kind) {
            return Some(format!("{kind}: found as {:?} in {text:?}", r.summary()));
        }
        (r.restore(&out) != text).then(|| format!("{kind}: {text:?} does not restore"))
    }

    /// `text` comes out unchanged; else what was redacted.
    fn clean(what: &str, text: &str) -> Option<String> {
        let (out, r) = redacted(text);
        (out != text).then(|| format!("{what}: {text:?} was redacted: {out:?} {:?}", r.summary()))
    }

    #[track_caller]
    fn none_failed(failures: Vec<Option<String>>) {
        let failures: Vec<String> = failures.into_iter().flatten().collect();
        assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
    }

    // (kind, a token of that format, a near miss that is no token)
    const FORMAT_FIXTURES: &[(&str, &str, &str)] = &[
        ("anthropic-key", "sk-ant-api03-q7ZRk2mWv9xLp4NcBd8Hs1TfYg6Ju3Ea0Oi5KlMnPqRsT", "sk-ant-docs"),
        ("openai-key", "sk-proj-Zq8vN3xT1mK7pL0aR5sW2yB9cD4eF6gH1jK3", "sk-learn-contrib-extensions"),
        ("aws-access-key-id", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN"),
        ("github-token", "ghp_xLO88NHCiOmJhSjcc3ppXL5WexbBtfyxdys6", "ghp_token_format"),
        ("github-pat", "github_pat_11ABCDEFG0123456789abcdefghij", "github_pat_docs"),
        ("gitlab-token", "glpat-L7-yj5DcQhdttn8nl19r", "glpat-short"),
        ("gitlab-runner-registration-token", "GR1348941fM8bOAv5wJbBdoxhanzP", "GR1348941"),
        ("slack-token", "xoxb-234253234140-501258916477-M1qmmB93WJWPeuRtu6hxvApu", "xoxb-docs"),
        ("slack-app-token", "xapp-1-AJUPR8EUZCW-7308877416265-b1d4554c5ba3341a2ee3c315383e7e50", "xapp-level-tokens"),
        ("slack-webhook", "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX", "https://hooks.slack.com/"),
        ("stripe-key", "sk_live_rlWmQ1n56IxvpmFqNDh5xjVJ", "sk_live_helpers"),
        ("stripe-webhook-secret", "whsec_uFDVfvQ2A6ASquWBsQsZ5dUa3nUZMAW8", "whsec_docs"),
        ("google-api-key", "AIzaSyA5x9Kq2Lm8Np3Rt7Vw1Yz4Bc6De0Fg2Hj", "AIzaShort"),
        ("google-oauth-secret", "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", "GOCSPX-docs"),
        ("google-oauth-token", "ya29.a0AfH6SMBx7Qk2mWv9xLp4NcBd8Hs1Tf", "ya29.short"),
        ("huggingface-token", "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", "hf_hub_download"),
        ("npm-token", "npm_dGTd3Rv8zmCvQ9YHHZ7t0T85BJdoFqlpBFOw", "npm_config_cache"),
        ("pypi-token", "pypi-AgEIcHlwaS5vcmcCJDk4ZjI2NDliLTg5ZGMtNDE0Zi1iNzM2LWVjNTcxMjE3ZDc5ZQ", "pypi-AgE"),
        ("sendgrid-key", "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", "SG.short.x"),
        ("twilio-key", "SK2f1e0d9c8b7a69584736251403f2e1d0", "SKIP_THIS_STEP"),
        ("mailgun-key", "key-3a96e0c4b1d2f8a7e5c3b9d0f1a2e4c6", "key-value"),
        ("mailchimp-key", "3e2ed32ba18b11faf4b5b186ca84988a-us14", "us14-datacenter"),
        ("shopify-token", "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", "shpat_docs"),
        ("digitalocean-token", "dop_v1_f9f2b9e73dd9e9245f88ead9e645dc5ce95e2b5c80331f1c9173e428c13b25b6", "dop_v1_docs"),
        ("databricks-token", "dapi24b69272a7ce21ef4b18c0e1b7ee63bd", "dapi_client"),
        ("telegram-bot-token", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9", "123456789:AA"),
        ("discord-webhook", "https://discord.com/api/webhooks/123456789012345678/abcDEF_ghi-JKL", "https://discord.com/api/"),
        ("teams-webhook", "https://acme.webhook.office.com/webhookb2/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab@x/IncomingWebhook/y/z", "webhook.office.com"),
        ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIRBc4z2PGEopgrZbf4Ovi.FjAo-pAl_M7um_6dQEBOeiTQd-YvM9fj", "eyJ-prefix.eyJ-docs.md"),
        ("atlassian-api-token", "ATATT3cCms2cHe9P4iTLeITIzTnA4lVanHjdHZBmeI07UldNZiDJYcY7O5OCfUYieFWfIWjcplEWUBIceRt6s9L_sUfer4H0XJnpoDZ0U3DZTZbg52M_DquYuzqf8nTDTwfY6oo5cIZftPexcKbk7-qLVqSDBL-4ruuKsgcyVut5lqDg5hClYme5PPmpNxiI", "ATATT3short"),
        ("azure-ad-client-secret", "e3i8Q~s8FWVYwrBYtcMu01.SJUquY-dfVtze1-FK", "abc8Q~short"),
        ("heroku-api-key", "HRKU-AAA1-7V3x3qpfoQAnaNcjIOuxToizAk3If-29Yk9WYHnhyckkxpWqEqzt6hM", "HRKU-AA"),
        ("postman-api-token", "PMAK-d1b93e59295fcca33959204a-81542afba3f42216d024ccda8c60cc5d9d", "PMAK-docs"),
        ("linear-api-key", "lin_api_uaAJyCO5LDWRHTwnFf5cMzLnaJW7hbKAtReBmwiE", "lin_api_docs"),
        ("doppler-token", "dp.pt.Xh2p3ZqKtjccBQkP7Ozlk0g4Wxr7GVbDKNn938wWHR6", "dp.pt.docs"),
        ("age-secret-key", "AGE-SECRET-KEY-1QQ290VCYWV6ELE2RH7APDGTJ8PR7PYYW0FPT7Z8LLW0543SZ0G7MJGUKY4", "AGE-SECRET-KEY-1"),
        ("1password-secret-key", "A3-TV97NJ-8TC73JK9SWS-JDJC3-GE8WE-SX2LI", "A3-PAPER-SIZE"),
        ("artifactory-token", "AKCprpNeR6qZRHhpyaPmgRNTnKhGYB4gweet8rIALmAmBKujgmbU7zC1rpkIIXNmAiU1kVuZF", "AKCp-docs"),
        ("alibaba-access-key-id", "LTAI4eu1ufMyq2k2mx2sp3hY", "LTAI_docs"),
        ("adobe-client-secret", "p8e-NFdlxJMlVnppvvVE3XZC5kO2ZqsufU6V", "p8e-docs"),
        ("clojars-token", "CLOJARS_6zwlrx95av5c33zkud9kzf060o95ujrmcacy1d4p7pus668q2knzhxo20wwl", "CLOJARS_USERNAME"),
        ("dynatrace-token", "dt0c01.OYEBQYZ95CMGAU0DKW0L7RH6.2VCTLHORPAF66M76FGJHX6FTHLQIO1WGC97DP6YIHXXP5SG0T3KCBTYD2PAX2664", "dt0c01.docs"),
        ("easypost-token", "EZAKW7LN9NBcz4UTn8tgETkwAmOZhDePF9QePacwHRztLCYe9O3kCMOOFT", "EZAK_docs"),
        ("duffel-token", "duffel_test_1ROU6dQ11JzqfoyrKLWwxfInbZaTn0Ba8mIKvwmzdJ2", "duffel_test_mode"),
        ("flutterwave-key", "FLWSECK_TEST-29g059b0hg9ee3af7b281dfc34hced1f-X", "FLWSECK_TEST-"),
        ("flyio-token", "fo1_gUEHCRcYsX4QUxB7OynKFRKRF12K9pI8uwxMa0oPz1C", "fo1_docs"),
        ("frameio-token", "fio-u-K-NNxnCvHVtqaWHGY-VPZqyIc0v047Aj1owvWKZUwvae3Xot5-FK_vwV0BFr89Db", "fio-u-docs"),
        ("grafana-token", "glsa_scb49eRHz54U4WZFEhK0Qvkbpyd3fjsn_c7d0f7f9", "glsa_docs"),
        ("terraform-token", "udcvqfxczi8zwl.atlasv1.lwaqvkaw0ujibnyo2qymkd1i33xp2e-x7s9c-x2lbkr1shguztdkw60hig3aycal4t0", "app.atlasv1.docs"),
        ("vault-token", "hvs.y2iaKBizlyDnIwc7h66NiLxiN4U50q2ahldDfUuc-Qklq9xAxuvEQOgssBHV_LpTZyE8fly0Wmljn44NdgaHVJvXDXrKb0O", "hvs.docs"),
        ("infracost-token", "ico-Q2hBsJrvg5LzoSVazlpue0UmpSujQCt2", "ico-docs"),
        ("notion-token", "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", "ntn_docs"),
        ("openshift-token", "sha256~O3LuwMlRjXmO2lkAih7wW9jppcwWvT3APFb-MEXOtgT", "sha256~docs"),
        ("perplexity-key", "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", "pplx-docs"),
        ("planetscale-token", "pscale_tkn_e7xhkhMaD4hjBHfAGqQS_RpzN67rl2spzzVIh5GBnks", "pscale_tkn_docs"),
        ("prefect-token", "pnu_WBBnhtFOnoBgKV0XtQYk2WUP7zmmjx7uSg6x", "pnu_docs"),
        ("pulumi-token", "pul-c91779a4bba7d8e3b1685a328a23392c92d66a83", "pul-docs"),
        ("readme-token", "rdme_susdtfv0crmlgzl7389px63znfhndbd1yniu95ct47sr02c87zfwn0vwqvcxjxjmg7q2a2", "rdme_docs"),
        ("rubygems-token", "rubygems_a0c96f56aacdc3a69854d4c683ffee0a999cc92540defbcd", "rubygems_docs"),
        ("scalingo-token", "tk-us-eky7ROTwLeL5oQqM0UqFP25akU7vtwZUCBEd1CwyOe3KvdKm", "tk-us-docs"),
        ("sendinblue-key", "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", "xkeysib-docs"),
        ("sentry-token", "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", "sntryu_docs"),
        ("shippo-token", "shippo_live_872c2cfedc69bf0ba44e504f5fdbd6201ca27e00", "shippo_live_docs"),
        ("square-token", "sq0atp-XfordtAAOt7k6TEKYTTBX2", "sq0atp-docs"),
        ("maxmind-key", "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", "license_mmk"),
        ("new-relic-key", "NRAK-0VY9IB8FNZNASWPOC24ZLHWZT9J", "NRAK-docs"),
        ("sourcegraph-token", "sgp_11e882b3acce8b1db2bf2f0bb9a6c952905e4b17", "sgp_docs"),
        ("harness-token", "pat.BWLLu6U-Pq7U4dp_itQxQN.OzJKa3pVVQrZD5bbVB4c7u5v.EZHehWAf8vsg4p7CFnWx", "pat.docs.x"),
        ("typeform-token", "tfp_5cAQtPmvDYDShHYdxSEmimOnLqyIfyiJeOXrlyzyMpPtytelRPRhVaIcnyx", "tfp_docs"),
        ("octopus-deploy-key", "API-BXUNYAEY3D4AFK6I2OW44DXJG4", "API-VERSION"),
        ("settlemint-token", "sm_pat_CTWnWF3bEMhcSB7F", "sm_pat_docs"),
    ];

    #[test]
    fn a_wide_separator_before_a_token_is_not_split() {
        // U+2028 is whitespace three bytes wide; the fuzzer found a panic here.
        let token = "sk-proj-Qh7vR2mK9xLp4Tn8Wc3Zb6Yd1Fg5Hj0Ks";
        let text = format!("x =\u{2028}{token} é\u{2029}\u{a0}é{token}\n");
        let out = Redactor::new().redact(&text);
        assert!(!out.contains(token), "{out}");
    }

    #[test]
    fn provider_formats() {
        let mut f = vec![];
        for &(kind, token, near_miss) in FORMAT_FIXTURES {
            f.push(caught(kind, &format!("client.use(\"{token}\")\n"), token));
            f.push(clean(kind, &format!("client.use(\"{near_miss}\")\n")));
        }
        none_failed(f);
    }

    #[test]
    fn formats_known_only_by_their_key() {
        let f = vec![
            caught("heroku-api-key", "HEROKU_API_KEY: 22faf40e-5f8e-2992-6a1c-9d728e022e35\n", "22faf40e-5f8e-2992-6a1c-9d728e022e35"),
            clean("a uuid", "request_id: 22faf40e-5f8e-2992-6a1c-9d728e022e35\n"),
            caught("atlassian-api-token", "jira_token = \"t597hoeckatmiyr80j4a3463\"\n", "t597hoeckatmiyr80j4a3463"),
            clean("jira url", "jira_url = \"https://acme.atlassian.net\"\n"),
            caught("aws-secret-access-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", "wJalrXUtnFEMI"),
            caught(
                "private-key",
                "k = '''-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----'''\n",
                "b3BlbnNzaC1rZXk",
            ),
            clean("public key", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQY\n-----END PUBLIC KEY-----\n"),
        ];
        none_failed(f);
    }

    // (kind, text, secret)
    const CONTEXT_FIXTURES: &[(&str, &str, &str)] = &[
        ("url-password", "DATABASE_URL = 'postgres://app:s3cr3t-Pa55@db.internal:5432/app'", "s3cr3t-Pa55"),
        ("url-password", "redis://:Rd1s-pw-77@cache:6379/0", "Rd1s-pw-77"),
        ("connection-string-password", "Server=db;User Id=sa;Password=Tr1cky!Pass;Encrypt=true;", "Tr1cky!Pass"),
        ("basic-auth", "Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("bearer-token", "curl -H 'Authorization: Bearer Zq8vN3xT1mK7pL0aR5sW' https://api", "Zq8vN3xT1mK7pL0aR5sW"),
        ("netrc-password", "machine api.example.com login deploy password n3trc-Pass-9", "n3trc-Pass-9"),
        ("netrc-password", "machine ci\n  login bot\n  password Bot.pass.2024\n", "Bot.pass.2024"),
        ("cli-user-password", "curl -u admin:Adm1n-Curl-Pw https://api.example.com", "Adm1n-Curl-Pw"),
        ("cli-user-password", "curl --user=deploy:q9-Zt-77x https://x", "q9-Zt-77x"),
        ("cli-password", "mysql -u root -pMy5qlR00t! shop", "My5qlR00t!"),
        ("cli-password", "mysqldump -h db -u bk -p'Dump-Pw-42' shop > s.sql", "Dump-Pw-42"),
        ("cli-password", "twine upload -u __token__ -p pypi-fake-token-value-123 dist/*", "pypi-fake-token-value-123"),
        ("cli-password", "sshpass -p 'Ssh-Pa55!' ssh deploy@host", "Ssh-Pa55!"),
        ("cli-password", "docker login -u ci -p Dkr-Login-9x registry.example.com", "Dkr-Login-9x"),
        ("cli-password", "redis-cli -h cache -a Red1s-Auth-3 ping", "Red1s-Auth-3"),
        ("cli-password", "tool sync --password hunter2x --verbose", "hunter2x"),
        ("cli-password", "gh-release --api-key Zk29-ab-Q1 publish", "Zk29-ab-Q1"),
        ("cli-password", "scripts = {cli: \"admin --password=Opt-Pw-44 rotate\"}", "Opt-Pw-44"),
        ("prose-password", "# the password is hunter2\n", "hunter2"),
        ("prose-password", "The admin password for staging is \"Winter.abcd.Coming\".", "Winter.abcd.Coming"),
        ("prose-password", "// API key was `k3y-live-9Qz`, rotate it", "k3y-live-9Qz"),
        ("prose-password", "Note: our token is Tk_82hsd91.\n", "Tk_82hsd91"),
        ("prose-password", "// the password for the staging ledger is Stg-Ledger-77 (ops)\n", "Stg-Ledger-77"),
    ];

    // (what, text): code and prose that must stay as they are.
    const CONTEXT_NEAR_MISSES: &[(&str, &str)] = &[
        ("url template", "url = f\"{scheme}://{user}:{password}@{host}/db\""),
        ("url env refs", "DATABASE_URL=postgres://${DB_USER}:${DB_PASS}@db/app"),
        ("prose basic auth", "# Set environment's basic authentication if not explicitly set."),
        ("prose bearer", "// Bearer authentication is used for the remote engine"),
        ("docker run -u uid:gid", "docker run -u 1000:1000 -p 8080:80 image"),
        ("curl -u from env", "curl -u \"$API_USER:$API_PASS\" https://x"),
        ("mysql -p prompts", "mysql -u root -p shop"),
        ("mkdir -p", "mkdir -p build/out && cp -p a b"),
        ("ssh -p port", "ssh -p 2222 deploy@host"),
        ("docker login stdin", "echo \"$PW\" | docker login -u ci --password-stdin registry"),
        ("documented stand-in", "twine upload -u __token__ -p TOKEN dist/*"),
        ("option with a file", "tool --token-file ~/.config/tool/token"),
        ("option then option", "tool --password --verbose"),
        ("prose about tokens", "// the token is consumed by the parser"),
        ("prose, code value", "# the password is None when anonymous"),
        ("prose, plain word", "the secret is simple: cache everything"),
        ("prose, expression", "// token is tokens[i] here"),
        ("netrc-like prose", "Enter your password here\n"),
    ];

    #[test]
    fn context_rules() {
        let mut f: Vec<Option<String>> = CONTEXT_FIXTURES.iter().map(|&(kind, text, secret)| caught(kind, text, secret)).collect();
        f.extend(CONTEXT_NEAR_MISSES.iter().map(|&(what, text)| clean(what, text)));
        none_failed(f);
    }

    // (text, secret): values under secret-named keys, in every quoting style.
    const ASSIGNMENT_FIXTURES: &[(&str, &str)] = &[
        ("db_password: str = \"123456789\"\n", "123456789"),
        ("PASSWORD = 'Winter.abcd.Coming'\n", "Winter.abcd.Coming"),
        ("password = \"$ecret-Sauce-42\"\n", "$ecret-Sauce-42"),
        ("token = \"changeme\"\n", "changeme"),
        ("API_KEY = r\"raw\\key-42\"\n", "raw\\key-42"),
        ("secret = \"\"\"triple-quoted-secret\"\"\"\n", "triple-quoted-secret"),
        ("secret = '''single-triple-Secret9'''\n", "single-triple-Secret9"),
        ("const TOKEN: &str = r#\"rust-raw-\"token\"-7\"#;\n", "rust-raw-\"token\"-7"),
        ("let api_key: &str = \"abc-123-xyz\";\n", "abc-123-xyz"),
        ("const apiKey = `tmpl-literal-Key1`;\n", "tmpl-literal-Key1"),
        ("SMTP_PASS=mailpass123\n", "mailpass123"),
        ("SMTP_PASS=swordfish\n", "swordfish"),
        ("MASTER_KEY = \"123456789\"\n", "123456789"),
        ("DJANGO_SECRET_KEY = 'django-insecure-0a9s8d7f'\n", "django-insecure-0a9s8d7f"),
        ("client_secret: Cl1ent-Secr3t\n", "Cl1ent-Secr3t"),
        ("  password: \"yaml-quoted-pw\"\n", "yaml-quoted-pw"),
        ("  password: Yaml.Bare.Pw9\n", "Yaml.Bare.Pw9"),
        ("{\"db_pass\": \"json-pass-1\"}\n", "json-pass-1"),
        ("conn = connect(password=\"kwarg-pass-7\")\n", "kwarg-pass-7"),
        ("export GITHUB_TOKEN=shell-token-42\n", "shell-token-42"),
        ("DEPLOY_SECRET=$'ansi-c-Secret-7'\n", "ansi-c-Secret-7"),
        ("scripts = {db: \"PGPASSWORD=Pg-Pw-44 psql -h db\"}\n", "Pg-Pw-44"),
        ("pw: hunter2\n", "hunter2"),
        ("X-Api-Key: 8f2k1m0z9q\n", "8f2k1m0z9q"),
        ("PGPASSWORD=pg-pass-5 psql -h db\n", "pg-pass-5"),
        ("  auth_token => 'perl-tok-3',\n", "perl-tok-3"),
    ];

    // Code that names secrets without holding one.
    const ASSIGNMENT_NEAR_MISSES: &[(&str, &str)] = &[
        ("a call", "password = get_password()\n"),
        ("None", "token = None\n"),
        ("environment", "password = os.environ[\"DB_PASSWORD\"]\n"),
        ("empty", "password = \"\"\n"),
        ("mask", "password = \"********\"\n"),
        ("env reference", "DB_PASSWORD=${DB_PASSWORD}\n"),
        ("template", "password: \"{{ secrets.DB_PASSWORD }}\"\n"),
        ("angle stand-in", "api_key = \"<your-api-key>\"\n"),
        ("f-string", "headers[\"Authorization\"] = f\"Bearer {token}\"\n"),
        ("attribute", "password = self.password\n"),
        ("a variable", "let token = next;\n"),
        ("a type", "    token: Option<ProgressToken>,\n"),
        ("a type at the line end", "    password: SecretStr\n"),
        ("counts", "    prompt_tokens: usize,\n    max_tokens = 256\n"),
        ("a name of a variable", "api_key_env = \"LOCODE_API_KEY\"\n"),
        ("a secret's name", "secret_name = \"prod/db\"\n"),
        ("a key that is no secret", "SORT_KEY = \"created_at\"\nCACHE_KEY = \"user:42:profile\"\n"),
        ("a weak key, named value", "STORAGE_KEY = \"app-state\"\n"),
        ("an html input", "<input type=\"password\" name=\"password\">\n"),
        ("prose with a colon", "// A warm-up generates one token: OpenAI-compatible servers refuse 0.\n"),
        ("code in backticks", "/// down to the keyword's token: `Node::parent` and\n"),
        ("a kwarg passing a variable", "connect(host=h, password=pw)\n"),
        ("a comparison with a variable", "if token == expected:\n"),
        ("a tokenizer", "tokenizer = \"bpe-v2\"\n"),
        ("an enum variant's label", "Outcome::Pass => \"pass\",\n"),
        ("an assignment inside another value", "cmd = \"tool --token $TOKEN\"\n"),
    ];

    #[test]
    fn secret_named_keys() {
        let mut f: Vec<Option<String>> =
            ASSIGNMENT_FIXTURES.iter().map(|&(text, secret)| caught("secret-assignment", text, secret)).collect();
        f.extend(ASSIGNMENT_NEAR_MISSES.iter().map(|&(what, text)| clean(what, text)));
        none_failed(f);
    }

    // (text, secret): unquoted values of YAML, ini, `.properties` and `.env`
    // lines, the whole word whatever it holds.
    const CONFIG_LINE_FIXTURES: &[(&str, &str)] = &[
        ("password: hunter2hunter2\n", "hunter2hunter2"),
        ("db:\n  password: hunter\n", "hunter"),
        ("  db_password: correcthorsebatterystaple\n", "correcthorsebatterystaple"),
        ("db_password = s3cr3t!x\n", "s3cr3t!x"),
        ("SMTP_PASS=abc123xyz\n", "abc123xyz"),
        ("password=hunter\n", "hunter"),
        ("spring.datasource.password=Hunter\n", "Hunter"),
        ("[db]\npassword = p@ss;word\n", "p@ss;word"),
        ("password = abc,def9\n", "abc,def9"),
        ("password: sec:ret9\n", "sec:ret9"),
        ("password: secret9.\n", "secret9."),
        ("password: -secret9\n", "-secret9"),
        ("password: @secret9 # prod\n", "@secret9"),
        ("password = hunter2 ; prod\n", "hunter2"),
        ("- name: db\n  password: Pa55w0rd\n", "Pa55w0rd"),
        ("# password: hunter2x\n", "hunter2x"),
        ("export DB_PASS=abc123xyz\n", "abc123xyz"),
        ("mysql_root_password: r00t\n", "r00t"),
        ("repo_token: SIAeZjKYlHK74rbcFvNHMUzjRiMp\n", "SIAeZjKYlHK74rbcFvNHMUzjRiMp"),
    ];

    // Config-shaped lines of code, prose and settings that choose.
    const CONFIG_LINE_NEAR_MISSES: &[(&str, &str)] = &[
        ("prose after a colon", "token: OpenAI-compatible servers\n"),
        ("a spaced assignment of a name", "password = hunter\n"),
        ("a type", "    password: Secret\n"),
        ("a lowercase type", "    token: boolean\n"),
        ("the key's own name", "    password: password\n"),
        ("a kwarg passing a name", "    password=pw\n"),
        ("a workflow permission", "permissions:\n  id-token: write\n"),
        ("a match arm", "TokenTree::Group(g) => g,\n        TokenTree::Ident(ident)\n"),
        ("a call", "    password=get_password(user)\n"),
        ("an expression", "token_number = self.tokens_taken+len(self.tokens)\n"),
        ("a signature", "def sign(rsa_private_key: str):\n"),
        ("a method", "#password_encryption = scram-sha-256\n"),
        ("a YAML alias", "password: *db_password\n"),
        ("a YAML tag", "password: !vault |\n"),
        ("a reference", "password: ${DB_PASSWORD}\n"),
        ("a path", "password_file: /run/secrets/db\npassword: /run/secrets/db\n"),
        ("an attribute", "token = self.token\n"),
        ("a short number", "api_key = 12345\n"),
    ];

    #[test]
    fn yaml_block_values_under_a_secret_key() {
        // (text, the value's lines)
        let fixtures: &[(&str, &[&str])] = &[
            ("db:\n  password: |\n    hunter2-correct-horse\n  user: app\n", &["hunter2-correct-horse"]),
            ("api_token: >-\n  abc def\n\n  ghi\nnext: 1\n", &["abc def", "ghi"]),
            (
                "- name: db\n  password: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      62313365396662343061393464336163\n",
                &["$ANSIBLE_VAULT;1.1;AES256", "62313365396662343061393464336163"],
            ),
            ("secret_key: |2 # two spaces\r\n   s3cr3t value\r\n", &["s3cr3t value"]),
        ];
        let mut failures = Vec::new();
        for &(text, lines) in fixtures {
            let (out, r) = redacted(text);
            failures.extend(lines.iter().filter(|l| out.contains(**l)).map(|l| format!("{l:?} left in {out:?}")));
            if !r.redactions.iter().any(|x| x.kind == "secret-block") {
                failures.push(format!("no secret-block in {text:?}: {:?}", r.summary()));
            }
            if r.restore(&out) != text {
                failures.push(format!("{text:?} does not restore"));
            }
        }
        // The lines after the block, and blocks under other keys, stay.
        failures.extend(
            [clean("a description", "description: |\n  Reads the password from the vault.\n"), clean("the header alone", "password: |\n")]
                .into_iter()
                .flatten(),
        );
        let (out, _) = redacted("db:\n  password: |\n    hunter2-correct-horse\n  user: app\n");
        assert!(out.ends_with("  user: app\n"), "{out:?}");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn unquoted_config_values() {
        let mut f: Vec<Option<String>> =
            CONFIG_LINE_FIXTURES.iter().map(|&(text, secret)| caught("secret-assignment", text, secret)).collect();
        f.extend(CONFIG_LINE_NEAR_MISSES.iter().map(|&(what, text)| clean(what, text)));
        none_failed(f);
    }

    #[test]
    fn a_secret_cut_by_the_cursor_is_replaced_in_both_halves() {
        // A FIM prompt: the prefix ends inside the token, the suffix starts with its rest.
        let token = "ghp_R8mKq2VxT5nL9wJc3HfY7bPz4sDg6uNa1eQo";
        let pw = "Winter.abcd.Coming42";
        for (before, after, secret) in [
            ("TOKEN = \"ghp_R8mKq2VxT5", "nL9wJc3HfY7bPz4sDg6uNa1eQo\"\n", token),
            ("db_password = \"Win", "ter.abcd.Coming42\"\n", pw),
            ("db_password = \"", "Winter.abcd.Coming42\"\n", pw),
            ("SMTP_PASS=abc123", "xyz789\n", "abc123xyz789"),
        ] {
            let text = format!("<pre>x = 1\n{before}<suf>{after}<mid>");
            let p = "<pre>x = 1\n".len();
            let runs = [p..p + before.len(), p + before.len() + 5..p + before.len() + 5 + after.len()];
            let mut r = Redactor::new();
            let out = r.redact_runs(&text, &runs);
            let (left, right) = secret.split_at(before.len() - before.rfind(['"', '=']).map_or(0, |i| i + 1));
            for half in [left, right].into_iter().filter(|h| h.len() >= 3) {
                assert!(!out.contains(half), "{half:?} left in {out:?}");
            }
            assert!(out.starts_with("<pre>x = 1\n") && out.contains("<suf>") && out.ends_with("<mid>"), "{out}");
            assert_eq!(r.restore(&out), text);
            // The whole secret, elsewhere later, gets its own placeholder too.
            assert!(!r.redact(&format!("print({secret:?})\n")).contains(secret));
        }
    }

    #[test]
    fn key_names_split_into_words() {
        assert_eq!(words("XMLHttpToken"), ["xml", "http", "token"]);
        assert_eq!(words("SMTP_PASS"), ["smtp", "pass"]);
        assert_eq!(words("x-api-key"), ["x", "api", "key"]);
        for k in
            ["password", "db_password", "PGPASSWORD", "apiKey", "SMTP_PASS", "authToken", "client_secret", "pw", "ACCESS_KEY", "MASTER_KEY"]
        {
            assert_eq!(secret_key(k), Some(Strength::Strong), "{k}");
        }
        for k in ["LICENSE_KEY", "STRIPE_KEY", "WEBHOOK_KEY"] {
            assert_eq!(secret_key(k), Some(Strength::Weak), "{k}");
        }
        for k in
            ["key", "tokenizer", "max_tokens", "token_type", "secret_name", "primary_key", "SORT_KEY", "is_secret", "bypass", "compass"]
        {
            assert_eq!(secret_key(k), None, "{k}");
        }
    }

    #[test]
    fn every_occurrence_of_a_secret_is_replaced() {
        let src = "DATABASE = {\"PASSWORD\": \"Sunny-Day-42\"}\n\ndef connect():\n    return db.connect(user, \"Sunny-Day-42\")\n# the old one was Sunny-Day-42.\n";
        let (out, r) = redacted(src);
        assert!(!out.contains("Sunny-Day-42"), "{out}");
        assert_eq!(r.redactions.len(), 3);
        assert_eq!(r.restore(&out), src);
        // Across texts redacted by the same redactor, and only whole words.
        let mut r = Redactor::new();
        r.redact("SMTP_PASS=mail-pass-9\n");
        let later = r.redact("send(login, 'mail-pass-9')  # not mail-pass-99\n");
        assert!(later.contains("send(login, 'REDACTED_SECRET_ASSIGNMENT_1_") && later.contains("mail-pass-99"), "{later}");
        // A quote cut short inside a secret.
        let mut r = Redactor::new();
        r.redact("TOKEN = \"dp.pt.Xh2p3ZqKtjccBQkP7Ozlk0g4Wxr7GVbDKNn938wWHR6\"\n");
        let error = r.redact("syntax error at `TOKEN = \"dp.pt.Xh2p`");
        assert!(!error.contains("dp.pt.") && error.contains("`TOKEN = \"REDACTED_DOPPLER_TOKEN_"), "{error}");
        // Short plain words are not chased through the text.
        let (out, _) = redacted("url = 'https://u:pass@h'\nfor x in y:\n    pass\n");
        assert!(out.ends_with("    pass\n"), "{out}");
    }

    #[test]
    fn placeholders_cannot_collide_with_the_source() {
        let src = "# REDACTED_GITHUB_TOKEN_1 is how secrets looked before\nTOKEN = \"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"\n";
        let (out, r) = redacted(src);
        let p = &r.redactions[0].placeholder;
        assert!(p.starts_with("REDACTED_GITHUB_TOKEN_1_") && p.len() == "REDACTED_GITHUB_TOKEN_1_".len() + 6, "{p}");
        assert!(!src.contains(&r.nonce), "the nonce occurs in the source");
        // The old-style word in the source is never restored into a secret.
        assert_eq!(r.restore(&out), src);
        assert_eq!(r.restore("REDACTED_GITHUB_TOKEN_1"), "REDACTED_GITHUB_TOKEN_1");
        // A source already holding our exact placeholder: the next number is used.
        let mut r = Redactor::new();
        r.redact("x = 1\n");
        let mine = format!("REDACTED_GITHUB_TOKEN_1_{}", r.nonce);
        let out = r.redact(&format!("# {mine}\nT = \"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"\n"));
        assert!(out.contains(&format!("REDACTED_GITHUB_TOKEN_2_{}", r.nonce)), "{out}");
        assert_eq!(r.restore(&mine), mine);
    }

    #[test]
    fn placeholders_are_restored_only_as_often_as_they_were_sent() {
        let mut r = Redactor::new();
        let sent = r.redact("API_TOKEN = \"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"\n");
        let p = r.redactions[0].placeholder.clone();
        // The same place: restored.
        let answer = format!("API_TOKEN: str = \"{p}\"\n");
        assert_eq!(r.restore_checked(&sent, &answer).unwrap(), "API_TOKEN: str = \"ghp_abcdefghijklmnopqrstuvwxyz0123456789\"\n");
        // Repeated into a new place: refused, and restore() leaves the extra one.
        let answer = format!("API_TOKEN = \"{p}\"\nprint(\"{p}\")\n");
        let e = r.restore_checked(&sent, &answer).unwrap_err();
        assert_eq!(e.repeated, vec![(p.clone(), 1, 2)]);
        assert!(e.to_string().contains("2 times, sent 1"), "{e}");
        let loose = r.restore(&answer);
        assert_eq!(loose.matches("ghp_").count(), 1, "{loose}");
        assert!(loose.contains(&p));
        // Invented with our nonce: refused; a mangled one is stray.
        let invented = format!("REDACTED_GITHUB_TOKEN_7_{}", r.nonce);
        assert_eq!(r.restore_checked(&sent, &invented).unwrap_err().unknown, vec![invented.clone()]);
        assert_eq!(r.stray_placeholders("", "token = \"REDACTED_GITHUB_TOKEN_9\"").len(), 1);
        assert!(r.stray_placeholders(&sent, &sent).is_empty());
    }

    #[test]
    fn summary_and_lines() {
        let src = "KEY = \"AKIAIOSFODNN7EXAMPLE\"\nother = \"AKIAIOSFODNN7EXAMPLE\"\nname = \"ok\"\n";
        let (out, r) = redacted(src);
        assert_eq!(out.matches(r.redactions[0].placeholder.as_str()).count(), 2, "{out}");
        assert!(out.contains("name = \"ok\""));
        assert_eq!(r.summary().get("aws-access-key-id"), Some(&2));
        assert_eq!(r.redactions[1].line, 2);
        assert_eq!(kinds("nothing here\n"), Vec::<String>::new());
    }

    /// A seeded generator, so the figures below are reproducible.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Share of seeded random 20-character tokens redacted in a neutral place.
    fn detection_rate(alphabet: &str, n: usize) -> f64 {
        let a = alphabet.as_bytes();
        let mut state = 17;
        let hits = (0..n)
            .filter(|_| {
                let t: String = (0..20).map(|_| a[(splitmix(&mut state) % a.len() as u64) as usize] as char).collect();
                !redacted(&format!("value = \"{t}\"\n")).0.contains(&t)
            })
            .count();
        hits as f64 / n as f64
    }

    #[test]
    fn random_tokens_are_caught() {
        let b62 = detection_rate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 10_000);
        let b64 = detection_rate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 10_000);
        println!("random 20-character tokens redacted: base62 {:.1}%, base64url {:.1}%", b62 * 100.0, b64 * 100.0);
        assert!(b62 >= 0.97 && b64 >= 0.97, "base62 {b62}, base64url {b64}");
    }

    #[test]
    fn entropy_rule() {
        for t in ["q8Fz2LmX0pRt7VbN4kWs9YcJ", "XopTHBPgrufJWLMpuKqz", "2HtQXvg7iKcxOJeipH6KLMJ"] {
            assert!(high_entropy(t), "{t}");
        }
        for t in [
            "getUserAccountDetails2",
            "total_number_of_items_in_cart",
            "abcdefabcdefabcdefabcdefabcdefabcdef",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "--vscode-textCodeBlock-background",
            "HttpRequestHandlerFactory2",
            "MAX_CONNECTIONS_PER_HOST_2",
        ] {
            assert!(!high_entropy(t), "{t}");
        }
        // Hex: a key unless named a digest.
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(!high_entropy(hex) && random_hex(hex));
        none_failed(vec![
            caught("high-entropy-hex", &format!("Old webhook fingerprint: {hex}\n"), hex),
            clean("a checksum", &format!("checksum = \"{hex}\"\n")),
            clean("a sha256", &format!("assert_eq!(rec.sha256, \"{hex}\");\n")),
            clean("a commit", &format!("see https://github.com/o/r/commit/{}\n", &hex[..40])),
        ]);
        // In a URL, each path segment is judged alone.
        none_failed(vec![clean("url ids", "// https://groups.google.com/forum/#!original/comp.lang.c/2HtQXvg7iKc/xOJeipH6KLMJ\n")]);
    }

    #[test]
    fn ordinary_code_is_left_alone() {
        let code = "def compute_the_average_of_values(values):\n    total_number_of_items = len(values)\n    return sum(values) / total_number_of_items\n\nclass HttpRequestHandlerFactory2:\n    pass\n# see https://example.com/docs/getting-started\n";
        none_failed(vec![clean("python", code)]);
    }
}
