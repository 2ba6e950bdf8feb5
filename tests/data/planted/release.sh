#!/usr/bin/env bash
# Release script for the mobile backend (staging values inline).
set -euo pipefail

export DB_PASSWORD="Sh-Db-Pass-64"
export SMTP_PASS='777888999'
export MASTER_KEY="Dawn.qrst.Breaking"
export WEBHOOK_SECRET='$ecret-Sh-Hook-3'
DEPLOY_SECRET=$'ansi-c-Secret-7'
RELEASE_TOKEN='raw-single-Tok-90'
export GITHUB_TOKEN=ghp_huG8GP38g4o5MNJAYKJ1UXXFWXLCpaNfhs0g
export VAULT_TOKEN=hvs.5b_OAYGSTWjRlLK6sNdVU72lZ-o2_YH19dCqgn28s9Dp68GZN9Z3zLIbet6_UzH_7-3eLO6m4H5x29iI-Vmy0s5bla5kzFp
export DOPPLER_TOKEN="dp.pt.NcWI9rQWOwjauQLKX783FSU8iIoELi9M4SGsfAQk7iY"
export AGE_KEY="AGE-SECRET-KEY-1N6CFVCQXCYRKKPP75NU58LA2FDM4AWYEZVTZRUV7PGDG2TC3M69CNTKTSA"
export DATABASE_URL="postgres://mobile:Mob1le-Url-8@db:5432/mobile"
BROKER="amqp://release:Rel-Amqp-45@mq:5672/"
BUILD_NONCE="FX0AsDluHEChHYHYr0g2"
UPLOAD_SEED=noa9f4DPvAIY122Ql9bw

# The signing keystore password is Keyst0re-Pw-2; ask ops for the new one.
# pw: Sh-Note-Pw-5

curl -u release:Rel-Curl-33 https://ci.example.com/api/start
mysql -h db -u mobile -pSh-My5ql-9 mobile < schema.sql
twine upload -u __token__ -p Sh-Twine-12 dist/*
sshpass -p "Sh-Ssh-Pw-4" ssh deploy@app1 'systemctl restart mobile'
mobile-admin migrate --password=Sh-Opt-Pw-77 --yes

# Reuse: the same password for the read replica and for psql.
PGPASSWORD=Sh-Db-Pass-64 psql -h replica -U mobile -c 'select 1'
mysql -h replica -u mobile -pSh-My5ql-9 -e 'select 1'
echo "deployed with broker $BROKER"
