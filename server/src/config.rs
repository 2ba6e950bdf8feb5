//! Settings, passed down as one struct. Sources, later ones winning: defaults,
//! the command line, `initializationOptions`, `workspace/didChangeConfiguration`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Engine settings: changing any of them reloads the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EngineConfig {
    /// Path of a GGUF model. Default: the cached default model.
    pub model: Option<PathBuf>,
    /// Prompt family override (qwen2.5-coder, starcoder2, deepseek-coder, codellama, codestral).
    pub family: Option<String>,
    /// CPU threads for llama.cpp. Default: the number of available cores.
    pub threads: Option<u32>,
    /// KV cells of each slot, in tokens: the most one prompt and its answer
    /// take (a longer prompt is answered from the nearest lines that fit).
    /// Each slot has a stream of its own, `slots` x this in all.
    pub context_size: u32,
    /// Layers offloaded to the GPU (needs a `cuda`, `metal` or `vulkan` build).
    /// Default: all of them when the build supports a GPU, else none.
    pub gpu_layers: Option<u32>,
    /// KV-cache slots: documents whose prompt cache is kept at once.
    pub slots: u32,
    /// Tokens evaluated per llama.cpp batch.
    pub batch_size: u32,
    /// Prompt-lookup speculative decoding (greedy output is unchanged).
    pub speculative: bool,
    /// Most megabytes of documents' KV states kept on disk between runs
    /// (least recently used removed first); 0 keeps none.
    pub kv_cache_mb: u64,
    /// Where they are kept. Default: `$XDG_CACHE_HOME/locode/kv`.
    pub kv_cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            model: None,
            family: None,
            threads: None,
            context_size: 5632,
            gpu_layers: None,
            slots: 4,
            batch_size: 512,
            speculative: false,
            kv_cache_mb: 2048,
            kv_cache_dir: None,
        }
    }
}

impl EngineConfig {
    pub fn threads(&self) -> u32 {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(4)).max(1)
    }

    pub fn model_path(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(default_model_path)
    }

    /// Where KV states are kept on disk: `kvCacheDir`, else
    /// `$LOCODE_KV_DIR`, else the cache folder's `locode/kv`.
    pub fn kv_cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.kv_cache_dir {
            return d.clone();
        }
        if let Some(d) = std::env::var_os("LOCODE_KV_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
        dirs::cache_dir().unwrap_or_else(|| PathBuf::from(".cache")).join("locode").join("kv")
    }
}

/// Completion settings: read per request, changing them reloads nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompletionConfig {
    /// Offer completions at all.
    pub enabled: bool,
    /// Most tokens generated for one suggestion.
    pub max_tokens: u32,
    /// Most lines in a multi-line (block) suggestion.
    pub max_lines: usize,
    /// Lines of text before the cursor in the prompt.
    pub prefix_lines: usize,
    /// Lines of text after the cursor in the prompt.
    pub suffix_lines: usize,
    /// Cap on prefix characters (guards against huge single-line files).
    pub prefix_chars: usize,
    /// Cap on suffix characters.
    pub suffix_chars: usize,
    /// Most characters typed since the prompt's anchor before it moves (see
    /// `context::choose_anchor`); 0 anchors every prompt at the cursor.
    pub middle_chars: usize,
    /// Characters of definitions from other workspace files put ahead of
    /// the prompt (0: none).
    pub cross_file_chars: usize,
    /// An answer still being generated after this many milliseconds is
    /// shown as soon as it has a complete line; the rest is generated in
    /// the background (yielding to any request) and offered when done,
    /// with a `locode/suggestionReady` notification. 0: always wait for
    /// the whole answer.
    pub early_answer_ms: u64,
    /// A request whose whole prompt would take longer than this to
    /// evaluate (a document's first, a window move) is answered from a
    /// window of the nearest lines sized to it, while the whole prompt is
    /// built in the background. 0: always the whole prompt.
    pub first_answer_ms: u64,
}

impl Default for CompletionConfig {
    fn default() -> Self {
        CompletionConfig {
            enabled: true,
            max_tokens: 96,
            max_lines: 12,
            prefix_lines: 256,
            suffix_lines: 64,
            prefix_chars: 12_000,
            suffix_chars: 3_000,
            middle_chars: 600,
            cross_file_chars: 1_500,
            early_answer_ms: 400,
            first_answer_ms: 1500,
        }
    }
}

