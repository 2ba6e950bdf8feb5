"""Django settings for the shop project (fake secrets for locode's redaction tests)."""
import os

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
DEBUG = False
SECRET_KEY = "django-insecure-0oQj%KMSd6GBQhSjBF_eyzH-UIvWjeGG1Q"

AWS_ACCESS_KEY_ID = "AKIAMPB30SB0MOI57DOE"
aws_secret_access_key = "KWc56pQiBMfz5Rj6Gp/+VVtn0FYDP0xWAAQwlFh6"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "URL": "postgresql://shop_app:PgUQ1p9Rxca7wJRb@db.internal.example:5432/shop",
    }
}

STRIPE_SECRET = "sk_live_wC5zWZcVw4OWEeaQOXMM2jS6"
STRIPE_RESTRICTED = 'rk_live_hk48ePvaK0N1RpiHTqaDClye'
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "sk-proj-zstUh2e09ug9J4HxZs30T3BlbkFJ2vwLwuUXQEUjZ02C8K16")
client = Anthropic(api_key="sk-ant-api03-3Amo2CUCWiTSAkfeSs6wVgbh7HTkju7vEX7tPWYXtrMFqTX5wBmHu1mbE3wqsNQf2IQU1LgcrpcEPe2Zr1XYZ1ocA9njSAA")

ADMIN = {"user": "admin", "password": "Tr0ub4dor&3-GolxyW"}
EMAIL_HOST_PASSWORD = 'correcthorsebatterystaple'


def total(items):
    return sum(item.price for item in items)
