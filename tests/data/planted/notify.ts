// Notification fan-out: Slack, e-mail and the incident webhook.
import { createTransport } from "nodemailer";

const SLACK_BOT_TOKEN = "xoxb-158813998698-797309114170-05RFRunzqw7wZyVGOeUvfJIs";
const HEROKU_API_KEY = "HRKU-AAK6sNdVU72lZ-o2_YH19dCqgn28s9Dp68GZN9Z3zLIbet6_UzH_7-3eLO6m";
const AZURE_CLIENT_SECRET = "CST8Q~-H5x29iI~Vmy0s5bla5kzFpfITtaO_rC8q";
const NPM_TOKEN = "npm_9M4SGsfAQk7iYY6LtGAyZjHZmya9gy4ed1wP";
export const smtpPass: string = "Mail-Pass-4321";
const SMTP_PASS = "111222333";
const MASTER_KEY = "Autumn.efgh.Falling";
const INCIDENT_SECRET = "$ecret-Incident-8";
const apiKey = `tmpl-Api-Key-12`;
const SENDGRID_SECRET = `tmpl-Sendgrid-34`;
const MONGO_URL = "mongodb+srv://notify:M0ngo-Notify-5@cluster0.example.net/app";
const AMQP = "amqps://fanout:Fan-Out-Pw-27@mq.example.net/";
// Stable ids for the replay fixtures.
const REPLAY_ID = "w7X8bbGEuRtCu6hF8DKN";
const BATCH_SEED = "ZkjLHnBNvDMoRTeJzcmP";

// The shared inbox password is Inbox-Pw-2025 until SSO lands.
// pw: Note-Pw-719

const transport = createTransport({
  host: "smtp.example.net",
  auth: { user: "notify", pass: "Mail-Pass-4321" },
});

export function incidentHeaders(): Record<string, string> {
  // The same secret again, inline.
  return { "X-Incident-Signature": "$ecret-Incident-8" };
}

export const scripts = {
  probe: "curl -u notify:Probe-Curl-64 https://status.example.net/ping",
  db: "mysql -h db -u notify -pTs-My5ql-3 notify",
  publish: "twine upload -u __token__ -p Ts-Twine-81 dist/*",
  ssh: "sshpass -p 'Ts-Ssh-Pw-6' ssh ops@bastion",
  cli: "notify-admin --password=Ts-Opt-Pw-44 rotate",
};

export function mongo(): string {
  return `mongodb+srv://notify:M0ngo-Notify-5@cluster0.example.net/app`;
}

export { transport, SLACK_BOT_TOKEN, HEROKU_API_KEY, AZURE_CLIENT_SECRET, NPM_TOKEN, SMTP_PASS, MASTER_KEY, INCIDENT_SECRET, apiKey, SENDGRID_SECRET, MONGO_URL, AMQP, REPLAY_ID, BATCH_SEED };