/// `completionItems`: whether suggestions are also answered as
/// `textDocument/completion` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum CompletionItems {
    /// Only to clients without inline completion (ghost text): a client that
    /// has it would show the same suggestion twice, once in its suggest list.
    #[default]
    Auto,
    /// To every client.
    Always,
    /// To none: ghost text only.
    Never,
}

impl CompletionItems {
    /// Are suggestions offered as completion items to this client?
    pub fn offered(self, client_has_inline: bool) -> bool {
        match self {
            CompletionItems::Auto => !client_has_inline,
            CompletionItems::Always => true,
            CompletionItems::Never => false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    #[serde(flatten)]
    pub engine: EngineConfig,
    #[serde(flatten)]
    pub completion: CompletionConfig,
    /// Explain/refactor, cloud escalation and remote engines (`commands`).
    #[serde(flatten)]
    pub commands: CommandsConfig,
    pub completion_items: CompletionItems,
}

impl Config {
    /// Merges client settings over this config. Accepts either the settings
    /// object itself or one wrapped as `{ "locode": { ... } }`. Unknown
    /// top-level keys are ignored (clients add their own); unknown keys under
    /// `cloud` and `completionEngine`, which say where code is sent, are an
    /// error, as is a value of the wrong type; the error names the key.
    pub fn merged(&self, value: &serde_json::Value) -> Result<Config, String> {
        let value = value.get("locode").unwrap_or(value);
        if value.is_null() {
            return Ok(self.clone());
        }
        let Some(obj) = value.as_object() else {
            return Err("locode settings must be a JSON object".into());
        };
        let unknown = unknown_keys(obj);
        if !unknown.is_empty() {
            return Err(format!("invalid locode settings: {}", unknown.join("; ")));
        }
        let mut base = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let base_obj = base.as_object_mut().expect("config serializes to an object");
        for (k, v) in obj {
            base_obj.insert(k.clone(), v.clone());
        }
        let config: Config = serde_json::from_value(base).map_err(|e| format!("invalid locode settings: {e}"))?;
        // A CA file that cannot be used is found now, not at the first send.
        let cas =
            [("cloud.caFile", &config.commands.cloud.ca_file), ("completionEngine.caFile", &config.commands.completion_engine.ca_file)];
        for (setting, path) in cas {
            if let Some(path) = path {
                crate::net::load_ca_file(setting, path).map_err(|e| format!("invalid locode settings: {e}"))?;
            }
        }
        Ok(config)
    }
}

/// The sections whose keys are checked: a misspelt key there would send
/// code somewhere the user did not mean (`cloud.endpiont` leaves the
/// provider's public API in place).
fn checked_sections() -> [(&'static str, serde_json::Value); 2] {
    [
        ("cloud", serde_json::to_value(CloudConfig::default()).expect("cloud settings serialize")),
        ("completionEngine", serde_json::to_value(RemoteEngineConfig::default()).expect("engine settings serialize")),
    ]
}

/// `section.key is not a setting (did you mean ...?)` for each unknown key.
fn unknown_keys(settings: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (section, defaults) in checked_sections() {
        let (Some(given), Some(known)) = (settings.get(section).and_then(|v| v.as_object()), defaults.as_object()) else {
            continue;
        };
        for key in given.keys().filter(|k| !known.contains_key(k.as_str())) {
            let near = known
                .keys()
                .map(|k| (strsim::damerau_levenshtein(&key.to_lowercase(), &k.to_lowercase()), k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 4))
                .min();
            out.push(match near {
                Some((_, k)) => format!("{section}.{key} is not a setting (did you mean {section}.{k}?)"),
                None => format!("{section}.{key} is not a setting (known: {})", known.keys().cloned().collect::<Vec<_>>().join(", ")),
            });
        }
    }
    out
}

/// Where the setup step caches models: `$LOCODE_MODEL_DIR`, else
/// `$XDG_CACHE_HOME/locode/models`, else `~/.cache/locode/models`.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LOCODE_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    dirs::cache_dir().unwrap_or_else(|| PathBuf::from(".cache")).join("locode").join("models")
}

pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

pub fn default_model_path() -> PathBuf {
    model_dir().join(DEFAULT_MODEL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_wrapped_and_flat_settings() {
        let c = Config::default();
        let m = c.merged(&json!({"locode": {"threads": 3, "maxLines": 4}})).unwrap();
        assert_eq!(m.engine.threads, Some(3));
        assert_eq!(m.completion.max_lines, 4);
        assert_eq!(m.completion.max_tokens, c.completion.max_tokens);
        let m2 = m.merged(&json!({"model": "/x.gguf"})).unwrap();
        assert_eq!(m2.engine.model, Some(PathBuf::from("/x.gguf")));
        assert_eq!(m2.engine.threads, Some(3));
    }

    #[test]
    fn misspelt_cloud_and_engine_keys_are_errors_with_a_suggestion() {
        let c = Config::default();
        let err = c.merged(&json!({"cloud": {"route": "ask", "endpiont": "https://gateway.internal"}})).unwrap_err();
        assert!(err.contains("cloud.endpiont is not a setting (did you mean cloud.endpoint?)"), "{err}");
        let err = c.merged(&json!({"locode": {"completionEngine": {"kind": "ollama", "allow_remote": true}}})).unwrap_err();
        assert!(err.contains("did you mean completionEngine.allowRemote?"), "{err}");
        let err = c.merged(&json!({"completionEngine": {"zzzzzzzzzzzz": 1}})).unwrap_err();
        assert!(err.contains("completionEngine.zzzzzzzzzzzz is not a setting (known: ") && err.contains("allowInsecure"), "{err}");
        // Every real key is accepted, and unknown top-level keys are left to clients.
        let cloud = serde_json::to_value(CloudConfig::default()).unwrap();
        let engine = serde_json::to_value(RemoteEngineConfig::default()).unwrap();
        assert!(c.merged(&json!({"cloud": cloud, "completionEngine": engine, "someClientKey": 1})).is_ok());
    }

    #[test]
    fn a_ca_file_is_read_when_the_settings_are() {
        let c = Config::default();
        let err = c.merged(&json!({"completionEngine": {"kind": "llamaServer", "caFiel": "/etc/ssl/corp.pem"}})).unwrap_err();
        assert!(err.contains("did you mean completionEngine.caFile?"), "{err}");
        let err = c.merged(&json!({"cloud": {"caFile": "/nonexistent/locode/corp-ca.pem"}})).unwrap_err();
        assert!(err.contains("cloud.caFile /nonexistent/locode/corp-ca.pem: cannot read it"), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        let no_cert = tmp.path().join("notes.pem");
        std::fs::write(&no_cert, "the CA is on the wiki\n").unwrap();
        let err = c.merged(&json!({"completionEngine": {"caFile": no_cert}})).unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = c.merged(&json!({"cloud": {"caFile": "ca.pem"}})).unwrap_err();
        assert!(err.contains("absolute path"), "{err}");
        // No CA file: nothing to read.
        assert_eq!(c.merged(&json!({"cloud": {"caFile": null}})).unwrap().commands.cloud.ca_file, None);
    }

    #[test]
    fn completion_items_is_a_top_level_key() {
        let c = Config::default();
        assert_eq!(c.completion_items, CompletionItems::Auto);
        assert_eq!(c.merged(&json!({"completionItems": "always"})).unwrap().completion_items, CompletionItems::Always);
        assert_eq!(c.merged(&json!({"locode": {"completionItems": "never"}})).unwrap().completion_items, CompletionItems::Never);
        assert!(c.merged(&json!({"completionItems": "sometimes"})).is_err());
        assert!(CompletionItems::Auto.offered(false) && !CompletionItems::Auto.offered(true));
        assert!(CompletionItems::Always.offered(true) && !CompletionItems::Never.offered(false));
    }

    #[test]
    fn rejects_wrong_types_with_the_key() {
        let err = Config::default().merged(&json!({"contextSize": "big"})).unwrap_err();
        assert!(err.contains("invalid"), "{err}");
        assert!(Config::default().merged(&json!(3)).is_err());
    }
}

// Settings of explain/refactor, cloud escalation and remote completion
// engines: plain data here (what the settings say), their behaviour in
// `commands` and `engine::remote`, so that the settings import nothing from
// what they configure.

/// Where an explanation goes besides the command's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ExplainOutput {
    /// The result, plus a markdown document the client is asked to open
    /// (`window/showDocument`), or a message when it cannot open one.
    #[default]
    Auto,
    /// Only the command's result (for clients that display it).
    Result,
    /// The result and a markdown document opened with `window/showDocument`.
    Document,
    /// The result and a `window/showMessage`.
    Message,
}

/// Settings of explain/refactor, cloud escalation and remote completion
/// engines. Embedded flat in `config::Config` (`#[serde(flatten)]`), so the
/// keys are `explainMaxTokens`, `refactorMaxTokens`, `explainOutput`, `cloud`
/// and `completionEngine`; `cloud` and `completionEngine` are objects, each
/// replaced as a whole by a settings change (missing fields take defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CommandsConfig {
    /// Most tokens the local model generates for an explanation.
    pub explain_max_tokens: u32,
    /// Most tokens generated for a refactor (also capped by the selection's size).
    pub refactor_max_tokens: u32,
    pub explain_output: ExplainOutput,
    pub cloud: CloudConfig,
    pub completion_engine: RemoteEngineConfig,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        CommandsConfig {
            explain_max_tokens: 200,
            refactor_max_tokens: 1024,
            explain_output: ExplainOutput::Auto,
            cloud: CloudConfig::default(),
            completion_engine: RemoteEngineConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI-compatible `/v1/chat/completions` (OpenAI, Azure-style gateways, vLLM, LM Studio...).
    #[default]
    Openai,
    /// Anthropic `/v1/messages`.
    Anthropic,
}

/// `cloud` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CloudConfig {
    /// never | ask | longerThan | onValidationFailure.
    pub route: Route,
    /// With `longerThan`: refactors of more lines than this go to the cloud.
    pub max_local_lines: usize,
    pub provider: Provider,
    /// Full URL, or a base that gets `/chat/completions` (openai) or
    /// `/v1/messages` (anthropic) appended. Empty: the provider's public API.
    pub endpoint: String,
    /// Model name (required for any escalation).
    pub model: String,
    /// Name of the environment variable holding the API key. Empty:
    /// `OPENAI_API_KEY` or `ANTHROPIC_API_KEY`.
    pub api_key_env: String,
    /// Stream the answer (SSE), which shows progress.
    pub stream: bool,
    /// Whole-request timeout.
    pub timeout_ms: u64,
    pub max_tokens: u32,
    /// Audit log file. Default: `$XDG_STATE_HOME/locode/audit.jsonl`.
    pub audit_log: Option<PathBuf>,
    /// More file-name globs never sent (besides .env, *.pem, id_rsa, ...),
    /// nor indexed, nor sent to a remote completion engine.
    pub refuse_files: Vec<String>,
    /// Accept a plain `http://` endpoint on another machine (the code and
    /// the key then travel unencrypted). Loopback endpoints need no setting.
    pub allow_insecure: bool,
    /// A PEM file of CA certificates trusted for `endpoint` besides the
    /// built-in roots (a corporate CA, a TLS-inspecting proxy's CA).
    pub ca_file: Option<PathBuf>,
}

/// `cloud.route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// Escalation off: nothing is ever sent, no connection is ever opened.
    #[default]
    Never,
    /// Local first; before anything is sent (a failed local refactor, or
    /// "Refactor with cloud") the user is asked with `window/showMessageRequest`.
    Ask,
    /// Refactors of more than `cloud.maxLocalLines` lines go to the cloud.
    LongerThan,
    /// Local first; the cloud when the local result fails validation.
    OnValidationFailure,
}

/// `completionEngine.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum RemoteKind {
    /// The in-process llama.cpp engine.
    #[default]
    Embedded,
    /// llama.cpp's llama-server, `POST /completion` with the raw prompt, a
    /// slot per document and `cache_prompt`.
    LlamaServer,
    /// Ollama, `POST /api/generate` with `raw: true`.
    Ollama,
    /// OpenAI-compatible `POST /v1/completions` with the raw prompt (vLLM,
    /// llama-server, LM Studio).
    Openai,
}

