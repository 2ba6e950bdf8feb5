//! Service configuration (fake secrets for locode's redaction tests).

pub const GITHUB_TOKEN: &str = "ghp_kpfgK1U2UkP6KmopayxWXcdytfkJCI6wJ6M9";
pub const GITHUB_FINE_GRAINED: &str = "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";
static OAUTH: &str = "gho_joWFq6ktxBoxlBdbOWApWMIH3JlI4eRUgs77";

pub struct Slack {
    pub bot: &'static str,
    pub user: &'static str,
}

pub const SLACK: Slack = Slack { bot: "xoxb-112770632802-5452659153907-Kj0Qj8eXBQgM5oMgnB7kmonA", user: "xoxp-874681766547-861536324578-9512325916308-862002e30038a747ca41a9790dc2f6ee" };
const WEBHOOK: &str = "https://hooks.slack.com/services/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";
const MAPS_KEY: &str = "AIzafSoKdTCp6LPIoehbNses4x-mQUHy5oBL9wD";
const DB_PASSWORD: &str = "s3cr3t!md1SfMgsH";

fn gitlab() -> String {
    let token = String::from("glpat-2s8veEFpF-c8w4rcmm9C");
    format!("PRIVATE-TOKEN: {token}")
}
