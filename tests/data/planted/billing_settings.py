"""Settings and deploy helpers for the billing service."""
import os
import subprocess

import psycopg

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "billing",
        "USER": "billing",
        "PASSWORD": "Sunny-Day-42",
        "HOST": "db.internal",
    }
}
SECRET_KEY = r"dj4ngo-r4w-k3y!x"
SMTP_PASS = "123456789"
MASTER_KEY = "Winter.abcd.Coming"
STRIPE_WEBHOOK_SECRET = "$ecret-Hook-77"
PAYPAL_CLIENT_SECRET = 'Pp-Cl13nt-Secret'
SLACK_APP_TOKEN = "xapp-1-AHU66GO9095-9730911417075-6c8bbc2a299e490bbed2cf3dfc8df07413df4f73ef8c9fcd698014efb68fefd1"
LINEAR_API_KEY = "lin_api_1suD6ZgCSTY9GqC79l9B1UE8ePr5FxgmV2AjC6af"
GITHUB_TOKEN = "ghp_aCLI71fNYmphNcWI9rQWOwjauQLKX783FSU8"
OPENAI_API_KEY = "sk-proj-iIoELi9M4SGsfAQk7iYY7Q6LtGAyZjHZmya9gy4ed1wPw7X8"
CERT_PASSPHRASE = """Triple-Quoted-Pass-3"""
SESSION_TOKEN = r'raw-session-Tok-61'
LEGACY_DSN = "postgresql://report:R3port-Dsn-9@replica.internal:5432/billing"
CACHE_URL = "redis://:R3dis-Cache-8@cache.internal:6379/0"
# Fixture ids from the payment provider's sandbox.
CHECKOUT_NONCE = "bbGEuRtCu6hF8DKNZkjL"
TRACE_SEED = "HnBNvDMoRTeJzcmP6lcP"
DEPLOY_KEY = '''-----BEGIN OPENSSH PRIVATE KEY-----
g5y9cqBruxXI21kXNxSwH7/1K7wP94pJmBDal6Q0xdTuTBoJBLIqmHm3vnhTxnOJ
iLOuHGib0G1bhmEcNpmSO6eZOB72pVGXLTh3dKQLpM1OcRzhouppeqTMd2qT1XWE
1CqxdYGsDccJ91HOrlweHROhbF8hCtZUDJRzVT668Nyu0t+aT0ewkMVHrmcBNfYW
unksXQHNfyuLLKTrXyb92TvdwOsudoaViVMBtFqnP+njWHMpS8/pFT6Skil/NHCv
-----END OPENSSH PRIVATE KEY-----'''

# The old staging password is hunter2x9; rotate it before launch.
# pw: Sh0rt-Note-5


def connect():
    """Opens the default database, with the same password as above."""
    return psycopg.connect(host="db.internal", user="billing", dbname="billing", password="Sunny-Day-42")


def connect_replica(login="report"):
    # The replica shares a password with the legacy DSN: R3port-Dsn-9
    return psycopg.connect("replica.internal", login, "R3port-Dsn-9")


def deploy():
    subprocess.run("curl -u deploy:Curl-Dep-55 https://ci.example.com/hook", shell=True, check=True)
    subprocess.run("mysql -u root -pMy5ql-R00t-1 billing < dump.sql", shell=True, check=True)
    subprocess.run("twine upload -u __token__ -p Tw1ne-Tok-22 dist/*", shell=True, check=True)
    subprocess.run("sshpass -p 'Ssh-Pa55-x' ssh deploy@web1 ./restart", shell=True, check=True)
    subprocess.run("billing-cli sync --password=Opt-Pass-31", shell=True, check=True)
    return os.environ.get("DEPLOY_ENV", "staging")