/// `completionEngine` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteEngineConfig {
    pub kind: RemoteKind,
    /// Base URL (the path is appended unless already there). Empty: the
    /// usual local address (llama-server :8080, Ollama :11434, OpenAI-compatible :8000).
    pub endpoint: String,
    /// Model name (Ollama, OpenAI-compatible).
    pub model: String,
    /// The prompt family of the server's model (qwen2.5-coder, starcoder2,
    /// deepseek-coder, codellama, codestral): its FIM tokens are written
    /// into the raw prompt.
    pub family: String,
    /// Environment variable with a bearer token, if the server wants one.
    pub api_key_env: String,
    /// Per-request timeout; a slower answer is dropped (empty completion).
    pub timeout_ms: u64,
    /// Stream the answer (SSE, or NDJSON for Ollama): the request ends as
    /// soon as the suggestion is settled, and early answers need it.
    pub stream: bool,
    /// Consent to send completion prompts (redacted) to an endpoint that is
    /// not on this machine; without it nothing is sent there.
    pub allow_remote: bool,
    /// Accept plain `http://` to another machine (needs `allowRemote`).
    pub allow_insecure: bool,
    /// A PEM file of CA certificates trusted for `endpoint` besides the
    /// built-in roots (a self-hosted server's own CA).
    pub ca_file: Option<PathBuf>,
}
