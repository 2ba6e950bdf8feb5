"""Seed fixture for the remote-engine planted-secrets test (tests/outbound.rs).

Every value in seed_remote.py.secrets must never reach a remote engine.
"""
import psycopg2

AWS_ACCESS_KEY_ID = "AKIAZ7QPLMXW3RTY5UVB"
GITHUB_TOKEN = "ghp_R8mKq2VxT5nL9wJc3HfY7bPz4sDg6uNa1eQo"
DATABASE_URL = "postgres://app:Tr0ub4dor-Horse@db.internal:5432/shop"


def connect():
    return psycopg2.connect(DATABASE_URL)


def headers():
    return {"Authorization": f"token {GITHUB_TOKEN}"}
