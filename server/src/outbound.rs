//! The outbound policy: the one place that says whether bytes may leave
//! this process for an endpoint, for cloud escalation (`commands::cloud`)
//! and remote completion engines (`engine::remote`) alike.
//!
//! - An endpoint on this machine (loopback, `localhost`) may be sent to
//!   over http or https.
//! - Any other host needs consent: for cloud escalation a `cloud.route`
//!   other than `never` (and, with `ask`, a yes each time); for a remote
//!   completion engine `completionEngine.allowRemote`. And it needs https,
//!   unless the section's `allowInsecure` says plain http is wanted.
//! - A file whose name matches a secret-file pattern ([`crate::secret_files`],
//!   plus `cloud.refuseFiles`) is never sent.
//!
//! What is sent is redacted by the caller (`crate::redact`); the check here
//! comes before any client is built, so a refusal opens no connection.

use crate::net::NetError;
use crate::secret_files;

/// What a send is allowed by the settings of one section.
#[derive(Debug, Clone, Copy)]
pub struct Consent<'a> {
    /// The settings section, for messages: `cloud` or `completionEngine`.
    pub section: &'a str,
    /// Sending to a host other than this machine was agreed to.
    pub remote: bool,
    /// The setting that gives that consent, for the message when it is missing.
    pub remote_setting: &'a str,
    /// Plain http to another host is accepted (`allowInsecure`).
    pub insecure: bool,
}

/// Where an endpoint is, once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    /// On this machine: nothing leaves it.
    pub loopback: bool,
}

/// Checks that `url` may be sent to under `consent`; the error says why not
/// and which setting changes that.
pub fn check_endpoint(url: &str, consent: Consent<'_>) -> Result<Endpoint, NetError> {
    let section = consent.section;
    let parsed = reqwest::Url::parse(url).map_err(|e| NetError::Config(format!("invalid {section}.endpoint {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NetError::Refused(format!("nothing is sent to {url}: {section}.endpoint must be an http or https URL")));
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let loopback = crate::net::is_loopback(url);
    if !loopback {
        if !consent.remote {
            return Err(NetError::Refused(format!(
                "nothing is sent to {host}: {section}.endpoint ({url}) is not on this machine, and {} is not set; \
                 set it to send there (prompts are redacted and secret files refused, see the README)",
                consent.remote_setting
            )));
        }
        if parsed.scheme() != "https" && !consent.insecure {
            return Err(NetError::Refused(format!(
                "nothing is sent to {host}: {section}.endpoint ({url}) is plain http to another machine, where code \
                 and any key would travel unencrypted; use https, or set {section}.allowInsecure to true"
            )));
        }
    }
    Ok(Endpoint { host, loopback })
}

/// Why the file at `path` (a path or a URI) is never sent, if it is not.
pub fn refused_file(path: &str, refuse_files: &[String]) -> Option<String> {
    secret_files::secret_file_pattern(path, refuse_files).map(|pat| {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        format!("{name} matches the secret-file pattern {pat:?}: nothing of it leaves this machine")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(remote: bool, insecure: bool) -> Consent<'static> {
        Consent { section: "completionEngine", remote, remote_setting: "completionEngine.allowRemote", insecure }
    }

    #[test]
    fn loopback_is_allowed_over_http() {
        for url in ["http://127.0.0.1:8080/completion", "http://localhost:11434/api/generate", "https://[::1]:9/x"] {
            assert!(check_endpoint(url, engine(false, false)).unwrap().loopback, "{url}");
        }
    }

    #[test]
    fn another_host_needs_consent_and_https() {
        let e = check_endpoint("https://gpu-box.lan:8080/completion", engine(false, false)).unwrap_err().to_string();
        assert!(e.contains("gpu-box.lan") && e.contains("completionEngine.allowRemote"), "{e}");
        let ok = check_endpoint("https://gpu-box.lan:8080/completion", engine(true, false)).unwrap();
        assert_eq!(ok, Endpoint { host: "gpu-box.lan".into(), loopback: false });
        let e = check_endpoint("http://gpu-box.lan:8080/completion", engine(true, false)).unwrap_err().to_string();
        assert!(e.contains("plain http") && e.contains("completionEngine.allowInsecure"), "{e}");
        assert!(check_endpoint("http://gpu-box.lan:8080/completion", engine(true, true)).is_ok());
        // 127.0.0.1 lookalikes are other hosts.
        assert!(check_endpoint("http://127.0.0.1.example.com/x", engine(false, false)).is_err());
        assert!(check_endpoint("ftp://127.0.0.1/x", engine(true, true)).is_err());
        assert!(matches!(check_endpoint("not a url", engine(true, true)), Err(NetError::Config(_))));
    }

    #[test]
    fn secret_files_are_refused_with_their_pattern() {
        let m = refused_file("file:///home/u/proj/.env", &[]).unwrap();
        assert!(m.starts_with(".env matches") && m.contains("\".env\""), "{m}");
        assert!(refused_file("file:///home/u/proj/main.py", &[]).is_none());
        assert!(refused_file("/p/conf/prod.yaml", &["prod.*".into()]).is_some());
    }
}
