//! A client for the ledger service.

use std::time::Duration;

const LEDGER_API_TOKEN: &str = "dp.pt.huG8GP38g4o5MNJAYKJ1UXXFWXLCpaNfhs0gCa05RFR";
const POSTMAN_KEY: &str = "PMAK-a6c8bbc2a299e490bbed2cf3-dfc8df07413df4f73ef8c9fcd698014efb";
const AGE_IDENTITY: &str = "AGE-SECRET-KEY-1VSLALMZJ5AXUSUTM7Y3LHXV6FUQ9QU9V08Z3KFQ5LGW7GJ962GN6CFVCQX";
const GITLAB_TOKEN: &str = "glpat-y4ed1wPw7X8bbGEuRtCu";
static DB_PASSWORD: &str = "Ledger-Pg-2024";
const SMTP_PASS: &str = "987654321";
const MASTER_KEY: &[u8] = b"Spring.wxyz.Rising";
const WEBHOOK_SECRET: &str = "$ecret-Ledger-19";
const SIGNING_SECRET: &str = r#"raw-"quoted"-Signing-5"#;
const ARCHIVE_PASSPHRASE: &str = r"rust-raw-Pass-8";
const REPLICA_URL: &str = "mysql://ledger:L3dger-Rep-4@replica:3306/ledger";
const AMQP_URL: &str = "amqp://worker:Amqp-W0rk-66@mq.internal:5672/";
// Sandbox correlation ids, fixed so the recorded responses match.
const CORRELATION_ID: &str = "6hF8DKNZkjLHnBNvDMoR";
const IDEMPOTENCY_SEED: &str = "TeJzcmP6lcPI71dC3WPm";
const TLS_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
9cqBruxXI21kXNxSwH7/1K7wP94pJmBDal6Q0xdTuTBoJBLIqmHm3vnhTxnOJiLO
uHGib0G1bhmEcNpmSO6eZOB72pVGXLTh3dKQLpM1OcRzhouppeqTMd2qT1XWE1Cq
xdYGsDccJ91HOrlweHROhbF8hCtZUDJRzVT668Nyu0t+aT0ewkMVHrmcBNfYWunk
sXQHNfyuLLKTrXyb92TvdwOsudoaViVMBtFqnP+njWHMpS8/pFT6Skil/NHCvP3Q
-----END OPENSSH PRIVATE KEY-----";

// NOTE: the password for the staging ledger is Stg-Ledger-77 (shared with ops).
// token: Ops-Tok-3141

pub struct Client {
    password: String,
    timeout: Duration,
}

impl Client {
    pub fn new() -> Client {
        // Same value as DB_PASSWORD, spelled out again by someone in a hurry.
        Client { password: "Ledger-Pg-2024".to_string(), timeout: Duration::from_secs(5) }
    }

    pub fn replica(&self) -> (String, String) {
        ("ledger".to_string(), "L3dger-Rep-4".to_string())
    }

    pub fn backup_commands(&self) -> Vec<String> {
        vec![
            "curl -u backup:Bkp-Curl-88 https://backup.internal/run".to_string(),
            "mysqldump -u root -p'Dump-R00t-7' ledger > ledger.sql".to_string(),
            "twine upload -p Ledger-Twine-9 dist/*".to_string(),
            "sshpass -p Ssh-Ledger-2 scp ledger.sql backup@vault:".to_string(),
            "ledger-cli restore --password Rest0re-Pw-5".to_string(),
        ]
    }

    pub fn timeout(&self) -> Duration {
        let _ = &self.password;
        self.timeout
    }
}
